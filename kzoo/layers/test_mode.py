"""Test-time modes of networks with batch norm and dropout: `eval` and `authors`.

PyTorch networks run in one of two modes. `net.eval()` normalizes batch norm with its
running statistics and turns dropout off: Keras' inference (`training=False`), and
kzoo's default (`eval`). The junyanz/pytorch-CycleGAN-and-pix2pix authors' `test.py`
calls `model.eval()` only when given `--eval`, so by default the generators stay in
train mode at test time (`authors`):

- test.py: "if opt.eval: model.eval()" (the comment above it: "For [pix2pix]: we use
  batchnorm and dropout in the original pix2pix. You can experiment it with and without
  eval() mode. For [CycleGAN]: It should not affect CycleGAN as CycleGAN uses
  instancenorm without dropout."), and "opt.batch_size = 1  # test code only supports
  batch_size = 1";
- options/test_options.py: `--eval`, action='store_true', "use eval mode during test
  time." (off unless given);
- models/base_model.py:91-96 `eval()` calls `net.eval()` on each network; :105-113
  `test()` runs `forward()` under `torch.no_grad()` only, which changes neither batch
  norm nor dropout (line numbers of the copy at commit 07cff558 of the search index);
- models/pix2pix_model.py builds its generator with `not opt.no_dropout` and
  options/base_options.py's `--no_dropout` is off by default: the published pix2pix
  generators (unet_256) have dropout, which train mode applies.
  (`no_grad` does not stop train-mode batch norm from updating its running statistics,
  which train mode never reads.)

So the authors' published test images were made in train mode: each batch norm
normalizes with the statistics of the test batch, which test.py fixes at one image
(per-image, per-channel mean and biased variance over height and width, then the
layer's gamma and beta), and dropout (p 0.5, kept values scaled by 2) draws a new
mask at every call. `with_test_mode(network, "authors")` rebuilds a Keras network
that way, sharing nothing mutable with the original: `BatchNormalization` ->
`BatchStatNormalization` (the same four weights; the running statistics are kept but
unused), `Dropout` -> `TestTimeDropout` (drops at inference too). Statistics are per
image, as test.py's batch of one gives, so a batch of N images returns what N calls of
test.py would (and a batch of N copies of one image is N independent draws).

Instance norm (CycleGAN's ResNet generators, `unet_*_instance`) has no running
statistics (`track_running_stats=False`): it behaves the same in both modes, so such a
network differs between the modes only by its dropout (a `unet_*_instance` with
dropout blocks drops out in authors mode). The
authors' CycleGAN generators have no dropout either (`cycle_gan_model.py`:
`parser.set_defaults(no_dropout=True)  # default CycleGAN did not use dropout`; test.py's
docstring tests the pretrained ones with `--model test --no_dropout`): for them the two
modes give the same network.

Randomness: `TestTimeDropout` draws from TensorFlow's stateful `tf.random.uniform`
(TensorFlow backend), which a SavedModel keeps as a random op and tf2onnx converts to
ONNX `RandomUniformLike`: an exported authors-mode network draws a new mask at every
call. (tf2onnx copies the op's seed attribute, so onnxruntime repeats the sequence of
masks in each new session.) Other backends use `keras.random.dropout`.
"""

from __future__ import annotations

import keras
from keras import ops

MODES = ("eval", "authors")
ABOUT = {
    "eval": "eval mode (PyTorch net.eval(), junyanz test.py --eval): batch norm uses its running "
            "statistics, dropout is off; deterministic",
    "authors": "the junyanz authors' default test mode (test.py without --eval: the network "
               "stays in train mode): batch norm normalizes each image with its own statistics "
               "(test.py's batch of one), dropout is on; every call draws new dropout masks",
}


@keras.saving.register_keras_serializable(package="kzoo")
class BatchStatNormalization(keras.layers.Layer):
    """Batch norm as PyTorch's train mode computes it on a batch of one image, per image.

    `y = (x - mean) / sqrt(var + epsilon) * gamma + beta`, with `mean` and the biased
    `var` of each image's channel over height and width. Holds the weights of a
    `keras.layers.BatchNormalization` (gamma, beta, moving_mean, moving_variance, in that
    order) so they copy one to one; the moving statistics are not used.

    Args:
        epsilon: float. Added to the variance (PyTorch's `BatchNorm2d` default 1e-5).
        center, scale: bool. Whether beta / gamma exist.

    Example:
    >>> BatchStatNormalization()(keras.ops.ones((2, 4, 4, 3))).shape
    TensorShape([2, 4, 4, 3])
    """

    def __init__(self, epsilon=1e-5, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=channels, initializer="ones")
        if self.center:
            self.beta = self.add_weight(name="beta", shape=channels, initializer="zeros")
        self.moving_mean = self.add_weight(name="moving_mean", shape=channels,
                                          initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=channels,
                                              initializer="ones", trainable=False)

    def call(self, x, training=None, mask=None):  # BatchNormalization's call arguments
        x32 = ops.cast(x, "float32")
        mean, var = ops.moments(x32, axes=[1, 2], keepdims=True)
        y = (x32 - mean) * ops.rsqrt(var + self.epsilon)
        if self.scale:
            y = y * ops.cast(self.gamma, "float32")
        if self.center:
            y = y + ops.cast(self.beta, "float32")
        return ops.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


@keras.saving.register_keras_serializable(package="kzoo")
class TestTimeDropout(keras.layers.Layer):
    """Dropout that also drops at inference (PyTorch's `nn.Dropout` in train mode).

    Each value is zeroed with probability `rate` and the others are scaled by
    `1 / (1 - rate)`, at every call, `training` or not.

    Args:
        rate: float in [0, 1). 0 passes the input through (dropout "forced off").

    Example:
    >>> y = TestTimeDropout(0.5)(keras.ops.ones((1, 8, 8, 4)))  # values 0 or 2
    """

    def __init__(self, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self._seeds = None if keras.backend.backend() == "tensorflow" else \
            keras.random.SeedGenerator()

    def call(self, x, training=None):
        if self.rate == 0.0:
            return x
        if self._seeds is not None:
            return keras.random.dropout(x, self.rate, seed=self._seeds)
        import tensorflow as tf

        keep = tf.random.uniform(tf.shape(x), dtype=x.dtype) >= self.rate
        return tf.where(keep, x / (1.0 - self.rate), tf.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


def _is_functional(layer):
    from keras.src.models.functional import Functional

    return isinstance(layer, Functional)


def mode_of(network) -> str:
    """"authors" if `network` (or a network nested in it) has authors-mode layers, else "eval"."""
    for layer in network.layers:
        if isinstance(layer, (BatchStatNormalization, TestTimeDropout)):
            return "authors"
        if _is_functional(layer) and mode_of(layer) == "authors":
            return "authors"
    return "eval"


def dropout_rate(network) -> float:
    """The largest test-time dropout rate in `network` (0: deterministic)."""
    rates = [0.0]
    for layer in network.layers:
        if isinstance(layer, TestTimeDropout):
            rates.append(layer.rate)
        elif _is_functional(layer):
            rates.append(dropout_rate(layer))
    return max(rates)


def check_mode(mode):
    if mode not in MODES:
        from kzoo.errors import KzooError

        raise KzooError(f"unknown test mode {mode!r}; choose {' or '.join(MODES)}")
    return mode


def with_test_mode(network, mode, *, dropout=None):
    """`network` as it runs at test time in `mode` (see module docstring).

    Args:
        network: a functional `keras.Model` in eval form (BatchNormalization, Dropout).
        mode: "eval" (returns `network` itself) or "authors".
        dropout: float or None. The authors-mode dropout rate; None: each Dropout
            layer's own. 0 forces dropout off (batch statistics only: deterministic, for
            an exact comparison with the reference).

    Returns:
        A functional `keras.Model`. In authors mode a new network whose batch norm and
        dropout layers are replaced and hold copies of the weights; every other layer is
        the original's (shared weights), nested functional networks included.
    """
    check_mode(mode)
    if mode == "eval":
        return network
    swapped = []

    def swap(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.axis not in (-1, 3, [3], [-1]):
                raise ValueError(f"{layer.name}: authors mode needs channels-last batch norm")
            new = BatchStatNormalization(epsilon=layer.epsilon, center=layer.center,
                                         scale=layer.scale, name=layer.name)
            swapped.append((layer, new))
            return new
        if isinstance(layer, keras.layers.Dropout):
            return TestTimeDropout(layer.rate if dropout is None else dropout, name=layer.name)
        if _is_functional(layer):
            return with_test_mode(layer, mode, dropout=dropout)
        return layer

    rebuilt = keras.models.clone_model(network, clone_function=swap)
    for old, new in swapped:
        new.set_weights(old.get_weights())
    return rebuilt
