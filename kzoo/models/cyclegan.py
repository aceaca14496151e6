"""CycleGAN (Zhu et al., 2017): two ResNet generators, two PatchGANs, cycle consistency."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from kzoo import losses
from kzoo.layers import (ReflectionPadding2D, check_patchgan_size, conv_block, dcgan_init,
                         normalization, patchgan_discriminator)
from kzoo.models.adversarial import AdversarialModel
from kzoo.options import takes
from kzoo.options.cyclegan import CYCLEGAN_OPTIONS
from kzoo.training import random_images
from kzoo.zoo import register_model

TINY = {"image_size": 16, "width": 4, "n_layers": 2, "num_blocks": 1, "pool_size": 4}


def resnet_block(x, filters, *, norm="instance", bias=None, name=None):
    """Residual block with reflection padding: x + [pad-conv3-norm-ReLU-pad-conv3-norm](x).

    The block of Johnson et al. (2016) as used by CycleGAN's generator (Zhu et al.,
    2017, Sec. 7.2: "R256"), N(0, 0.02) initialised, no dropout. `bias`: whether
    the convs have biases (None: only without a norm).
    """
    h = x
    for i in (1, 2):
        h = ReflectionPadding2D(1, name=f"{name}_pad{i}")(h)
        h = layers.Conv2D(filters, 3, padding="valid",
                          use_bias=norm in (None, "none") if bias is None else bias,
                          kernel_initializer=dcgan_init(), name=f"{name}_conv{i}")(h)
        norm_layer = normalization(norm, name=f"{name}_norm{i}")
        if norm_layer is not None:
            h = norm_layer(h)
        if i == 1:
            h = layers.ReLU(name=f"{name}_relu")(h)
    return layers.Add(name=f"{name}_add")([x, h])



def resnet_generator(*, channels=3, width=64, num_blocks=9, image_size=None, norm="instance",
                     exact=None, upsample="transpose", input_skip=False, name="generator"):
    """CycleGAN's generator: c7s1-64, d128, d256, `num_blocks` x R256, u128, u64, c7s1-3.

    Reflection padding before the 7x7 convs and inside the residual blocks,
    instance normalization without affine parameters and ReLU after every conv
    but the last, tanh output; N(0, 0.02) init (Zhu et al., 2017, Sec. 7.2,
    after Johnson et al., 2016). Fully convolutional: any size divisible by 4.

    `exact="junyanz"` builds, layer for layer, the authors' PyTorch `ResnetGenerator`
    ("resnet_9blocks" / "resnet_6blocks" of pytorch-CycleGAN-and-pix2pix
    `models/networks.py`), so the released CycleGAN weights load unchanged
    (`kzoo.hub.convert.junyanz`): every conv has a bias when `norm="instance"` (as
    there; instance norm cancels it, the released files hold it) and none before
    batch norm but the last; the stride-2 convs pad one pixel on every side
    (PyTorch's `padding=1`, not TensorFlow's "same", which pads only after), and
    the transposed convs (`padding=1, output_padding=1`) drop the first row and
    column of the full output, where "same" drops the last.

    `upsample="resize"` (or "bilinear") makes u128 and u64 a resize then a 3x3
    conv (Odena et al., 2016; `kzoo.layers.conv.upsample_conv`).

    Args:
        norm: str. "instance" (the paper's) or "batch" (junyanz's `--norm batch`).
        exact: None or "junyanz". None: the kzoo layout above.
        upsample: str. "transpose" (the paper's), "resize" or "bilinear".
        input_skip: bool. Not in the paper (default False): the input reaches the
            output twice. The output is clip(input + tanh(c7s1-3), -1, 1), so the
            network learns the change it makes to its input (global residual
            learning, Kim et al., VDSR, CVPR 2016, as `SRResNet(upsampled_skip=True)`)
            and starts near the identity; and c7s1-3 sees the input concatenated to
            u64's features, as a U-Net's outermost skip does (the authors' code also
            offers U-Net generators, `--netG unet_256`). Instance normalization
            removes each image's mean and contrast from every feature map, so without
            that skip the generator cannot tell how bright or saturated its input is,
            and a change that depends on it (a colour grade) comes out wrong in
            structure (SSIM 0.833 vs 0.915 with it, quick preset, 2026-12-03).
    """
    if exact not in (None, "junyanz"):
        raise ValueError(f"exact must be None or 'junyanz', got {exact!r}")
    if exact == "junyanz" and input_skip:
        raise ValueError("exact='junyanz' is the authors' generator, which has no input skip")
    if exact == "junyanz" and upsample != "transpose":
        raise ValueError(f"exact='junyanz' upsamples by transposed convs, got upsample={upsample!r}")
    if exact == "junyanz":
        return _junyanz_resnet(channels, width, num_blocks, image_size, norm, name)
    image = keras.Input((image_size, image_size, channels), name="image")
    h = ReflectionPadding2D(3, name="in_pad")(image)
    h = conv_block(h, width, kernel_size=7, strides=1, padding="valid", norm=norm,
                   activation="relu", name="c7s1")
    for i in (1, 2):
        h = conv_block(h, width * 2 ** i, kernel_size=3, strides=2, norm=norm,
                       activation="relu", name=f"d{i}")
    for b in range(num_blocks):
        h = resnet_block(h, width * 4, norm=norm, name=f"res{b}")
    for i in (1, 0):
        h = conv_block(h, width * 2 ** i, kernel_size=3, strides=2, norm=norm,
                       activation="relu", transpose=True, upsample=upsample, name=f"u{i}")
    if input_skip:  # the last conv sees the input itself, which instance norm hid from the rest
        h = layers.Concatenate(name="with_input")([h, image])
    h = ReflectionPadding2D(3, name="out_pad")(h)
    h = layers.Conv2D(channels, 7, padding="valid", kernel_initializer=dcgan_init(), name="out_conv")(h)
    if not input_skip:
        out = layers.Activation("tanh", dtype="float32", name="output")(h)
        return keras.Model(image, out, name=name)
    change = layers.Activation("tanh", dtype="float32", name="change")(h)
    out = layers.Add(dtype="float32", name="input_skip")([image, change])
    out = layers.Activation("hard_tanh", dtype="float32", name="output")(out)  # clip to [-1, 1]
    return keras.Model(image, out, name=name)


def _junyanz_resnet(channels, width, num_blocks, image_size, norm, name):
    """`resnet_generator(exact="junyanz")`: junyanz's `ResnetGenerator` with deconvolutions."""
    bias = norm == "instance"  # networks.py: use_bias = norm_layer == InstanceNorm2d
    init = dcgan_init()

    def norm_relu(h, prefix):
        h = normalization(norm, name=f"{prefix}_norm")(h)
        return layers.ReLU(name=f"{prefix}_act")(h)

    image = keras.Input((image_size, image_size, channels), name="image")
    h = ReflectionPadding2D(3, name="in_pad")(image)
    h = layers.Conv2D(width, 7, padding="valid", use_bias=bias, kernel_initializer=init,
                      name="c7s1_conv")(h)
    h = norm_relu(h, "c7s1")
    for i in (1, 2):
        h = layers.ZeroPadding2D(1, name=f"d{i}_pad")(h)
        h = layers.Conv2D(width * 2 ** i, 3, strides=2, padding="valid", use_bias=bias,
                          kernel_initializer=init, name=f"d{i}_conv")(h)
        h = norm_relu(h, f"d{i}")
    for b in range(num_blocks):
        h = resnet_block(h, width * 4, norm=norm, bias=bias, name=f"res{b}")
    for i in (1, 0):
        h = layers.Conv2DTranspose(width * 2 ** i, 3, strides=2, padding="valid", use_bias=bias,
                                   kernel_initializer=init, name=f"u{i}_conv")(h)
        h = layers.Cropping2D(((1, 0), (1, 0)), name=f"u{i}_crop")(h)
        h = norm_relu(h, f"u{i}")
    h = ReflectionPadding2D(3, name="out_pad")(h)
    h = layers.Conv2D(channels, 7, padding="valid", kernel_initializer=init, name="out_conv")(h)
    out = layers.Activation("tanh", dtype="float32", name="output")(h)
    return keras.Model(image, out, name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class ImageHistoryPool(layers.Layer):
    """A buffer of previously generated images for the discriminator (Shrivastava et al., 2017).

    Holds up to `pool_size` images in non-trainable variables (saved and restored
    with the model). Called on a batch of fresh fakes, it returns the batch the
    discriminator should see, following CycleGAN's `ImagePool`: while the pool is
    filling, each fake is stored and returned as is; once full, each fake is, with
    probability 1/2, swapped with a random stored image (the stored one is
    returned, the fake takes its slot), else returned as is. Randomness comes
    from the `keras.random.SeedGenerator` passed in, so the pool works inside a
    compiled `train_step`. (Fakes of one batch are handled at once: two fakes
    drawing the same slot both return its old image and one of them stays.)

    Args:
        pool_size: int. Images kept (50 in Zhu et al., 2017); 0 disables the pool.
        image_shape: (height, width, channels) of the images.

    Call arguments:
        images: (batch, height, width, channels) generated images.
        seed_generator: `keras.random.SeedGenerator` for the draws.
    """

    def __init__(self, pool_size=50, image_shape=(256, 256, 3), **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.images = self.add_weight(shape=(max(self.pool_size, 1), *self.image_shape),
                                      initializer="zeros", trainable=False,
                                      aggregation="only_first_replica", name="images")
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                     aggregation="only_first_replica", name="count")
        self.built = True

    def call(self, images, seed_generator=None):
        if self.pool_size == 0:
            return images
        ops = keras.ops
        images = ops.cast(images, self.images.dtype)
        n = ops.shape(images)[0]
        position = ops.cast(self.count, "int32") + ops.arange(n, dtype="int32")
        filling = position < self.pool_size
        swap = ops.logical_and(
            ops.logical_not(filling),
            keras.random.uniform((n,), seed=seed_generator) < 0.5)
        slot = keras.random.randint((n,), 0, self.pool_size, dtype="int32", seed=seed_generator)
        slot = ops.where(filling, position, slot)
        old = ops.take(self.images, slot, axis=0)
        keep = ops.reshape(ops.logical_or(filling, swap), (-1, 1, 1, 1))
        self.images.assign(ops.scatter_update(self.images, ops.expand_dims(slot, -1),
                                              ops.where(keep, images, old)))
        self.count.assign(ops.minimum(self.count + ops.cast(n, "int32"), self.pool_size))
        return ops.where(ops.reshape(swap, (-1, 1, 1, 1)), old, images)

    def reset_state(self):
        """Empty the pool (a hub preset keeps no training state)."""
        self.images.assign(keras.ops.zeros_like(self.images))
        self.count.assign(0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": self.image_shape}


@keras.saving.register_keras_serializable(package="kzoo")
class LinearDecayAfterHalf(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to zero (Zhu et al., 2017, Sec. 7.1).

    `lr(step) = initial * min(1, (total_steps - step) / (total_steps - decay_start))`,
    clipped at 0, where `decay_start = round(decay_fraction * total_steps)`: the
    paper keeps 2e-4 for 100 epochs and decays linearly to zero over the next 100.

    Args:
        initial_learning_rate: float.
        total_steps: int. Optimizer steps of the whole run.
        decay_fraction: float. Share of the run before decay starts (0.5).
    """

    def __init__(self, initial_learning_rate, total_steps, decay_fraction=0.5):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_fraction = float(decay_fraction)

    def __call__(self, step):
        start = round(self.decay_fraction * self.total_steps)
        span = max(self.total_steps - start, 1)
        step = ops.cast(step, "float32")
        factor = ops.clip((self.total_steps - step) / span, 0.0, 1.0)
        return self.initial_learning_rate * factor

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "decay_fraction": self.decay_fraction}


@keras.saving.register_keras_serializable(package="kzoo")
class CycleGAN(AdversarialModel):
    """CycleGAN: unpaired translation between domains A and B with cycle consistency.

    Two ResNet generators, `generator_ab`: A -> B and `generator_ba`: B -> A
    (`resnet_generator`; 9 residual blocks at 256x256, 6 at 128x128 and below),
    and two 70x70 PatchGANs with instance norm: `discriminator_a` judges images
    of domain A (real A vs G_ba(B)), `discriminator_b` those of domain B.
    Losses (Zhu et al., 2017, Eq. 1-3, Sec. 7.1): least-squares adversarial
    losses (Mao et al., 2017), cycle loss `cycle_weight` (10) times
    |G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1, identity loss
    `identity_weight * cycle_weight` (0.5 * 10) times |G_ba(a) - a|_1 +
    |G_ab(b) - b|_1; each discriminator's loss is halved and sees fakes drawn
    from a history of `pool_size` (50) generated images (Shrivastava et al.,
    2017). Trained with Adam(2e-4, beta1 0.5), batch 1, the learning rate
    decaying linearly to zero over the second half (`LinearDecayAfterHalf`, set
    by the recipe). The shared train_step follows the authors'
    `optimize_parameters`: one forward pass of both generators (translations,
    cycle reconstructions, identity maps), the generators' update, then both
    discriminators' on pooled, detached fakes of that pass, on each batch of
    `(a, b)` unpaired images.

    `model(x)` runs `generator_ab`; `inference_parts()` gives both directions.

    Args:
        image_size: int. Training size (sets the history pools' shape and the
            default number of residual blocks).
        channels: int. Image channels of both domains.
        width: int. Filters of the first conv of G and D.
        num_blocks: int or None. Residual blocks; None: 9 if image_size >= 256 else 6.
        n_layers: int. PatchGAN stride-2 layers (3: 70x70 patches).
        cycle_weight: float. lambda of the cycle loss.
        identity_weight: float. Identity loss weight relative to `cycle_weight`.
        pool_size: int. Images in each discriminator's history pool (0: none).
        upsample: str. Generator upsampling: "transpose" (paper), "resize"
            (nearest-neighbour then conv) or "bilinear" (Odena et al., 2016).
        seed: int or None. Seed of the model's noise generator (the pools' draws).
        norm: str. Normalization of G and D: "instance" (the paper's) or "batch".
        exact: str or None. "junyanz": generators of the authors' PyTorch code,
            layer for layer (`resnet_generator`), for their published weights.
        input_skip: bool. Not in the paper (default False): each generator sees
            its input in its last conv and adds it to its output
            (`resnet_generator`), learning the change.

    Call arguments:
        inputs: (batch, h, w, channels) images of domain A in [-1, 1], h and w
            any multiple of 4.

    Returns:
        G_ab(inputs): (batch, h, w, channels) images of domain B in [-1, 1].

    Example:
    >>> model = CycleGAN(image_size=16, width=4, num_blocks=1, pool_size=4, n_layers=2)
    >>> model(keras.ops.zeros((2, 24, 24, 3))).shape
    TensorShape([2, 24, 24, 3])

    References:
        Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using
        Cycle-Consistent Adversarial Networks", ICCV 2017.
    """

    loss_names = ("d_loss", "d_a", "d_b", "g_loss", "g_gan", "g_cycle", "g_identity")
    # what an option implies for the recipes' option resolution (`kzoo.recipes.config.implied`):
    # the authors' ResnetGenerator upsamples by transposed convs and has no input skip
    implied_options = CYCLEGAN_OPTIONS.implied
    generator_first = True  # the authors' order: G_A and G_B, then D_A and D_B

    @takes(CYCLEGAN_OPTIONS)
    def __init__(self, *, image_size, channels, width, num_blocks, n_layers, cycle_weight, identity_weight,
                 pool_size, upsample, seed, norm, exact, input_skip, **kwargs):
        # === Layers ===
        blocks = num_blocks if num_blocks is not None else (9 if image_size >= 256 else 6)
        make_g = lambda name: resnet_generator(channels=channels, width=width,  # noqa: E731
                                               num_blocks=blocks, norm=norm, exact=exact,
                                               upsample=upsample, input_skip=input_skip,
                                               name=name)
        make_d = lambda name: patchgan_discriminator(channels=channels, width=width,  # noqa: E731
                                                     n_layers=n_layers, norm=norm, name=name)
        generator_ab, generator_ba = make_g("generator_ab"), make_g("generator_ba")
        discriminator_a, discriminator_b = make_d("discriminator_a"), make_d("discriminator_b")
        check_patchgan_size(image_size, n_layers)
        # === Model ===
        super().__init__(generator=generator_ab, discriminator=discriminator_b, seed=seed, **kwargs)
        self.generator_ba, self.discriminator_a = generator_ba, discriminator_a
        shape = (image_size, image_size, channels)
        self.pool_a = ImageHistoryPool(pool_size, shape, name="pool_a")  # fakes of domain A
        self.pool_b = ImageHistoryPool(pool_size, shape, name="pool_b")
        # === Config ===
        self.image_size = image_size
        self.channels = channels
        self.width = width
        self.num_blocks = num_blocks
        self.n_layers = n_layers
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.pool_size = pool_size
        self.norm = norm
        self.exact = exact
        self.upsample = upsample
        self.input_skip = input_skip

    @property
    def generator_ab(self):
        return self.generator

    @property
    def discriminator_b(self):
        return self.discriminator

    @property
    def generator_networks(self):
        return [self.generator_ab, self.generator_ba]

    @property
    def discriminator_networks(self):
        return [self.discriminator_a, self.discriminator_b]

    def inference_parts(self):
        return {"generator_ab": self.generator_ab, "generator_ba": self.generator_ba}

    def generate(self, data, training):
        """Both translations, both cycle reconstructions and (with identity loss) both identity maps."""
        real_a, real_b = data
        fakes = {"fake_b": self.generator_ab(real_a, training=training),
                 "fake_a": self.generator_ba(real_b, training=training)}
        fakes["rec_a"] = self.generator_ba(fakes["fake_b"], training=training)
        fakes["rec_b"] = self.generator_ab(fakes["fake_a"], training=training)
        if self.identity_weight > 0:
            fakes["idt_a"] = self.generator_ba(real_a, training=training)
            fakes["idt_b"] = self.generator_ab(real_b, training=training)
        return fakes

    def discriminator_loss(self, data, fakes, training):
        real_a, real_b = data
        fake_a, fake_b = fakes["fake_a"], fakes["fake_b"]
        if training:
            fake_a = self.pool_a(fake_a, seed_generator=self.seed_generator)
            fake_b = self.pool_b(fake_b, seed_generator=self.seed_generator)
        d_a = 0.5 * losses.lsgan_d_loss(self.discriminator_a(real_a, training=training),
                                        self.discriminator_a(fake_a, training=training))
        d_b = 0.5 * losses.lsgan_d_loss(self.discriminator_b(real_b, training=training),
                                        self.discriminator_b(fake_b, training=training))
        loss = d_a + d_b
        return loss, {"d_loss": loss, "d_a": d_a, "d_b": d_b}

    def generator_loss(self, data, fakes, training):
        real_a, real_b = data
        gan = (losses.lsgan_g_loss(self.discriminator_b(fakes["fake_b"], training=training))
               + losses.lsgan_g_loss(self.discriminator_a(fakes["fake_a"], training=training)))
        cycle = losses.l1(fakes["rec_a"], real_a) + losses.l1(fakes["rec_b"], real_b)
        loss = gan + self.cycle_weight * cycle
        logs = {"g_gan": gan, "g_cycle": cycle}
        if self.identity_weight > 0:
            identity = losses.l1(fakes["idt_a"], real_a) + losses.l1(fakes["idt_b"], real_b)
            loss = loss + self.identity_weight * self.cycle_weight * identity
        else:
            identity = ops.zeros(())
        logs.update(g_loss=loss, g_identity=identity)
        return loss, logs

    def sample_batch(self, batch_size=2, rng=None):
        """A random `(a, b)` batch of unpaired images of both domains (tests, examples)."""
        rng = np.random.default_rng(rng)
        size = self.image_size
        return tuple(random_images(rng, batch_size, size, size, self.channels) for _ in "ab")

    def get_config(self):
        config = super().get_config()
        config.pop("d_steps")
        config.update(image_size=self.image_size, channels=self.channels, width=self.width,
                      num_blocks=self.num_blocks, n_layers=self.n_layers,
                      cycle_weight=self.cycle_weight, identity_weight=self.identity_weight,
                      pool_size=self.pool_size, upsample=self.upsample, norm=self.norm,
                      exact=self.exact, input_skip=self.input_skip)
        return config

    def card(self):
        """The model card: `generator_ab` (A -> B) and `generator_ba` (B -> A), any size divisible by 4."""
        from kzoo.card import ModelCard, docstring_references, image_to_image

        # Two stride-2 convs down and two stride-2 transposed convs up: other sizes
        # come back rounded up to a multiple of 4.
        endpoints = tuple(image_to_image(name, self.channels, self.channels, size_multiple=4,
                                         base_size=self.image_size)
                          for name in ("generator_ab", "generator_ba"))
        return ModelCard(task="unpaired-image-to-image-translation",
                         summary="translates images from domain A to domain B "
                                 "(`generator_ab`) and back (`generator_ba`)",
                         endpoints=endpoints, references=docstring_references(type(self)))


@register_model(CycleGAN, tiny=TINY)
def cyclegan(**overrides):
    """CycleGAN at the paper's 256x256 configuration (9 residual blocks)."""
    return CycleGAN(**overrides)
