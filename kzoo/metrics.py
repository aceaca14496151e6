"""Quality metrics: PSNR/SSIM-style image measures and digits-based GAN scores.

No pretrained Inception network can be downloaded here, so GAN quality on the
digits is measured with a small *reference digits classifier*: a scikit-learn
MLP trained reproducibly (fixed seed) on the training split of scikit-learn's
8x8 digits -- the same split `builtin:digits` trains on -- and evaluated on the
held-out split. From it:

- `class_consistency`: share of conditional samples classified as their label.
- `inception_score`: exp(E_x KL(p(y|x) || p(y))) with the classifier's p(y|x)
  (Salimans et al., 2016), at most 10 for 10 classes.
- `frechet_distance`: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) on the
  classifier's last hidden layer (Heusel et al., 2017, with this network in place
  of Inception), against the held-out digits.

Generated images of any size are brought to the digits' native 8x8 with an
antialiased resize, as the training data were brought up from it.
"""

from __future__ import annotations

import functools

import numpy as np

REFERENCE_HIDDEN = (128, 64)
REFERENCE_SEED = 0


@functools.lru_cache(maxsize=1)
def reference_classifier():
    """The reference digits MLP (deterministic; about 2 s on one core)."""
    from sklearn.neural_network import MLPClassifier

    from kzoo.data.images import digits_arrays

    x, y = digits_arrays("train")
    clf = MLPClassifier(hidden_layer_sizes=REFERENCE_HIDDEN, alpha=1e-3, max_iter=600,
                        random_state=REFERENCE_SEED)
    clf.fit(_flat(x), y)
    return clf


def _flat(x01):
    """[0, 1] images (N, 8, 8, 1) -> the classifier's (N, 64) inputs on the 0..16 scale."""
    return np.asarray(x01, np.float64).reshape(len(x01), -1) * 16.0


def to_digits_input(images):
    """Images in [-1, 1] (N, S, S, C) -> [0, 1] at 8x8, one channel."""
    images = np.asarray(images, np.float32)
    if images.shape[-1] == 3:
        images = images @ np.array([0.299, 0.587, 0.114], np.float32)
        images = images[..., None]
    x = np.clip((images + 1.0) / 2.0, 0.0, 1.0)
    if x.shape[1] != 8:
        from kzoo.data.images import resize_numpy

        x = np.clip(resize_numpy(x, 8), 0.0, 1.0)
    return x


def features(x01):
    """Activations of the reference classifier's last hidden layer."""
    clf = reference_classifier()
    h = _flat(x01)
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ w + b, 0.0)
    return h


def predict_proba(x01):
    return reference_classifier().predict_proba(_flat(x01))


def reference_accuracy():
    """Accuracy of the reference classifier on the held-out digits."""
    from kzoo.data.images import digits_arrays

    x, y = digits_arrays("test")
    return float((predict_proba(x).argmax(-1) == y).mean())


def frechet_distance(feats_a, feats_b):
    """Fréchet distance between Gaussians fitted to two feature sets."""
    import warnings

    from scipy import linalg

    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    # A tiny ridge keeps the square root defined when some units never fire.
    eps = np.eye(feats_a.shape[1]) * 1e-6
    cov_a = np.cov(feats_a, rowvar=False) + eps
    cov_b = np.cov(feats_b, rowvar=False) + eps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * covmean))


def inception_score(probs, eps=1e-12):
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al., 2016)."""
    py = probs.mean(0, keepdims=True)
    kl = (probs * (np.log(probs + eps) - np.log(py + eps))).sum(1)
    return float(np.exp(kl.mean()))


def class_consistency(probs, labels):
    """Share of samples whose predicted class equals their conditioning label."""
    return float((probs.argmax(-1) == np.asarray(labels)).mean())


def digits_generation_scores(images, labels=None):
    """All digits scores for generated images in [-1, 1]; `labels` for conditional ones."""
    from kzoo.data.images import digits_arrays

    x = to_digits_input(images)
    real, _ = digits_arrays("test")
    probs = predict_proba(x)
    scores = {
        "frechet_distance": frechet_distance(features(real), features(x)),
        "inception_score": inception_score(probs),
    }
    if labels is not None:
        scores["class_consistency"] = class_consistency(probs, labels)
    return scores


def psnr(a, b, data_range=2.0):
    """Peak signal-to-noise ratio in dB of images `a` vs `b` (same range)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


# --- segmentation ---

def confusion_matrix(labels, predictions, num_classes, ignore_label=255):
    """(num_classes, num_classes) counts of true class (rows) vs predicted (columns).

    Pixels labelled `ignore_label` are not counted.
    """
    labels = np.asarray(labels).ravel().astype(np.int64)
    predictions = np.asarray(predictions).ravel().astype(np.int64)
    keep = labels != ignore_label
    return np.bincount(labels[keep] * num_classes + predictions[keep],
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(confusion):
    """Mean IoU (over classes present in truth or prediction), per-class IoU, pixel accuracy.

    IoU_c = TP_c / (TP_c + FP_c + FN_c) (Everingham et al., PASCAL VOC).
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"mean_iou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
            "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
            "pixel_accuracy": float(tp.sum() / max(confusion.sum(), 1))}

# --- super-resolution (SRGAN) ---
# The SR literature (SRCNN, SRGAN, EDSR, ...) scores on the luminance channel only:
# images as 8-bit RGB, converted to Y with MATLAB's rgb2ycbcr (ITU-R BT.601,
# studio swing: Y in [16, 235]), `scale` pixels cropped from every border, then
# PSNR with peak 255 and SSIM (Wang et al., 2004) on Y in [0, 255].

def rgb_to_y(images):
    """8-bit RGB (..., 3) -> BT.601 luma in [16, 235], as MATLAB's `rgb2ycbcr`."""
    x = np.asarray(images, np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _sr_y(image, border):
    """uint8-valued RGB (H, W, 3) -> Y (H, W) with `border` pixels cropped per side."""
    y = rgb_to_y(image)
    return y[border:y.shape[0] - border, border:y.shape[1] - border] if border else y


def psnr_y(sr, hr, border=0):
    """PSNR in dB on the Y channel of 8-bit RGB images `sr` and `hr` (H, W, 3).

    Args:
        sr, hr: arrays of 8-bit RGB values (uint8 or floats in [0, 255]).
        border: int. Pixels cropped from each side first (the SR scale factor).
    """
    return psnr(_sr_y(sr, border), _sr_y(hr, border), data_range=255.0)


def ssim_y(sr, hr, border=0):
    """SSIM on the Y channel of 8-bit RGB images, `border` pixels cropped per side."""
    return ssim(_sr_y(sr, border), _sr_y(hr, border), data_range=255.0)


def sr_scores(sr_images, hr_images, scale, prefix=""):
    """Mean Y-PSNR and Y-SSIM over pairs of 8-bit RGB images, border `scale` cropped."""
    pairs = list(zip(sr_images, hr_images))
    if not pairs:
        raise ValueError("sr_scores needs at least one image pair")
    return {f"{prefix}psnr_y": float(np.mean([psnr_y(s, h, scale) for s, h in pairs])),
            f"{prefix}ssim_y": float(np.mean([ssim_y(s, h, scale) for s, h in pairs]))}

# --- image-to-image (pix2pix, CycleGAN) ---

def ssim(a, b, *, data_range):
    """Mean structural similarity (Wang et al., 2004) of two images (H, W[, C]).

    scikit-image's reference implementation with the paper's settings (those of
    Wang et al.'s `ssim_index.m`): 11x11 Gaussian window of sigma 1.5, K1 = 0.01,
    K2 = 0.03, population covariances, per channel then averaged. Images are
    compared outside the training graph, on NumPy arrays.

    References:
        Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From Error
        Visibility to Structural Similarity", IEEE TIP 2004.
    """
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a, b = a[..., 0], b[..., 0]
    return float(structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False,
                                       channel_axis=-1 if a.ndim == 3 else None))


def image_quality(pred, target, value_range=(-1.0, 1.0), prefix=""):
    """Mean per-image PSNR (dB), SSIM and L1 of `pred` vs `target` (N, H, W, C).

    Images are first mapped to [0, 1], so PSNR has peak 1 and L1 is the mean
    absolute error on the [0, 1] scale. Keys are `prefix` + psnr / ssim / l1.
    """
    lo, hi = value_range
    to01 = lambda x: np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0)  # noqa: E731
    pred, target = to01(pred), to01(target)
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {target.shape}")
    return {
        f"{prefix}psnr": float(np.mean([psnr(p, t, data_range=1.0) for p, t in zip(pred, target)])),
        f"{prefix}ssim": float(np.mean([ssim(p, t, data_range=1.0) for p, t in zip(pred, target)])),
        f"{prefix}l1": float(np.mean(np.abs(pred - target))),
    }


def colorfulness(images, value_range=(-1.0, 1.0)):
    """Mean colourfulness M of RGB images (N, H, W, 3) (Hasler & Süsstrunk, 2003).

    On 0..255 RGB: rg = R - G, yb = (R + G) / 2 - B, and
    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2) per image.
    A gray image scores 0; the authors' scale reads about 15 "slightly", 33
    "moderately", 45 "averagely", 59 "quite" and 82 "highly" colourful.

    References:
        Hasler & Süsstrunk, "Measuring colourfulness in natural images", SPIE
        Human Vision and Electronic Imaging VIII, 2003.
    """
    lo, hi = value_range
    x = np.clip((np.asarray(images, np.float64) - lo) / (hi - lo), 0.0, 1.0) * 255.0
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"colorfulness needs RGB images (N, H, W, 3), got shape {x.shape}")
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    axes = (1, 2)
    spread = np.sqrt(rg.std(axes) ** 2 + yb.std(axes) ** 2)
    mean = np.sqrt(rg.mean(axes) ** 2 + yb.mean(axes) ** 2)
    return float(np.mean(spread + 0.3 * mean))


def checkerboard_score(images, period=2, value_range=(-1.0, 1.0)):
    """Checkerboard artefacts of period `period` in images (N, H, W, C), in dB (0: none).

    An upsampling layer of stride s whose windows overlap unevenly (a transposed
    conv with a kernel not divisible by s) multiplies its output by a pattern of
    period s (Odena et al., 2016). In the 2-D spectrum this puts isolated peaks
    at the frequencies (k H / s, l W / s), (k, l) != (0, 0): the image content
    shifted there. A natural image, or one upsampled bilinearly or by
    resize-then-conv, has a smooth spectrum at those frequencies instead. The
    score is 10 log10 of the power at those frequencies over the mean power of
    their neighbourhood (frequencies 3 to 5 bins away in both directions), from
    the luma of each image (BT.601), mean removed, Hann-windowed, power averaged
    over images: a few dB at most without artefacts (held-out builtin:photos
    crops score -1.6 dB, a random-walk texture 4 dB), 10 dB and more with a
    visible checkerboard (an untrained CycleGAN generator with transposed convs
    scores about 20 dB, with resize-conv about 0 dB).
    `period` 4 also catches two stacked stride-2 layers. Height and width must
    be multiples of `period`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.cumsum(np.cumsum(rng.standard_normal((4, 64, 64, 1)), 1), 2)
    >>> smooth = smooth / np.abs(smooth).max()
    >>> checker = smooth + 0.05 * (np.indices((64, 64)).sum(0) % 2)[None, ..., None]
    >>> round(checkerboard_score(smooth)), round(checkerboard_score(checker))
    (4, 22)

    References:
        Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts",
        Distill, 2016.
    """
    lo, hi = value_range
    x = (np.asarray(images, np.float64) - lo) / (hi - lo)
    if x.ndim != 4:
        raise ValueError(f"checkerboard_score needs images (N, H, W, C), got shape {x.shape}")
    if x.shape[-1] == 3:
        x = x @ np.array([0.299, 0.587, 0.114])
    else:
        x = x.mean(-1)
    n, h, w = x.shape
    if h % period or w % period or min(h, w) < 4 * period:
        raise ValueError(f"image size {h}x{w} must be a multiple of period {period} and at "
                         f"least {4 * period}")
    x = x - x.mean((1, 2), keepdims=True)
    x = x * np.outer(np.hanning(h), np.hanning(w))
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(0)
    peaks, around = [], []
    ring = [(dy, dx) for dy in range(-5, 6) for dx in range(-5, 6) if max(abs(dy), abs(dx)) >= 3]
    for k in range(period):
        for l in range(period):
            if k == l == 0:
                continue
            fy, fx = k * h // period, l * w // period
            peaks.append(power[fy, fx])
            around.append(np.mean([power[(fy + dy) % h, (fx + dx) % w] for dy, dx in ring]))
    return float(10 * np.log10(np.mean(peaks) / max(np.mean(around), 1e-30)))
