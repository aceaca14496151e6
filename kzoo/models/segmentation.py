"""The one segmentation `train_step`/`test_step`, shared by U-Net and DeepLabV3+.

`SegmentationModel` wraps a functional `network` (image -> per-pixel class
logits) and trains it with pixel-wise cross-entropy that skips pixels labelled
`ignore_label` (255, the VOC / Cityscapes convention for "void"), optionally
weighted per class (`kzoo.losses.masked_sparse_categorical_crossentropy`). It
tracks the loss, the mean intersection-over-union and the pixel accuracy, all
of which skip ignored pixels too. Models only build their network.

As for every model of the zoo, the loss is a per-replica mean scaled for
tf.distribute and for mixed-precision loss scaling (`kzoo.training.TrainingModel`).
Under tf.distribute each replica averages over its own counted pixels, so the
update is the mean of the replicas' means (equal to the global pixel mean when
the replicas count as many pixels).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from kzoo.losses import masked_sparse_categorical_crossentropy
from kzoo.options import takes
from kzoo.options.segmentation import SEGMENTATION_OPTIONS
from kzoo.training import TrainingModel, random_images



@keras.saving.register_keras_serializable(package="kzoo")
class ArgMax(layers.Layer):
    """Index of the largest value along `axis` as int32 (segmentation labels)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, x):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # keras.ops.argmax guards against -0.0 (flush-to-zero) with a Bitcast that
            # tf2onnx cannot convert; class scores need no such guard.
            return tf.argmax(x, axis=self.axis, output_type=tf.int32)
        return keras.ops.cast(keras.ops.argmax(x, axis=self.axis), "int32")

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape.pop(self.axis)
        return tuple(shape)

    def compute_output_spec(self, x):
        shape = list(x.shape)
        shape.pop(self.axis)
        return keras.KerasTensor(tuple(shape), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class SegmentationModel(TrainingModel):
    """Per-pixel classifier with the shared segmentation training step.

    Args:
        network: `keras.Model`. Image (batch, H, W, C) in [-1, 1] -> float32
            logits (batch, H, W, num_classes).
        num_classes: int. Number of classes (labels 0..num_classes-1).
        class_weights: sequence of floats or None. Loss weight of each class.
        ignore_label: int. Label of pixels that count in neither loss nor metrics.

    Call arguments:
        inputs: images (batch, H, W, C) in [-1, 1].

    Returns:
        Logits (batch, H, W, num_classes); `inference_parts()["segmenter"]`
        returns softmax probabilities and argmax labels instead.

    Example:
    >>> image = keras.Input((8, 8, 3))
    >>> network = keras.Model(image, layers.Conv2D(2, 1)(image))
    >>> model = SegmentationModel(network=network, num_classes=2)
    >>> model.compile(optimizer="adam")
    >>> sorted(model.fit(*model.sample_batch(2, rng=0), verbose=0).history)
    ['loss', 'mean_iou', 'pixel_accuracy']
    """

    loss_names = ("loss",)

    @takes(SEGMENTATION_OPTIONS)
    def __init__(self, *, network, num_classes, class_weights, ignore_label, **kwargs):
        super().__init__(**kwargs)
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if len(class_weights) != num_classes:
                raise ValueError(f"class_weights has {len(class_weights)} entries for "
                                 f"{num_classes} classes")
        self.network = network
        self.num_classes = int(num_classes)
        self.class_weights = class_weights
        self.ignore_label = int(ignore_label)
        self.iou = keras.metrics.MeanIoU(self.num_classes, name="mean_iou",
                                         ignore_class=self.ignore_label, sparse_y_pred=False)
        self.accuracy_tracker = keras.metrics.Mean(name="pixel_accuracy")
        self.built = True

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    @property
    def metrics(self):
        return [*self.trackers.values(), self.iou, self.accuracy_tracker]

    def optimizer_variables(self, name):
        return self.network.trainable_variables

    def segmentation_loss(self, labels, logits):
        return masked_sparse_categorical_crossentropy(
            labels, logits, ignore_label=self.ignore_label, class_weights=self.class_weights)

    def _labels(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None:
            raise ValueError("segmentation batches must be (images, masks)")
        labels = ops.cast(labels, "int32")
        if len(labels.shape) == 4:
            labels = ops.squeeze(labels, -1)
        return images, labels

    def train_step(self, data):
        images, labels = self._labels(data)

        def loss_fn():
            logits = self(images, training=True)
            loss = self.segmentation_loss(labels, logits)
            return loss, {"loss": loss, "logits": logits}

        logs = self.optimize(loss_fn)
        return self._track(labels, logs["logits"], logs["loss"])

    def test_step(self, data):
        images, labels = self._labels(data)
        logits = self(images, training=False)
        return self._track(labels, logits, self.segmentation_loss(labels, logits))

    def _track(self, labels, logits, loss):
        self.iou.update_state(labels, logits)
        valid = ops.cast(ops.not_equal(labels, self.ignore_label), "float32")
        correct = ops.cast(ops.equal(ops.argmax(logits, -1), ops.cast(labels, "int64")), "float32")
        self.accuracy_tracker.update_state(correct, sample_weight=valid)
        return self.track({"loss": loss})

    def sample_batch(self, batch_size=2, rng=None):
        """A random `(images, masks)` batch the network takes (tests, examples)."""
        rng = np.random.default_rng(rng)
        _, height, width, channels = self.network.input.shape
        masks = rng.integers(0, self.num_classes, (batch_size, height, width)).astype("int32")
        return random_images(rng, batch_size, height, width, channels), masks

    def inference_parts(self):
        """{"segmenter": image -> {"probabilities": softmax, "labels": argmax}}."""
        logits = self.network.output
        probs = layers.Softmax(dtype="float32", name="probabilities")(logits)
        labels = ArgMax(name="labels")(logits)
        return {"segmenter": keras.Model(self.network.input,
                                         {"probabilities": probs, "labels": labels},
                                         name="segmenter")}

    def predict_labels(self, images, batch_size=32):
        """Argmax labels (N, H, W) as a NumPy array."""
        return np.argmax(self.predict(images, batch_size=batch_size, verbose=0), -1)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "num_classes": self.num_classes,
                "class_weights": self.class_weights, "ignore_label": self.ignore_label}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def size_multiple(self):
        """What the network's input height/width must be a multiple of (None: its fixed size)."""
        return None

    def card(self):
        """The model card: `segmenter`, image -> per-pixel `labels` and `probabilities`.

        Uses the subclass's `image_size`, `channels` and `size_multiple`. The
        probabilities carry their role and [0, 1] range, which the export's old
        guess from activations missed (`layers.Softmax` has no `activation`).
        U-Net and DeepLabV3+ build their network at `image_size`, but the
        architecture takes any multiple of `size_multiple`: the card declares
        that, and an export rebuilds the network with dynamic height/width.
        """
        from kzoo.card import Endpoint, ModelCard, docstring_references, image, label_map, probabilities

        multiple = self.size_multiple
        size = None if multiple else self.image_size
        segmenter = Endpoint(
            "segmenter", inputs=(image("image", self.channels, size),),
            outputs=(label_map("labels", self.num_classes, size),
                     probabilities("probabilities", self.num_classes, size)),
            size_multiple=multiple, base_size=self.image_size if multiple else None)
        return ModelCard(task="semantic-segmentation",
                         summary="labels every pixel of an image with a class",
                         endpoints=(segmenter,), references=docstring_references(type(self)))
