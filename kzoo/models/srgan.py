"""SRResNet and SRGAN (Ledig et al., 2017): x4 photo-realistic super-resolution.

Two stages, as in the paper: `SRResNet` (the generator alone, trained with a
pixel MSE by Keras' own supervised `fit`; no adversary, so no adversarial loop),
whose weights then initialise the generator of `SRGAN`, an `AdversarialModel`
adding the VGG-style discriminator and a content + 1e-3 adversarial loss.

Feature ("perceptual") content loss: the paper's VGG54 is the ReLU output of
VGG19's conv5_4 with ImageNet weights. Those weights cannot be downloaded here,
so the feature network is pluggable (`feature_extractor=`):

- `vgg19_features(weights=PATH or "imagenet")`: the paper's network, from a
  weights file the user has (or Keras' cache); never downloaded.
- `random_vgg_features()` (the offline default): the same VGG19 topology up to
  conv5_4 with fixed, seeded He-normal random weights, frozen. Deep features of
  randomly initialised convolutional networks are known to work as perceptual
  / texture losses (He, Wang & Hopcroft, NeurIPS 2016; Ustyuzhaninov et al.,
  ICLR 2017; Liu et al., "Generic Perceptual Loss for Modeling Structured
  Output Dependencies", CVPR 2021). Unlike the discriminator's own features it
  is a fixed target (the loss does not move while D trains) and it needs no
  data, so it is reproducible from the seed alone. It captures local structure,
  not ImageNet semantics: expect results between the MSE and the true VGG54 loss.
"""

from __future__ import annotations

import json
import os

import keras
from keras import layers

from kzoo import losses
from kzoo.errors import KzooError
from kzoo.layers import CaffeImageInput, PixelShuffle, PixelUnshuffle, conv_block, normalization
from kzoo.models.adversarial import AdversarialModel
from kzoo.options import takes
from kzoo.options.srgan import SRGAN_OPTIONS, SRRESNET_OPTIONS
from kzoo.training import random_images, unpack
from kzoo.zoo import register_model

TINY_SRRESNET = {"width": 8, "num_blocks": 2}
TINY = {"image_size": 16, "width": 8, "num_blocks": 2, "discriminator_width": 4, "dense_units": 16,
        "content_loss": "mse"}

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_BLOCKS = (2, 2, 4, 4, 4)  # convs per block; widths 64, 128, 256, 512, 512


def upsample_factors(scale):
    """Sub-pixel stages for `scale`: x2 stages (the paper's two for x4), then any odd rest."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    factors = []
    while scale % 2 == 0:
        factors.append(2)
        scale //= 2
    return factors + ([scale] if scale > 1 else [])


def _prelu(name):
    # One slope per channel, shared over space (fully convolutional); 0.25 as in He et al., 2015.
    return layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name)


def _conv_norm(x, filters, kernel_size, norm, name):
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=norm in (None, "none"),
                      name=f"{name}_conv")(x)
    norm_layer = normalization(norm, name=f"{name}_norm")
    return norm_layer(x) if norm_layer is not None else x


def srresnet_residual_block(x, width, norm="batch", name=None):
    """k3n64s1 conv - BN - PReLU - k3n64s1 conv - BN, plus the identity (Ledig et al., Fig. 4)."""
    h = _conv_norm(x, width, 3, norm, f"{name}_a")
    h = _prelu(f"{name}_a_prelu")(h)
    h = _conv_norm(h, width, 3, norm, f"{name}_b")
    return layers.Add(name=f"{name}_add")([x, h])


# --- the published successors' generators (architecture-exact, for converted weights) ---
# Layer names are the reference modules' state-dict paths with "." -> "_", so that
# `kzoo.hub.convert.sr` maps every PyTorch parameter onto one Keras layer by name.

SR_ARCHS = ("srresnet", "rrdb", "srvgg", "edsr")
EDSR_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # EDSR-PyTorch src/model/common.py MeanShift (DIV2K mean)
EDSR_RGB_RANGE = 255  # EDSR-PyTorch src/option.py --rgb_range default: the released models' range


def _conv3(filters, name):
    return layers.Conv2D(filters, 3, padding="same", name=name)


def _lrelu(x, name):
    return layers.LeakyReLU(negative_slope=0.2, name=name)(x)


def _scaled_add(residual, x, factor, name):
    """x + factor * residual (`factor` 1: a plain sum)."""
    if factor != 1:
        residual = layers.Rescaling(factor, name=f"{name}_scale")(residual)
    return layers.Add(name=name)([residual, x])


def rrdb_trunk(x, *, scale=4, channels=3, width=64, num_blocks=23, growth=32):
    """ESRGAN's RRDBNet on images in [0, 1] (Wang et al., ECCV 2018 Workshops; BasicSR
    `basicsr/archs/rrdbnet_arch.py`), as Real-ESRGAN uses it (Wang et al., ICCVW 2021).

    conv_first; `num_blocks` residual-in-residual dense blocks (each three dense blocks
    of five 3x3 convs, `growth` channels, LeakyReLU(0.2), no batch norm, residuals
    scaled by 0.2); conv_body + the trunk skip; two (nearest x2 -> conv -> LeakyReLU)
    stages; conv_hr + LeakyReLU; conv_last. For x2 (and x1) the input is first
    pixel-unshuffled by 2 (by 4), so the x4 trunk upscales by `scale` overall.
    """
    if scale not in (1, 2, 4):
        raise ValueError(f"RRDBNet upscales by 1, 2 or 4, got {scale}")
    if scale != 4:
        x = PixelUnshuffle(4 // scale, name="pixel_unshuffle")(x)
    feat = _conv3(width, "conv_first")(x)
    h = feat
    for b in range(num_blocks):
        block_in = h
        for d in range(1, 4):
            p = f"body_{b}_rdb{d}"
            dense_in, feats = h, [h]
            for c in range(1, 6):
                inp = feats[0] if c == 1 else layers.Concatenate(name=f"{p}_cat{c}")(feats)
                out = _conv3(growth if c < 5 else width, f"{p}_conv{c}")(inp)
                if c < 5:
                    feats.append(_lrelu(out, f"{p}_lrelu{c}"))
            h = _scaled_add(out, dense_in, 0.2, f"{p}_add")
        h = _scaled_add(h, block_in, 0.2, f"body_{b}_add")
    h = layers.Add(name="trunk_add")([feat, _conv3(width, "conv_body")(h)])
    for u in (1, 2):
        h = layers.UpSampling2D(2, interpolation="nearest", name=f"up{u}_nearest")(h)
        h = _lrelu(_conv3(width, f"conv_up{u}")(h), f"conv_up{u}_lrelu")
    h = _lrelu(_conv3(width, "conv_hr")(h), "conv_hr_lrelu")
    return _conv3(channels, "conv_last")(h)


def srvgg_trunk(x, *, scale=4, channels=3, width=64, num_blocks=16, activation="prelu"):
    """Real-ESRGAN's SRVGGNetCompact on images in [0, 1] (xinntao/Real-ESRGAN
    `realesrgan/archs/srvgg_arch.py`): `num_blocks` + 1 3x3 convs with an activation
    after each (PReLU per channel; or ReLU, LeakyReLU(0.1)), a last conv to
    `channels * scale**2`, one pixel shuffle, plus the nearest upsampled input (the
    network learns the residual). No conv runs at the output resolution.
    """
    def act(h, i):
        if activation == "prelu":
            return layers.PReLU(shared_axes=[1, 2], name=f"body_{i}")(h)
        if activation == "relu":
            return layers.ReLU(name=f"body_{i}")(h)
        if activation == "leakyrelu":
            return layers.LeakyReLU(negative_slope=0.1, name=f"body_{i}")(h)
        raise ValueError(f"activation must be prelu, relu or leakyrelu, got {activation!r}")

    h = x
    for i in range(num_blocks + 1):
        h = act(_conv3(width, f"body_{2 * i}")(h), 2 * i + 1)
    h = _conv3(channels * scale * scale, f"body_{2 * num_blocks + 2}")(h)
    h = PixelShuffle(scale, name="upsampler")(h)
    base = layers.UpSampling2D(scale, interpolation="nearest", name="base_nearest")(x)
    return layers.Add(name="base_add")([h, base])


def edsr_trunk(x, *, scale=4, channels=3, width=64, num_blocks=16, res_scale=1.0):
    """EDSR on images in [0, 255] (Lim et al., CVPRW 2017; sanghyun-son/EDSR-PyTorch
    `src/model/edsr.py`, `common.py`): MeanShift (subtract the DIV2K mean, a fixed 1x1
    conv), head conv; `num_blocks` residual blocks conv-ReLU-conv without batch norm,
    the residual scaled by `res_scale` (1 baseline, 0.1 the paper's 32x256 model); a
    conv and the global skip; the upsampler (conv to 4x width + pixel shuffle 2, per
    factor 2, or conv to 9x width + pixel shuffle 3); the last conv; MeanShift back.
    """
    if scale & (scale - 1) and scale != 3:
        raise ValueError(f"EDSR's upsampler builds scales 2**n and 3, got {scale}")
    mean_in = layers.Conv2D(3, 1, name="sub_mean", trainable=False)
    h = mean_in(x)
    head = _conv3(width, "head_0")(h)
    h = head
    for b in range(num_blocks):
        r = _conv3(width, f"body_{b}_body_0")(h)
        r = layers.ReLU(name=f"body_{b}_body_1")(r)
        r = _conv3(width, f"body_{b}_body_2")(r)
        h = _scaled_add(r, h, res_scale, f"body_{b}_add")
    h = layers.Add(name="body_add")([_conv3(width, f"body_{num_blocks}")(h), head])
    factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
    for i, r in enumerate(factors):
        h = _conv3(width * r * r, f"tail_0_{2 * i}")(h)
        h = PixelShuffle(r, name=f"tail_0_{2 * i + 1}")(h)
    h = _conv3(channels, "tail_1")(h)
    return layers.Conv2D(3, 1, name="add_mean", trainable=False)(h)


def _edsr_mean_shift(model, rgb_range=EDSR_RGB_RANGE):
    """Set the MeanShift convs as EDSR's `MeanShift(rgb_range)` does (std 1)."""
    import numpy as np

    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        layer = model.get_layer(name)
        layer.kernel.assign(np.eye(3, dtype="float32").reshape(1, 1, 3, 3))
        layer.bias.assign(sign * rgb_range * np.asarray(EDSR_RGB_MEAN, "float32"))


@keras.saving.register_keras_serializable(package="kzoo")
class SRResNet(keras.Model):
    """SRResNet: the SRGAN generator (Ledig et al., 2017, Fig. 4), fully convolutional.

    k9n64 conv + PReLU; `num_blocks` residual blocks (conv-BN-PReLU-conv-BN +
    skip); k3n64 conv + BN + the global skip from the first conv; one upsampling
    block per factor of the scale, conv(64 * r**2) - PixelShuffle(r) - PReLU (two
    x2 blocks for x4); a final k9 conv to `channels`.

    Values: LR input and HR output are in [-1, 1] (the paper scales LR to [0, 1]
    and HR to [-1, 1]; one range for both is the zoo's convention and the first
    conv absorbs the affine difference). The output is **linear** (Fig. 4 ends in
    a plain conv): a tanh would saturate the MSE gradient at the extremes where
    bright and dark details live; outputs are clipped to [-1, 1] when turned
    into pictures and scores. `output_activation="tanh"` is available.

    Trained alone (the SRResNet stage) it is a plain supervised model:
    `compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")`, then `fit` on
    `(lr, hr)` batches -- the paper's SRResNet-MSE (10^6 updates, batch 16,
    96x96 HR crops).

    Args:
        scale: int. Upscaling factor (4 in the paper).
        channels: int. Image channels.
        width: int. Channels of every conv (64 in the paper).
        num_blocks: int. Residual blocks (16 in the paper).
        norm: str. "batch" (paper) or "none".
        output_activation: str or None. None (linear, default) or "tanh".
        upsampled_skip: bool. Not in the paper (default False): add the bilinear
            upsampling of the input to the output, so the network learns only
            the residual detail (global residual learning, Kim et al., VDSR,
            CVPR 2016). Much faster to train; the quick preset uses it.
        arch: str. "srresnet" (this paper's network, default) or one of its published
            successors, built exactly as their authors' PyTorch modules so that their
            released weights load (`kzoo.hub.convert.sr`): "rrdb" (ESRGAN's RRDBNet
            as Real-ESRGAN ships it: `rrdb_trunk`; `width` num_feat, `num_blocks` RRDB
            blocks, `growth` num_grow_ch; scale 4, or 2 / 1 on a pixel-unshuffled
            input), "srvgg" (Real-ESRGAN's SRVGGNetCompact: `srvgg_trunk`;
            `num_blocks` is its num_conv, `activation` its act_type) or "edsr" (EDSR:
            `edsr_trunk`; `num_blocks` n_resblocks, `res_scale`). These take and give
            [-1, 1] like the rest of the zoo and map it to the range their weights
            were trained on ([0, 1]; EDSR [0, 255]) inside the network; `norm` and
            `upsampled_skip` are SRResNet's only.
        growth: int. RRDB's dense growth channels (32).
        res_scale: float. EDSR's residual scaling (1; 0.1 for the 32-block, 256-wide model).
        activation: str. SRVGGNetCompact's activation: "prelu", "relu" or "leakyrelu".

    Call arguments:
        inputs: LR images (batch, h, w, channels) in [-1, 1], any h and w.

    Returns:
        SR images (batch, h * scale, w * scale, channels), about [-1, 1].

    Example:
    >>> model = SRResNet(width=8, num_blocks=2)
    >>> model(keras.ops.zeros((1, 6, 5, 3))).shape
    TensorShape([1, 24, 20, 3])

    References:
        Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
        Generative Adversarial Network", CVPR 2017.
        Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
        Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016.
        Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
        Networks", ECCV Workshops 2018 (arch="rrdb").
        Wang, Xie, Dong & Shan, "Real-ESRGAN: Training Real-World Blind
        Super-Resolution with Pure Synthetic Data", ICCV Workshops 2021
        (arch="rrdb" x2, arch="srvgg").
        Lim, Son, Kim, Nah & Lee, "Enhanced Deep Residual Networks for Single
        Image Super-Resolution", CVPR Workshops 2017 (arch="edsr").
    """

    @takes(SRRESNET_OPTIONS)
    def __init__(self, *, scale, channels, width, num_blocks, norm, output_activation, upsampled_skip,
                 arch, growth, res_scale, activation, **kwargs):
        if arch not in SR_ARCHS:
            raise ValueError(f"arch must be one of {', '.join(SR_ARCHS)}, got {arch!r}")
        # === Layers / Functional Model ===
        lr = keras.Input((None, None, channels), name="lr")
        if arch != "srresnet":
            out = self._successor(lr, arch, scale=scale, channels=channels, width=width,
                                  num_blocks=num_blocks, growth=growth, res_scale=res_scale,
                                  activation=activation)
        else:
            out = self._srresnet(lr, scale=scale, channels=channels, width=width,
                                 num_blocks=num_blocks, norm=norm, upsampled_skip=upsampled_skip)
        out = layers.Activation(output_activation or "linear", dtype="float32", name="sr")(out)
        kwargs.setdefault("name", "srresnet")
        super().__init__(inputs=lr, outputs=out, **kwargs)
        if arch == "edsr":
            _edsr_mean_shift(self)
        # === Config ===
        self.scale = scale
        self.channels = channels
        self.width = width
        self.num_blocks = num_blocks
        self.norm = norm
        self.output_activation = output_activation
        self.upsampled_skip = upsampled_skip
        self.arch = arch
        self.growth = growth
        self.res_scale = res_scale
        self.activation = activation

    @staticmethod
    def _successor(lr, arch, *, growth, res_scale, activation, **kw):
        """ESRGAN's RRDBNet / Real-ESRGAN's SRVGGNetCompact on [0, 1], EDSR on [0, 255]:
        the [-1, 1] input is mapped to the range the published weights were trained on,
        and the output back."""
        top = EDSR_RGB_RANGE if arch == "edsr" else 1.0
        x = layers.Rescaling(top / 2, offset=top / 2, name="to_upstream_range")(lr)
        if arch == "rrdb":
            y = rrdb_trunk(x, growth=growth, **kw)
        elif arch == "srvgg":
            y = srvgg_trunk(x, activation=activation, **kw)
        else:
            y = edsr_trunk(x, res_scale=res_scale, **kw)
        return layers.Rescaling(2 / top, offset=-1.0, name="from_upstream_range")(y)

    @staticmethod
    def _srresnet(lr, *, scale, channels, width, num_blocks, norm, upsampled_skip):
        h = layers.Conv2D(width, 9, padding="same", name="head_conv")(lr)
        head = _prelu("head_prelu")(h)
        h = head
        for i in range(num_blocks):
            h = srresnet_residual_block(h, width, norm, name=f"block{i + 1}")
        h = _conv_norm(h, width, 3, norm, "trunk")
        h = layers.Add(name="global_skip")([head, h])
        for i, r in enumerate(upsample_factors(scale)):
            h = layers.Conv2D(width * r * r, 3, padding="same", name=f"up{i + 1}_conv")(h)
            h = PixelShuffle(r, name=f"up{i + 1}_shuffle")(h)
            h = _prelu(f"up{i + 1}_prelu")(h)
        out = layers.Conv2D(channels, 9, padding="same", name="out_conv")(h)
        if upsampled_skip:
            # bilinear, not bicubic: XLA has no ResizeBicubic kernel
            up = layers.UpSampling2D(scale, interpolation="bilinear", name="upsampled_skip")(lr)
            out = layers.Add(name="residual_sr")([up, out])
        return out

    def inference_parts(self):
        """The network itself is what a deployment runs (export and hub read this)."""
        return {"generator": self}

    @property
    def size_multiple(self):
        """What LR heights and widths must be a multiple of (RRDBNet x2 / x1 unshuffle by 2 / 4)."""
        return 4 // self.scale if self.arch == "rrdb" and self.scale in (1, 2) else 1

    def compile(self, optimizer="rmsprop", loss="mse", **kwargs):
        """Keras' `compile`, with the pixel MSE of SRResNet-MSE as the default loss."""
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    # Keras restores a custom `compile` only when these two are overridden.
    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)  # so that saved optimizer state loads

    def sample_batch(self, batch_size=2, rng=None):
        """A random `(lr, hr)` training pair with 4x4 LR images (tests, examples)."""
        return _sr_pair(rng, batch_size, 4 * self.scale, self.scale, self.channels)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "scale": self.scale,
                "channels": self.channels, "width": self.width, "num_blocks": self.num_blocks,
                "norm": self.norm, "output_activation": self.output_activation,
                "upsampled_skip": self.upsampled_skip, "arch": self.arch, "growth": self.growth,
                "res_scale": self.res_scale, "activation": self.activation}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def card(self, base_size=None):
        """The model card: `generator`, LR images of any size -> `scale` times larger SR images.

        Args:
            base_size: int or None. An LR size for sample inputs; None: the paper's
                96x96 HR crops divided by the scale.
        """
        from kzoo.card import ModelCard, docstring_references, image_to_image

        linear = self.output_activation in (None, "linear")
        generator = image_to_image(
            "generator", self.channels, self.channels, size_multiple=self.size_multiple,
            base_size=base_size or max(96 // self.scale, 1), input_name="lr", output_name="sr",
            clip=linear)  # an image in [-1, 1]: a linear output is clipped to it by `predict` and scores
        return ModelCard(task="super-resolution",
                         summary=f"upscales images {self.scale}x (any input size)",
                         endpoints=(generator,), references=docstring_references(type(self)))


def _sr_pair(rng, batch_size, hr_size, scale, channels):
    """Random HR images in [-1, 1] and their `scale`x box-filtered LR versions."""
    hr = random_images(rng, batch_size, hr_size, hr_size, channels)
    lr_size = hr_size // scale
    lr = hr.reshape(batch_size, lr_size, scale, lr_size, scale, channels).mean((2, 4))
    return lr, hr


def srgan_discriminator(*, image_size=96, channels=3, width=64, dense_units=1024, norm="batch",
                        name="discriminator"):
    """SRGAN's VGG-style discriminator (Ledig et al., Fig. 4): HR patch -> one logit.

    Eight 3x3 convs, widths 64-64-128-128-256-256-512-512 (times `width / 64`),
    stride 2 on every second, LeakyReLU(0.2), batch norm on all but the first;
    then dense(1024) - LeakyReLU(0.2) - dense(1). The sigmoid is folded into the
    loss (logits). The dense head sits on the flattened (image_size/16)^2 map,
    as in the paper (6x6x512 for 96x96 crops), rather than on a global pooling:
    D only ever sees training crops of one fixed size, and flattening keeps the
    spatial layout the paper's classifier sees.
    """
    image = keras.Input((image_size, image_size, channels), name="hr")
    h = image
    for i in range(8):
        h = conv_block(h, width * 2 ** (i // 2), kernel_size=3, strides=1 + i % 2,
                       norm=None if i == 0 else norm, name=f"conv{i + 1}")
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(dense_units, name="dense")(h)
    h = layers.LeakyReLU(negative_slope=0.2, name="dense_act")(h)
    logit = layers.Dense(1, dtype="float32", name="logit")(h)
    return keras.Model(image, logit, name=name)


# --- feature networks for the content loss ----------------------------------------

def vgg19_weights_path(weights="imagenet"):
    """The VGG19 "notop" weights file `weights` names ("imagenet": Keras' cached copy in
    `$KERAS_HOME/models/` or `~/.keras/models/`); KzooError if it does not exist."""
    if weights == "imagenet":
        home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
        weights = os.path.join(home, "models", VGG19_NOTOP_FILE)
    if not os.path.isfile(weights):
        raise KzooError(f"VGG19 weights {weights!r} not found (kzoo never downloads them: give the "
                        f"path of {VGG19_NOTOP_FILE}, or use the offline random feature network)")
    return weights


def vgg19_features(weights="imagenet", layer="block5_conv4"):
    """The paper's VGG54 feature network: VGG19 up to `layer` (after its ReLU), frozen.

    Takes [-1, 1] RGB of any size. Never downloads: `weights` is a path to the
    Keras VGG19 "notop" weights file, or "imagenet" for Keras' cached copy
    (`$KERAS_HOME/models/` or `~/.keras/models/`).

    Raises:
        KzooError: the weights file does not exist.
    """
    weights = vgg19_weights_path(weights)
    base = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    base.load_weights(weights)
    base.trainable = False
    image = keras.Input((None, None, 3), name="image")
    caffe = CaffeImageInput(name="vgg_preprocess")(image)
    feats = keras.Model(base.input, base.get_layer(layer).output)(caffe)
    model = keras.Model(image, feats, name="vgg19_features")
    model.trainable = False
    return model


def random_vgg_features(width=64, layer="block5_conv4", seed=0):
    """VGG19's topology up to `layer` with fixed, seeded He-normal random weights, frozen.

    The offline default feature network for the content loss (see the module
    docstring). Input: [-1, 1] RGB fed directly; He initialisation with zero
    biases keeps the mean square of activations near that of the input, so its
    feature MSE is on the scale of a pixel MSE (feature scale 1). Channels are
    `width * (1, 2, 4, 8, 8)` per block (64 is VGG19's).
    """
    image = keras.Input((None, None, 3), name="image")
    h = image
    for b, (n, mult) in enumerate(zip(VGG19_BLOCKS, (1, 2, 4, 8, 8))):
        for c in range(n):
            conv_name = f"block{b + 1}_conv{c + 1}"
            h = layers.Conv2D(width * mult, 3, padding="same", activation="relu", name=conv_name,
                              kernel_initializer=keras.initializers.HeNormal(seed=seed + 7 * b + c))(h)
            if conv_name == layer:
                model = keras.Model(image, h, name="random_vgg_features")
                model.trainable = False
                return model
        h = layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(h)
    raise ValueError(f"unknown VGG19 layer {layer!r} (e.g. block2_conv2, block5_conv4)")


@keras.saving.register_keras_serializable(package="kzoo")
class SRGAN(AdversarialModel):
    """SRGAN: SRResNet generator, VGG-style discriminator, content + adversarial loss.

    Generator loss = content + `adversarial_weight` * non-saturating adversarial
    loss -log D(G(lr)) (Ledig et al., Eq. 3-6); the discriminator minimises the
    usual cross-entropy on HR crops vs SR outputs. Content is "features"
    (`feature_scale` * MSE between `feature_extractor` maps, the paper's
    SRGAN-VGG54 with VGG19 and scale 1/12.75^2) or "mse" (SRGAN-MSE). Paper
    training: generator initialised from a trained SRResNet, Adam(1e-4, beta1 0.9)
    for 10^5 updates then 1e-5 for 10^5, batch 16 of 96x96 HR crops (the recipe).

    Args:
        image_size: int. HR crop size the discriminator sees (96).
        scale: int. Upscaling factor (4).
        channels: int. Image channels.
        width: int. Generator width (64).
        num_blocks: int. Generator residual blocks (16).
        discriminator_width: int. Width of D's first conv (64).
        dense_units: int. D's hidden dense layer (1024).
        norm: str. "batch" (paper) or "none", in both networks.
        upsampled_skip: bool. Generator adds the bilinear upsampled input (see `SRResNet`).
        content_loss: str. "features" (paper) or "mse".
        adversarial_weight: float. Weight of the adversarial term (1e-3).
        adversarial_loss: str. "standard" (the paper's -log D(G(lr))) or "relativistic":
            ESRGAN's relativistic average GAN losses for both networks
            (`kzoo.losses.relativistic_average_d_loss` / `_g_loss`; Wang et al., 2018).
        feature_extractor: keras.Model or None. [-1, 1] RGB -> feature map; None
            builds `random_vgg_features()` when `content_loss="features"`.
        feature_scale: float. Multiplies the feature MSE (1/12.75^2 for VGG19).
        seed: int or None. Seed of the model's noise generator (unused by the losses).

    Call arguments:
        inputs: LR images (batch, h, w, channels) in [-1, 1].

    Returns:
        SR images (batch, h * scale, w * scale, channels).

    Example:
    >>> model = SRGAN(image_size=16, width=8, num_blocks=2, discriminator_width=4,
    ...               dense_units=16, content_loss="mse")
    >>> model(keras.ops.zeros((2, 4, 4, 3))).shape
    TensorShape([2, 16, 16, 3])

    References:
        Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
        Generative Adversarial Network", CVPR 2017.
    """

    loss_names = ("d_loss", "g_loss", "content_loss", "adversarial_loss")

    @takes(SRGAN_OPTIONS)
    def __init__(self, *, image_size, scale, channels, width, num_blocks, discriminator_width, dense_units,
                 norm, upsampled_skip, content_loss, adversarial_weight, feature_extractor, feature_scale,
                 adversarial_loss, seed, **kwargs):
        if content_loss not in ("features", "mse"):
            raise ValueError(f"content_loss must be 'features' or 'mse', got {content_loss!r}")
        if adversarial_loss not in ("standard", "relativistic"):
            raise ValueError(f"adversarial_loss must be 'standard' or 'relativistic', got "
                             f"{adversarial_loss!r}")
        if image_size % scale:
            raise ValueError(f"image_size {image_size} must be a multiple of the scale {scale}")
        # === Layers ===
        generator = SRResNet(scale=scale, channels=channels, width=width, num_blocks=num_blocks,
                             norm=norm, upsampled_skip=upsampled_skip, name="generator")
        discriminator = srgan_discriminator(image_size=image_size, channels=channels,
                                            width=discriminator_width, dense_units=dense_units, norm=norm)
        if isinstance(feature_extractor, dict):
            feature_extractor = keras.saving.deserialize_keras_object(feature_extractor)
        if content_loss == "features" and feature_extractor is None:
            feature_extractor = random_vgg_features()
        if feature_extractor is not None:
            feature_extractor.trainable = False
        # === Model ===
        super().__init__(generator=generator, discriminator=discriminator, seed=seed, **kwargs)
        self.feature_extractor = feature_extractor
        # === Config ===
        self.image_size = image_size
        self.scale = scale
        self.channels = channels
        self.width = width
        self.num_blocks = num_blocks
        self.discriminator_width = discriminator_width
        self.dense_units = dense_units
        self.norm = norm
        self.upsampled_skip = upsampled_skip
        self.content_loss = content_loss
        self.adversarial_weight = adversarial_weight
        self.feature_scale = feature_scale
        self.adversarial_loss = adversarial_loss

    def content(self, sr, hr):
        """The content loss between SR outputs and HR targets."""
        if self.content_loss == "mse":
            return losses.mse(sr, hr)
        fs = self.feature_extractor(sr, training=False)
        fh = self.feature_extractor(hr, training=False)
        return self.feature_scale * losses.mse(fs, fh)

    def generate(self, data, training):
        """SR = G(LR) for the batch's LR images."""
        lr, _ = unpack(data)
        return self.generator(lr, training=training)

    def discriminator_loss(self, data, fakes, training):
        _, hr = unpack(data)
        d_loss = (losses.relativistic_average_d_loss if self.adversarial_loss == "relativistic"
                  else losses.nonsaturating_d_loss)
        loss = d_loss(self.discriminator(hr, training=training),
                      self.discriminator(fakes, training=training))
        return loss, {"d_loss": loss}

    def generator_loss(self, data, fakes, training):
        _, hr = unpack(data)
        sr = fakes
        content = self.content(sr, hr)
        fake_logits = self.discriminator(sr, training=training)
        if self.adversarial_loss == "relativistic":
            adversarial = losses.relativistic_average_g_loss(
                self.discriminator(hr, training=training), fake_logits)
        else:
            adversarial = losses.nonsaturating_g_loss(fake_logits)
        loss = content + self.adversarial_weight * adversarial
        return loss, {"g_loss": loss, "content_loss": content, "adversarial_loss": adversarial}

    def sample_batch(self, batch_size=2, rng=None):
        """A random `(lr, hr)` training pair: HR crops at `image_size`, LR their box downscaling."""
        return _sr_pair(rng, batch_size, self.image_size, self.scale, self.channels)

    def get_config(self):
        config = super().get_config()
        config.pop("d_steps")
        config.update(
            image_size=self.image_size, scale=self.scale, channels=self.channels, width=self.width,
            num_blocks=self.num_blocks, discriminator_width=self.discriminator_width,
            dense_units=self.dense_units, norm=self.norm, upsampled_skip=self.upsampled_skip,
            content_loss=self.content_loss,
            adversarial_weight=self.adversarial_weight, feature_scale=self.feature_scale,
            adversarial_loss=self.adversarial_loss, feature_extractor=None)
        if self.feature_extractor is not None:
            # Through JSON, as in a saved file (tuples become lists), so configs compare equal.
            config["feature_extractor"] = json.loads(json.dumps(
                keras.saving.serialize_keras_object(self.feature_extractor)))
        return config

    def card(self):
        """The model card: its generator's (`SRResNet.card`), at the LR size of the HR crops."""
        import dataclasses

        from kzoo.card import docstring_references

        card = self.generator.card(base_size=self.image_size // self.scale)
        return dataclasses.replace(card, references=docstring_references(type(self)))


@register_model(SRResNet, tiny=TINY_SRRESNET)
def srresnet(**overrides):
    """SRResNet x4 at the paper's configuration (16 blocks, width 64)."""
    return SRResNet(**overrides)


@register_model(SRGAN, tiny=TINY)
def srgan(**overrides):
    """SRGAN x4 at the paper's configuration (96x96 HR crops, feature content loss)."""
    return SRGAN(**overrides)
