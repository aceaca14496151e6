"""The shared segmentation step: ignore label 255, class weights, mean IoU, distribution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.losses import masked_sparse_categorical_crossentropy
from kzoo.metrics import confusion_matrix, segmentation_scores
from kzoo.models.segmentation import SegmentationModel
from kzoo.models.unet import UNet
from kzoo.zoo import tiny_overrides


def _batch(seed=0, n=4, size=8, classes=3):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, size, size, classes)).astype("float32")
    labels = rng.integers(0, classes, (n, size, size)).astype("int32")
    return logits, labels


def test_loss_ignores_255_pixels():
    logits, labels = _batch()
    ignored = np.zeros(labels.shape, bool)
    ignored[:, :3] = True
    with_void = np.where(ignored, 255, labels)
    loss = float(masked_sparse_categorical_crossentropy(with_void, logits))
    # the ignored pixels' logits do not matter ...
    noisy = logits + 50.0 * ignored[..., None] * np.random.default_rng(1).standard_normal(logits.shape)
    assert float(masked_sparse_categorical_crossentropy(with_void, noisy.astype("float32"))) == pytest.approx(loss, rel=1e-5)
    # ... and the loss is the plain mean cross-entropy over the others
    ce = keras.ops.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy()
    assert loss == pytest.approx(ce[~ignored].mean(), rel=1e-5)
    # no gradient reaches an ignored pixel's logits
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = masked_sparse_categorical_crossentropy(with_void, x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(grad[ignored] == 0) and np.any(grad[~ignored] != 0)
    assert float(masked_sparse_categorical_crossentropy(np.full_like(labels, 255), logits)) == 0.0


def test_class_weights_are_a_weighted_mean():
    logits, labels = _batch()
    weights = [1.0, 3.0, 0.0]
    ce = keras.ops.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy()
    w = np.array(weights)[labels]
    expected = (ce * w).sum() / w.sum()
    got = float(masked_sparse_categorical_crossentropy(labels, logits, class_weights=weights))
    assert got == pytest.approx(expected, rel=1e-5)


def test_numpy_iou_ignores_255():
    labels = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 1]])
    cm = confusion_matrix(labels, pred, 3)
    assert cm.sum() == 6
    scores = segmentation_scores(cm)
    assert scores["per_class_iou"] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert scores["mean_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 6)


def _tiny_unet(**kw):
    return UNet(**{**tiny_overrides("unet"), "dropout": 0.0, **kw})


SIZE, CHANNELS = tiny_overrides("unet")["image_size"], tiny_overrides("unet")["channels"]


def test_metrics_ignore_255_and_match_numpy():
    model = _tiny_unet()
    model.compile(optimizer="sgd")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, SIZE, SIZE, CHANNELS)).astype("float32")
    labels = rng.integers(0, 3, (4, SIZE, SIZE)).astype("int32")
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    pred = model.predict_labels(x)
    void = labels.copy()
    void[:, :4] = 255
    logs_void = model.evaluate(x, void, verbose=0, return_dict=True)
    expected = segmentation_scores(confusion_matrix(void, pred, 3))
    assert logs_void["mean_iou"] == pytest.approx(expected["mean_iou"], abs=1e-5)
    assert logs_void["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"], abs=1e-5)
    assert logs["mean_iou"] == pytest.approx(segmentation_scores(confusion_matrix(labels, pred, 3))["mean_iou"], abs=1e-5)
    # the 255 pixels were not counted as any class: changing their prediction changes nothing
    assert logs_void["loss"] == pytest.approx(float(masked_sparse_categorical_crossentropy(void, model.predict(x, verbose=0))), rel=1e-5)


def test_inference_parts_return_probabilities_and_labels():
    model = _tiny_unet()
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, CHANNELS)).astype("float32")
    out = model.inference_parts()["segmenter"](x)
    np.testing.assert_allclose(np.sum(out["probabilities"], -1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["labels"], np.argmax(model(x), -1))
    assert out["labels"].dtype == "int32"


def test_bad_class_weights():
    with pytest.raises(ValueError, match="class_weights has 2 entries"):
        _tiny_unet(class_weights=[1.0, 2.0])


def test_distributed_step_equals_single_device_step():
    """Per-replica means divided by the replica count: 2 replicas update like 1 device."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, SIZE, SIZE, CHANNELS)).astype("float32")
    y = rng.integers(0, 3, (4, SIZE, SIZE)).astype("int32")
    weights = []
    for strategy in (tf.distribute.get_strategy(), tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = _tiny_unet()
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0)
        weights.append([v.numpy() for v in model.trainable_variables])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_base_class_round_trips_config():
    net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1)])
    model = SegmentationModel(network=net, num_classes=2, class_weights=[1, 2])
    assert model.get_config()["class_weights"] == [1.0, 2.0]
    assert model.get_config()["ignore_label"] == 255
