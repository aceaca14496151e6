"""Colour spaces: sRGB <-> CIE L*a*b* (D65) in `keras.ops`, for data pipelines and networks.

The one home of the conversion: the builtin colourisation data render their gray
inputs with it, pix2pix's Lab colouriser (`Pix2Pix(color="lab")`) computes its
training targets with it and carries it inside its exported generator (as the
layers `RGBToLab` and `LabToRGB`), so one formula serves training, export
(SavedModel, ONNX: only elementwise ops, matmul and where) and inference.

sRGB (IEC 61966-2-1): 8-bit-style values in [0, 1] are linearised with the sRGB
transfer function (linear below 0.04045, exponent 2.4 above), mapped to CIE XYZ
with the sRGB/D65 matrix (scikit-image's `xyz_from_rgb`), then to L*a*b*
(CIE 1976: f(t) = t^(1/3) above (6/29)^3, linear below) relative to the white
of that matrix (its row sums: X 0.950456, Y 1, Z 1.088754, D65 as the sRGB
primaries give it). With this white a neutral gray has a* = b* = 0 exactly, so
"L with ab = 0" renders back the same gray; scikit-image's `rgb2lab` uses the
CIE table's D65 (0.95047, 1, 1.08883) and differs by < 0.01 in a*/b*.

In the networks Lab is scaled to about [-1, 1] as in the colourisation code of
Isola et al.: L / 50 - 1 and ab / 110 (`L_CENTER`, `AB_SCALE`).

Example:
>>> import numpy as np
>>> lab = rgb_to_lab(np.array([[1.0, 0.0, 0.0]]))   # sRGB red
>>> [round(float(v), 1) for v in np.asarray(lab)[0]]
[53.2, 80.1, 67.2]

References:
    IEC 61966-2-1 (sRGB); CIE 15:2004 (CIELAB); Zhang, Isola & Efros, "Colorful
    Image Colorization", ECCV 2016; Isola et al., "Image-to-Image Translation with
    Conditional Adversarial Networks", CVPR 2017 (Sec. 4, colourisation).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# sRGB (linear) -> XYZ, D65 (scikit-image's `xyz_from_rgb`); its row sums are the white.
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]], np.float64)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
WHITE = XYZ_FROM_RGB.sum(1)  # (0.950456, 1.0, 1.088754)
EPSILON = (6 / 29) ** 3  # CIE: f(t) linear below this
L_CENTER, AB_SCALE = 50.0, 110.0  # network scaling: L / 50 - 1, ab / 110


def _float(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


def srgb_to_linear(x):
    """sRGB-encoded values in [0, 1] -> linear light (the sRGB transfer function inverted)."""
    x = ops.clip(_float(x), 0.0, 1.0)
    return ops.where(x > 0.04045, ops.power((ops.maximum(x, 0.04045) + 0.055) / 1.055, 2.4), x / 12.92)


def linear_to_srgb(x):
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1]."""
    x = ops.clip(_float(x), 0.0, 1.0)
    return ops.where(x > 0.0031308, 1.055 * ops.power(ops.maximum(x, 0.0031308), 1 / 2.4) - 0.055,
                     12.92 * x)


def _f(t):
    return ops.where(t > EPSILON, ops.power(ops.maximum(t, EPSILON), 1 / 3), t * (841 / 108) + 4 / 29)


def _f_inv(f):
    return ops.where(f > 6 / 29, f ** 3, (f - 4 / 29) * (108 / 841))


def _matmul3(x, matrix):
    return ops.matmul(x, ops.convert_to_tensor(np.asarray(matrix, np.float32).T))


# Single channels are computed without a channel axis (`x[..., 0]`, then `ops.stack`):
# onnxruntime 1.32 (CPU) runs an elementwise op on a tensor whose last axis has size 1
# about 30x slower than on the same values without that axis (`benchmarks/kernels.py`).

def _rgb_to_lab(rgb):
    """(..., 3) sRGB in [0, 1] -> (L, a, b), each (...)."""
    f = _f(_matmul3(srgb_to_linear(rgb), XYZ_FROM_RGB / WHITE[:, None]))
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


def _lab_to_rgb(lightness, a, b):
    """L, a, b, each (...) -> (..., 3) sRGB in [0, 1], clipped to the gamut."""
    fy = (lightness + 16.0) / 116.0
    f = ops.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    return linear_to_srgb(_matmul3(_f_inv(f), RGB_FROM_XYZ * WHITE[None, :]))


def _gray_lightness(gray):
    """sRGB gray values in [0, 1], any shape -> their L* (same shape)."""
    return 116.0 * _f(srgb_to_linear(gray)) - 16.0


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (..., 3) -> CIE L*a*b* (..., 3): L in [0, 100], a and b about [-110, 110]."""
    return ops.stack(_rgb_to_lab(_float(rgb)), axis=-1)


def lab_to_rgb(lab):
    """CIE L*a*b* (..., 3) -> sRGB in [0, 1] (..., 3); colours outside the sRGB gamut are clipped."""
    lab = _float(lab)
    return _lab_to_rgb(lab[..., 0], lab[..., 1], lab[..., 2])


def gray_to_lightness(gray):
    """sRGB gray values in [0, 1] (..., 1) -> L* (..., 1) of that neutral gray (Y = the linear value)."""
    return ops.expand_dims(_gray_lightness(_float(gray)[..., 0]), -1)


def lightness_to_gray(lightness):
    """L* (..., 1) -> the sRGB gray in [0, 1] (..., 1) of that lightness (a* = b* = 0)."""
    return ops.expand_dims(linear_to_srgb(_f_inv((_float(lightness)[..., 0] + 16.0) / 116.0)), -1)


@keras.saving.register_keras_serializable(package="kzoo")
class RGBToLab(keras.layers.Layer):
    """Images in [-1, 1] -> scaled Lab: RGB (3 channels) -> (L, a, b), gray (1 channel) -> L.

    Scaled as the networks take them: L / 50 - 1 in [-1, 1], a / 110 and b / 110
    (about [-1, 1]). A 1-channel input is an sRGB gray image; its L is that of
    the neutral gray (`gray_to_lightness`). Computed in float32.

    Call arguments:
        inputs: (batch, h, w, 3 or 1) images in [-1, 1].

    Returns:
        (batch, h, w, 3) scaled Lab, or (batch, h, w, 1) scaled L.

    Example:
    >>> lab = RGBToLab()(keras.ops.ones((1, 1, 1, 3)))   # white
    >>> [round(float(v), 4) for v in keras.ops.reshape(lab, (3,))]
    [1.0, 0.0, 0.0]
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        x = _float(inputs)
        if inputs.shape[-1] == 1:
            lightness = _gray_lightness((x[..., 0] + 1.0) / 2.0)
            return ops.expand_dims(lightness / L_CENTER - 1.0, -1)
        lightness, a, b = _rgb_to_lab((x + 1.0) / 2.0)
        return ops.stack([lightness / L_CENTER - 1.0, a / AB_SCALE, b / AB_SCALE], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kzoo")
class LabToRGB(keras.layers.Layer):
    """Scaled L (1 channel) and ab (2 channels) -> RGB images in [-1, 1].

    The inverse of `RGBToLab`: L = 50 (l + 1), a, b = 110 ab, then Lab -> sRGB,
    clipped to the gamut. The lightness of the output is the input L exactly
    wherever the colour is inside the sRGB gamut. Computed in float32.

    Call arguments:
        inputs: `[l, ab]`: (batch, h, w, 1) and (batch, h, w, 2).

    Returns:
        (batch, h, w, 3) RGB images in [-1, 1].

    Example:
    >>> rgb = LabToRGB()([keras.ops.zeros((1, 1, 1, 1)), keras.ops.zeros((1, 1, 1, 2))])
    >>> [round(float(v), 3) for v in keras.ops.reshape(rgb, (3,))]   # L 50: mid gray
    [-0.067, -0.067, -0.067]
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        lightness, ab = (_float(t) for t in inputs)
        ab = ab * AB_SCALE
        rgb = _lab_to_rgb((lightness[..., 0] + 1.0) * L_CENTER, ab[..., 0], ab[..., 1])
        return rgb * 2.0 - 1.0

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], 3)
