"""Shared building blocks of the zoo, by topic.

- `conv`: N(0, 0.02) init, normalization by name, conv-norm-activation blocks.
- `sampling`: sub-pixel upsampling (`PixelShuffle`), `PixelUnshuffle` and `ReflectionPadding2D`.
- `patchgan`: the PatchGAN discriminator and its receptive field.
- `diffusion`: time embedding, time-conditioned residual block, spatial attention.
- `aspp`: Atrous Spatial Pyramid Pooling.
- `preprocessing`: ImageNet (Caffe-style) input conversion.
- `test_mode`: eval vs the junyanz authors' train-mode inference (batch statistics, dropout).

A layer that only one family uses lives in that family's model file
(`ImageHistoryPool` in `kzoo.models.cyclegan`, `ArgMax` in
`kzoo.models.segmentation`). Serializable layers are registered as
`kzoo>ClassName`, the names saved models refer to.
"""

from kzoo.layers.aspp import aspp
from kzoo.layers.conv import activation_layer, conv_block, conv_norm_act, dcgan_init, normalization
from kzoo.layers.diffusion import SinusoidalTimeEmbedding, SpatialSelfAttention, TimeResidualBlock
from kzoo.layers.patchgan import check_patchgan_size, patchgan_discriminator, receptive_field
from kzoo.layers.preprocessing import IMAGENET_BGR_MEAN, CaffeImageInput
from kzoo.layers.sampling import PixelShuffle, PixelUnshuffle, ReflectionPadding2D
from kzoo.layers.test_mode import BatchStatNormalization, TestTimeDropout, with_test_mode

__all__ = [
    "IMAGENET_BGR_MEAN", "BatchStatNormalization", "CaffeImageInput", "PixelShuffle", "PixelUnshuffle",
    "ReflectionPadding2D", "SinusoidalTimeEmbedding", "SpatialSelfAttention", "TestTimeDropout",
    "TimeResidualBlock", "activation_layer",
    "aspp", "check_patchgan_size", "conv_block", "conv_norm_act", "dcgan_init", "normalization",
    "patchgan_discriminator", "receptive_field", "with_test_mode",
]
