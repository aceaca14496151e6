"""Input conversions for networks pretrained elsewhere (ImageNet "Caffe" preprocessing)."""

from __future__ import annotations

import keras
from keras import layers, ops

# ImageNet per-channel pixel mean in BGR order on 0..255, subtracted by the Caffe-style
# preprocessing of VGG and ResNet (`keras.applications.imagenet_utils`, mode "caffe").
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="kzoo")
class CaffeImageInput(layers.Layer):
    """[-1, 1] RGB -> the input Caffe-trained ImageNet networks expect: BGR, 0..255, mean off.

    The zoo's images are in [-1, 1]; keras.applications' VGG19 (SRGAN's VGG54
    content loss) and ResNets (DeepLabV3+'s backbones) take Caffe-style input,
    `preprocess_input(mode="caffe")`: RGB -> BGR, scaled to 0..255, minus
    `IMAGENET_BGR_MEAN`.

    Example:
    >>> out = CaffeImageInput()(keras.ops.ones((1, 1, 1, 3)))
    >>> [round(float(v), 3) for v in keras.ops.reshape(out, (3,))]
    [151.061, 138.221, 131.32]
    """

    def call(self, x):
        x = ops.flip((x + 1.0) * 127.5, axis=-1)
        return x - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=x.dtype)
