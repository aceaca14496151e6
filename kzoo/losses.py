"""Loss terms, composed by the models (one home for each).

Every function returns the mean over the examples of one replica in float32;
`kzoo.training.minimize` scales by the number of replicas, which makes the
gradient the optimizer all-reduce-sums equal to that of the global-batch mean.
"""

from __future__ import annotations

from keras import ops


def _f32(x):
    return ops.cast(x, "float32")


def l1(a, b):
    """Mean absolute error |a - b|, over every element (pix2pix's L1 term, CycleGAN's cycle loss).

    Example:
    >>> float(l1(ops.ones((2, 3)), ops.zeros((2, 3))))
    1.0
    """
    return ops.mean(ops.abs(_f32(a) - _f32(b)))


def mse(a, b):
    """Mean squared error (a - b)^2, over every element (SRGAN's pixel content loss, DDPM's ε loss).

    Example:
    >>> float(mse(ops.full((2, 3), 3.0), ops.ones((2, 3))))
    4.0
    """
    return ops.mean(ops.square(_f32(a) - _f32(b)))


def nonsaturating_d_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))) on logits (Goodfellow et al., 2014)."""
    return ops.mean(ops.softplus(-_f32(real_logits))) + ops.mean(ops.softplus(_f32(fake_logits)))


def nonsaturating_g_loss(fake_logits):
    """-log D(G(z)): the non-saturating generator loss (Goodfellow et al., 2014, Sec. 3)."""
    return ops.mean(ops.softplus(-_f32(fake_logits)))


def relativistic_average_d_loss(real_logits, fake_logits):
    """The relativistic average discriminator loss on logits (Jolicoeur-Martineau, ICLR 2019),
    as ESRGAN trains it (Wang et al., ECCV Workshops 2018, Eq. 1-2; xinntao/BasicSR
    `basicsr/models/esrgan_model.py` lines 70-81, `gan_type: vanilla`): 0.5 * (BCE(C(x_r) -
    E[C(x_f)], real) + BCE(C(x_f) - E[C(x_r)], fake)), the other side's mean held constant."""
    r, f = _f32(real_logits), _f32(fake_logits)
    mean_r, mean_f = ops.stop_gradient(ops.mean(r)), ops.stop_gradient(ops.mean(f))
    return 0.5 * (ops.mean(ops.softplus(-(r - mean_f))) + ops.mean(ops.softplus(f - mean_r)))


def relativistic_average_g_loss(real_logits, fake_logits):
    """ESRGAN's relativistic average generator loss (BasicSR `esrgan_model.py` lines 41-47):
    the mean of BCE(C(x_r) - E[C(x_f)], fake) and BCE(C(x_f) - E[C(x_r)], real), the real
    logits held constant -- the generator gains from real images looking less real too."""
    r, f = ops.stop_gradient(_f32(real_logits)), _f32(fake_logits)
    return 0.5 * (ops.mean(ops.softplus(r - ops.mean(f))) + ops.mean(ops.softplus(-(f - ops.mean(r)))))


def wasserstein_d_loss(real_scores, fake_scores):
    """E[C(G(z))] - E[C(x)]: the WGAN critic loss (Arjovsky et al., 2017)."""
    return ops.mean(_f32(fake_scores)) - ops.mean(_f32(real_scores))


def wasserstein_g_loss(fake_scores):
    """-E[C(G(z))]."""
    return -ops.mean(_f32(fake_scores))


def lsgan_d_loss(real_out, fake_out):
    """(D(x) - 1)^2 + D(G(z))^2 (Mao et al., 2017), halved by the caller if wanted."""
    return ops.mean(ops.square(_f32(real_out) - 1.0)) + ops.mean(ops.square(_f32(fake_out)))


def lsgan_g_loss(fake_out):
    """(D(G(z)) - 1)^2 (Mao et al., 2017)."""
    return ops.mean(ops.square(_f32(fake_out) - 1.0))


def gradient_penalty(critic, real, fake, alpha):
    """E[(||grad_x C(x_hat)||_2 - 1)^2] at x_hat = alpha real + (1 - alpha) fake.

    Gulrajani et al., 2017, "Improved Training of Wasserstein GANs", Algorithm 1.
    `alpha` has shape (batch, 1, 1, 1) with alpha ~ U(0, 1) per example. The
    input gradient comes from `kzoo.training.value_and_input_grad` (a nested
    GradientTape on TensorFlow, `jax.grad` on JAX); differentiating the penalty
    again (the critic's update) is double backpropagation.
    """
    from kzoo.training import value_and_input_grad

    real = _f32(real)
    fake = _f32(fake)
    x_hat = fake + alpha * (real - fake)
    _, grads = value_and_input_grad(
        lambda x: (ops.sum(_f32(critic(x, training=True))), None), x_hat)
    norms = ops.sqrt(ops.sum(ops.square(grads), axis=list(range(1, len(grads.shape)))) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


# --- segmentation ---

def masked_sparse_categorical_crossentropy(labels, logits, *, ignore_label=255, class_weights=None):
    """Pixel-wise cross-entropy averaged over the pixels whose label is not `ignore_label`.

    `labels`: int (batch, H, W); `logits`: (batch, H, W, classes). With
    `class_weights` (one per class) the mean is weighted: sum(w_y * CE) / sum(w_y)
    over the counted pixels (as torch's weighted `CrossEntropyLoss`). Ignored pixels
    contribute neither loss nor gradient; a batch with no counted pixel gives 0.
    """
    logits = _f32(logits)
    labels = ops.cast(labels, "int32")
    valid = ops.not_equal(labels, ignore_label)
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    ce = ops.sparse_categorical_crossentropy(safe, logits, from_logits=True)
    weight = ops.cast(valid, "float32")
    if class_weights is not None:
        weight = weight * ops.take(ops.convert_to_tensor(class_weights, "float32"), safe)
    return ops.sum(ce * weight) / ops.maximum(ops.sum(weight), 1e-8)


# --- vae ---

def _sum_per_example(x):
    return ops.sum(ops.reshape(x, (ops.shape(x)[0], -1)), axis=1)


def bernoulli_nll(images, logits):
    """-log p(x|z) of a Bernoulli decoder, summed over pixels, mean over examples.

    `images` in [-1, 1] are read as Bernoulli means (x + 1) / 2 in [0, 1] (Kingma &
    Welling, 2014, Appendix C.1, used for MNIST).
    """
    target = (_f32(images) + 1.0) / 2.0
    logits = _f32(logits)
    return ops.mean(_sum_per_example(ops.softplus(logits) - target * logits))


def gaussian_nll(images, mean, sigma):
    """-log N(x; mean, sigma^2 I) without its constant, summed over pixels, mean over examples."""
    return ops.mean(_sum_per_example(ops.square(_f32(images) - _f32(mean)))) / (2.0 * sigma ** 2)


def gaussian_kl(mu, log_var):
    """KL(N(mu, diag(exp(log_var))) || N(0, I)), summed over dims, mean over examples.

    -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2) (Kingma & Welling, 2014, Appendix B).
    """
    mu, log_var = _f32(mu), _f32(log_var)
    return ops.mean(-0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=-1))
