"""Spatially dynamic networks: the same layers and weights on inputs of any height/width.

A fully convolutional endpoint whose card declares a `size_multiple` is exported
with unknown height/width, whatever `Input` size its network was built with (a
pix2pix U-Net is built for its training crop, a preset's SRResNet for 64x64).
`spatially_dynamic(part)` calls the *same* layer objects (shared weights, nothing
copied) on new inputs whose height and width are `None`, nested functional
networks included.

One layer is swapped while doing so: Keras 3.15's `UpSampling2D` with a non-nearest
interpolation cannot be traced with unknown sizes (`keras.ops.image.resize`
compares the symbolic target size with 0 in Python). It is replaced by
`ResizeByFactor`, which computes the same `tf.image.resize` on the run-time shape;
the exporter checks that the rebuild gives the original network's outputs at the
card's base size (`kzoo.export.exporter.same_as_built`).
"""

from __future__ import annotations

import keras


class ResizeByFactor(keras.layers.Layer):
    """NHWC resize by integer factors on the run-time shape (export only, TensorFlow).

    Args:
        size: (int, int). Height and width factors.
        interpolation: str. A `tf.image.resize` method ("bilinear", "bicubic", ...).
        antialias: bool. As `tf.image.resize`'s.

    Example:
    >>> ResizeByFactor((2, 2), "bilinear")(keras.ops.ones((1, 3, 5, 2))).shape
    TensorShape([1, 6, 10, 2])
    """

    def __init__(self, size, interpolation="bilinear", antialias=False, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def call(self, x):
        import tensorflow as tf

        hw = tf.shape(x)[1:3] * tf.constant(self.size, dtype=tf.int32)
        out = tf.image.resize(x, hw, method=self.interpolation, antialias=self.antialias)
        return tf.cast(out, x.dtype)

    def compute_output_shape(self, shape):
        h, w = (None if d is None else d * f for d, f in zip(shape[1:3], self.size))
        return (shape[0], h, w, shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation,
                "antialias": self.antialias}


def _is_functional(layer):
    from keras.src.models.functional import Functional

    return isinstance(layer, Functional)


def _call(layer, *args, **kwargs):
    if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation != "nearest":
        if layer.data_format != "channels_last":
            raise ValueError(f"{layer.name}: only channels_last UpSampling2D can be made dynamic")
        return ResizeByFactor(layer.size, layer.interpolation, name=layer.name)(*args, **kwargs)
    return layer(*args, **kwargs)


def spatially_dynamic(part):
    """`part` with `None` height/width on every rank-4 input (see module docstring).

    Args:
        part: a functional `keras.Model` (a subclass of one too: it is re-wired as
            a plain functional model over the same layers).

    Returns:
        A functional `keras.Model` that shares `part`'s layers and weights.
    """

    def open_input(t):
        shape = list(t.shape)
        if len(shape) == 4:
            shape[1] = shape[2] = None
        return keras.Input(batch_shape=tuple(shape), dtype=t.dtype, name=t.name)

    def reuse(layer):
        return spatially_dynamic(layer) if _is_functional(layer) else layer

    inputs = keras.tree.map_structure(open_input, part.input)
    return keras.models.clone_model(part, input_tensors=inputs, clone_function=reuse,
                                    call_function=_call)
