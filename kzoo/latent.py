"""Latent-space tools: interpolation, style mixing, truncation, vector arithmetic, projection.

For every generator with a latent space -- DCGAN, WGAN-GP, the conditional GAN, the VAE's
decoder and StyleGAN2 -- each operation writes one PNG grid (`kzoo latent OP SOURCE`):

- `interpolate`: spherical linear interpolation (slerp) between two z ~ N(0, I),
  slerp(a, b; t) = sin((1 - t) theta) / sin(theta) a + sin(t theta) / sin(theta) b with
  theta the angle between a and b (White, "Sampling Generative Networks", 2016, Sec. 2.1:
  a straight line between two Gaussian samples passes near the origin, where the prior
  has almost no mass); for StyleGAN2, a straight line between w = mapping(z) (Karras et
  al. 2019 interpolate in W, which is not Gaussian). One row per pair; a conditional GAN
  keeps its row's label.
- `mix` (StyleGAN2 only): the style-mixing grid of Karras et al. 2019, Sec. 3.1 / Fig. 3:
  the top row holds sources B, the left column sources A, and cell (i, j) is A_i's ws with
  the crossover range of styles copied from B_j. Ranges: see `crossover_range`.
- `truncate`: StyleGAN2: w' = w_avg + psi (w - w_avg) (`model.truncate`); z models: the
  truncation trick of Brock et al. (BigGAN, ICLR 2019, Sec. 3.1): "truncating a z vector
  by resampling the values with magnitude above a chosen threshold". One column per psi
  (or threshold), the first column untruncated, same draws in every column.
- `arithmetic`: concept vectors (Radford et al., ICLR 2016, Sec. 6.3): `A-B+C` with digit
  classes; each result is mean(A) - mean(B) + mean(C) where each mean is over
  `exemplars` latents of that class drawn at random from a pool: the VAE's pool is its
  encoder's posterior means of the labelled training digits, the conditional GAN's is
  (z, one-hot label) (its generator is run from the concatenated vector, so the label
  part is arithmetic too), an unconditional generator's is `pool` random latents
  classified by the reference digits classifier (`kzoo.metrics`). Reported: the share
  of results the reference classifier reads as C, beside the share of random latents
  it reads as C.
- `project`: optimise a latent (z; (z, label) for the conditional GAN; w or w+ for
  StyleGAN2) to reproduce target images (default: held-out digits), with Adam and
  the learning-rate schedule of StyleGAN2-ADA's projector (NVlabs/stylegan2-ada-pytorch
  projector.py: initial rate 0.1, cosine ramp-down over the last 25% of the steps,
  linear ramp-up over the first 5%; it starts from w_avg, as here from the mean
  latent). The loss is pixel MSE plus `perceptual_weight` x a feature distance: no
  VGG/LPIPS network can be downloaded here, so the features are the two hidden layers
  of the reference digits classifier (`kzoo.metrics.reference_classifier`, on the
  image brought to 8x8 grayscale as the metrics do), each layer's squared error
  divided by the target features' mean square. For non-digit images set
  `perceptual_weight=0`. PSNR of the projections is reported beside three trivial
  baselines: the mean latent's image, the best of N random latents (pixel MSE), and
  the VAE encoder's reconstruction (VAE only); on held-out digits also the share of
  each row the reference classifier reads as the target's label (the targets' own
  share is the classifier's accuracy on them).

StyleGAN2 is used through a duck-typed protocol: `model.mapping(z)` -> ws,
`model.synthesize(ws, noise="random"|"zero"|list)`, `model.w_avg`, `model.num_ws`,
`model.truncate(ws, psi)`; ws feed the synthesis network in StyleGAN2's layout
(NVlabs/stylegan2-ada-pytorch training/networks.py, SynthesisNetwork: the 4x4 block
takes one conv style, each later block two, the last toRGB one more: num_ws = 2 x
the number of resolutions). Grids use noise="zero" so that images depend on the
latent only.

Importing this module imports neither TensorFlow nor Keras (the CLI's parser reads
`OPS` and `CROSSOVERS`).
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from kzoo.errors import KzooError

OPS = ("interpolate", "mix", "truncate", "arithmetic", "project")
CROSSOVERS = ("coarse", "middle", "fine")
# Karras et al. 2019, Sec. 3.1: coarse styles are those of the 4^2 - 8^2 layers, middle
# 16^2 - 32^2, fine 64^2 - 1024^2.
PAPER_RANGES = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, None)}
DEFAULT_PSI = (1.0, 0.7, 0.5, 0.0)
DEFAULT_THRESHOLDS = (2.0, 1.0, 0.5)
# StyleGAN2-ADA projector.py defaults (NVlabs/stylegan2-ada-pytorch).
PROJECT_LR = 0.1
LR_RAMPDOWN = 0.25
LR_RAMPUP = 0.05
DIGIT_CLASSES = 10


# --- pure latent arithmetic (NumPy) ---------------------------------------------------

def slerp(a, b, t):
    """Spherical linear interpolation between rows of `a` and `b` at fractions `t`.

    Returns (len(t), *a.shape) for 1-D `a`, `b`; falls back to a straight line where the
    two vectors are (anti)parallel.

    Example:
    >>> a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    >>> np.round(slerp(a, b, [0.0, 0.5, 1.0]).astype(float), 4).tolist()
    [[1.0, 0.0], [0.7071, 0.7071], [0.0, 1.0]]
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64).reshape(-1, *[1] * a.ndim)
    cos = np.dot(a.ravel(), b.ravel()) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(theta) < 1e-6:
        return ((1.0 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1.0 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)).astype(np.float32)


def lerp(a, b, t):
    """Straight-line interpolation (StyleGAN's W space), shaped as `slerp`'s result."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    t = np.asarray(t, np.float32).reshape(-1, *[1] * a.ndim)
    return (1.0 - t) * a + t * b


def truncated_normal(rng, shape, threshold):
    """z ~ N(0, I) with every value of magnitude above `threshold` redrawn until it is not
    (the truncation trick of Brock et al., 2019, Sec. 3.1); None: no truncation."""
    z = rng.standard_normal(shape).astype(np.float32)
    if threshold is None:
        return z
    if threshold <= 0:
        raise KzooError(f"truncation threshold must be > 0, got {threshold}")
    bad = np.abs(z) > threshold
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > threshold
    return z


def crossover_range(crossover, num_ws):
    """The ws indices [start, stop) a `mix` copies from source B.

    `crossover` is "coarse", "middle", "fine" or "START:STOP" (ws indices, 0 <= START <
    STOP <= num_ws). The named ranges follow Karras et al. 2019, Sec. 3.1 (coarse: the
    styles of the 4^2 - 8^2 layers, middle 16^2 - 32^2, fine 64^2 and up) mapped onto
    StyleGAN2's ws layout, where index i feeds resolution 4 * 2^ceil(i / 2) (the last
    index is the final toRGB): for 1024^2 (num_ws 18) coarse is 0:3, middle 3:7, fine
    7:18 (StyleGAN2-ADA's style_mixing.py default, styles 0-6, is coarse + middle). A
    model below 64^2 has no fine layers in that sense: its resolutions (num_ws / 2 of
    them) are split in thirds instead, coarse the first ceil(L/3), middle up to
    ceil(2L/3), fine the rest (32^2, num_ws 8: coarse 0:3, middle 3:5, fine 5:8).

    Example:
    >>> crossover_range("coarse", 18), crossover_range("fine", 18), crossover_range("2:5", 8)
    ((0, 3), (7, 18), (2, 5))
    """
    if num_ws < 2:
        raise KzooError(f"style mixing needs at least 2 ws, the model has {num_ws}")
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(crossover))
    if m:
        start, stop = int(m.group(1)), int(m.group(2))
        if not 0 <= start < stop <= num_ws:
            raise KzooError(f"--crossover {crossover}: the model has {num_ws} ws; give START:STOP with "
                            f"0 <= START < STOP <= {num_ws}, or one of {', '.join(CROSSOVERS)}")
        return start, stop
    if crossover not in CROSSOVERS:
        raise KzooError(f"--crossover must be one of {', '.join(CROSSOVERS)} or START:STOP, got {crossover!r}")
    levels = num_ws // 2
    resolution = [4 * 2 ** min(math.ceil(i / 2), levels - 1) for i in range(num_ws)]
    if resolution[-1] >= 64:
        low, high = PAPER_RANGES[crossover]
        picked = [i for i, r in enumerate(resolution) if r >= low and (high is None or r <= high)]
    else:
        c, m_ = math.ceil(levels / 3), math.ceil(2 * levels / 3)
        bounds = {"coarse": (0, c), "middle": (c, m_), "fine": (m_, levels)}[crossover]
        lo_res, hi_res = 4 * 2 ** bounds[0], 4 * 2 ** (bounds[1] - 1)
        picked = [i for i, r in enumerate(resolution) if lo_res <= r <= hi_res]
    if not picked:
        raise KzooError(f"--crossover {crossover} selects no layers of this {num_ws}-ws model ({levels} "
                        "resolutions); give START:STOP ws indices")
    return picked[0], picked[-1] + 1


def crossover_ranges(num_ws):
    """{"coarse" | "middle" | "fine": [start, stop] or None (no such layers)} for `num_ws` ws.

    What the demo page's style-mixing view offers (`kzoo serve` sends it with the synthesis
    endpoint's info), so the page never repeats `crossover_range`'s rules.

    Example:
    >>> crossover_ranges(18)
    {'coarse': [0, 3], 'middle': [3, 7], 'fine': [7, 18]}
    """
    out = {}
    for name in CROSSOVERS:
        try:
            out[name] = list(crossover_range(name, num_ws))
        except KzooError:
            out[name] = None
    return out


def style_mixing_info(infos):
    """{synthesis endpoint name: its style-mixing settings} for the served StyleGAN2 exports.

    `infos` maps served names to their kzoo.json. A synthesis endpoint qualifies when its
    export group also serves the mapping endpoint; the settings name that endpoint, num_ws
    (the `ws` input's second axis) and `crossover_ranges(num_ws)`.
    """
    out = {}
    for name, info in infos.items():
        if info.get("endpoint") != "synthesis" or not info.get("group"):
            continue
        ws = next((e for e in info.get("inputs", ()) if e.get("name") == "ws"), None)
        mapping = next((m for m in info["group"].get("members", ())
                        if m in infos and infos[m].get("endpoint") == "mapping"
                        and (infos[m].get("group") or {}).get("id") == info["group"].get("id")), None)
        if ws is None or mapping is None or len(ws.get("shape", ())) != 3 or not ws["shape"][1]:
            continue
        num_ws = int(ws["shape"][1])
        out[name] = {"mapping": mapping, "num_ws": num_ws, "crossovers": crossover_ranges(num_ws)}
    return out


def parse_expression(text):
    """'A-B+C' (digit classes) -> (A, B, C).

    Example:
    >>> parse_expression("3 - 3 + 8")
    (3, 3, 8)
    """
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*\+\s*(\d+)\s*", str(text))
    if not m or any(int(g) >= DIGIT_CLASSES for g in m.groups()):
        raise KzooError(f"expression must be A-B+C with digit classes 0..{DIGIT_CLASSES - 1}, "
                        f"e.g. 3-3+8; got {text!r}")
    return tuple(int(g) for g in m.groups())


# --- the generators' latent spaces ----------------------------------------------------

def _numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x), np.float32)


@dataclasses.dataclass
class LatentSpace:
    """A generator's latent space, whatever the family (see `open_latent`).

    Attributes:
        model: the full model. name: for messages. kind: "z" (Gaussian latents),
        "zy" (the conditional GAN's (z, one-hot label)) or "w" (StyleGAN2).
        z_dim: size of z. num_classes: labels of a conditional GAN, else None.
        num_ws: StyleGAN2's ws per image, else None.
    """

    model: object
    name: str
    kind: str
    z_dim: int
    num_classes: int | None = None
    num_ws: int | None = None

    @property
    def family(self):
        return type(self.model).__name__

    @property
    def is_style(self):
        return self.kind == "w"

    @property
    def has_encoder(self):
        return hasattr(self.model, "encode") and hasattr(self.model, "decode")

    # latents: "z"/"zy": (n, d) vectors; "w": (n, w_dim) or (n, num_ws, w_dim) (w+)
    def latents(self, z, labels=None):
        """The latent vectors of noise `z` (and labels): z, (z, one-hot), or w = mapping(z)."""
        z = np.asarray(z, np.float32)
        if self.kind == "zy":
            labels = np.asarray(labels if labels is not None else np.arange(len(z)) % self.num_classes)
            return np.concatenate([z, np.eye(self.num_classes, dtype=np.float32)[labels]], axis=1)
        if self.kind == "w":
            ws = _numpy(self.model.mapping(z))
            return ws[:, 0] if ws.ndim == 3 else ws
        return z

    def mean_latent(self):
        """The latent at the centre of the prior: z = 0 (with uniform label weights), or w_avg."""
        if self.kind == "w":
            return _numpy(self.model.w_avg).reshape(-1)
        if self.kind == "zy":
            return np.concatenate([np.zeros(self.z_dim, np.float32),
                                   np.full(self.num_classes, 1.0 / self.num_classes, np.float32)])
        return np.zeros(self.z_dim, np.float32)

    def broadcast_ws(self, w):
        """(n, w_dim) -> (n, num_ws, w_dim); w+ (n, num_ws, w_dim) unchanged."""
        import keras

        if len(w.shape) == 3:
            return w
        return keras.ops.repeat(keras.ops.expand_dims(w, 1), self.num_ws, axis=1)

    def render_tensor(self, latents):
        """Images in [-1, 1] from `latents`, as a differentiable backend tensor."""
        import keras

        latents = keras.ops.convert_to_tensor(latents, "float32")
        m = self.model
        if self.kind == "w":
            return m.synthesize(self.broadcast_ws(latents), noise="zero")
        if self.has_encoder:
            return m.decode(latents, training=False)
        if self.kind == "zy":
            return self._from_zy()(latents, training=False)
        return m.generator(latents, training=False)

    def render(self, latents, batch=256):
        """`render_tensor` as a NumPy float32 array, `batch` rows at a time."""
        latents = np.asarray(latents, np.float32)
        return np.concatenate([_numpy(self.render_tensor(latents[i:i + batch]))
                               for i in range(0, len(latents), batch)])

    def _from_zy(self):
        """The conditional generator run from its concatenated (z, one-hot label) vector."""
        if not hasattr(self, "_zy_model"):
            import keras

            g = self.model.generator
            self._zy_model = keras.Model(g.get_layer("z_map").input, g.output, name="generator_zy")
        return self._zy_model

    def encode(self, images):
        """The VAE's posterior means of `images` in [-1, 1]."""
        mu, _ = self.model.encode(np.asarray(images, np.float32), training=False)
        return _numpy(mu)

    def sample_shape(self):
        img = self.render(self.latents(np.zeros((1, self.z_dim), np.float32), [0] if self.num_classes else None))
        return img.shape[1:]


def open_latent(source):
    """A `LatentSpace` for `source`: a run directory, preset directory, `.keras` file, hub
    reference (`kzoo.hub.load`'s) or an in-memory model.

    Raises:
        KzooError: the source is an export (no trainable latent graph) or its model has
            no latent space (e.g. a U-Net).
    """
    import keras

    if isinstance(source, keras.Model) or _is_style(source):
        model, name = source, type(source).__name__
    else:
        from pathlib import Path

        path = Path(str(source))
        if (path / "kzoo.json").is_file() or (path.is_dir() and any(
                (p / "kzoo.json").is_file() for p in path.iterdir() if p.is_dir())):
            raise KzooError(f"{source} is an export (SavedModel/ONNX): kzoo latent needs the Keras model "
                            "(a run directory, a preset or a .keras file)")
        from kzoo.export.source import resolve

        src = resolve(source)
        model, name = src.model, src.name
    return latent_space(model, name)


def _is_style(model):
    return all(hasattr(model, a) for a in ("mapping", "synthesize", "w_avg", "num_ws", "truncate"))


def latent_space(model, name=None):
    """Wrap a loaded model (see `open_latent`)."""
    name = name or type(model).__name__
    if _is_style(model):
        z_dim = getattr(model, "z_dim", None) or getattr(model, "latent_dim", None)
        return LatentSpace(model, name, "w", int(z_dim), num_ws=int(model.num_ws))
    latent_dim = getattr(model, "latent_dim", None)
    if isinstance(latent_dim, int) and hasattr(model, "decode") and hasattr(model, "encode"):
        return LatentSpace(model, name, "z", latent_dim)  # the VAE
    if isinstance(latent_dim, int) and hasattr(model, "generator"):
        classes = getattr(model, "num_classes", None)
        return LatentSpace(model, name, "zy" if classes else "z", latent_dim, num_classes=classes or None)
    raise KzooError(f"{name} ({type(model).__name__}) has no latent space: kzoo latent works on "
                    "DCGAN, WGAN-GP, conditional GAN, VAE and StyleGAN2 models")


# --- grids ----------------------------------------------------------------------------

def write_grid(path, rows, min_size=64):
    """Save rows of images in [-1, 1] (each (cols, H, W, C), None for a blank cell) as one
    PNG grid, atomically; returns `path`."""
    from kzoo.io import make_dirs, save_png
    from kzoo.viz import grid, to_uint8, upscale

    cols = max(len(r) for r in rows)
    shape = next(img.shape for r in rows for img in r if img is not None)
    cells = []
    for r in rows:
        r = list(r) + [None] * (cols - len(r))
        cells += [np.full(shape, 1.0, np.float32) if img is None else img for img in r]
    picture = grid(upscale(to_uint8(np.stack(cells)), min_size), cols)
    from pathlib import Path

    make_dirs(Path(path).parent)
    save_png(path, picture)
    return path


# --- operations -----------------------------------------------------------------------

def _labels(space, n, label, start=0):
    if not space.num_classes:
        return None
    if label is not None:
        if not 0 <= int(label) < space.num_classes:
            raise KzooError(f"--label {label} is out of range: {space.name} has {space.num_classes} "
                            f"classes (0..{space.num_classes - 1})")
        return np.full(n, int(label))
    return (np.arange(n) + start) % space.num_classes


def interpolate(space, path, *, rows=4, cols=8, seed=0, label=None):
    """Write a grid of `rows` interpolations of `cols` steps (see module docstring)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, cols)
    labels = _labels(space, rows, label)
    grid_rows = []
    for i in range(rows):
        za, zb = rng.standard_normal((2, space.z_dim)).astype(np.float32)
        if space.kind == "w":
            wa, wb = space.latents(np.stack([za, zb]))
            latents = lerp(wa, wb, t)
        else:
            zs = slerp(za, zb, t)
            latents = space.latents(zs, None if labels is None else np.full(cols, labels[i]))
        grid_rows.append(space.render(latents))
    return {"path": write_grid(path, grid_rows), "method": "lerp in w" if space.kind == "w" else "slerp in z"}


def style_mix(space, path, *, rows=4, cols=4, crossover="coarse", seed=0):
    """Write the style-mixing grid (StyleGAN2 only; see module docstring)."""
    if not space.is_style:
        raise KzooError(f"style mixing needs a StyleGAN2 model (per-layer styles); {space.name} is a "
                        f"{space.family} with one latent vector")
    start, stop = crossover_range(crossover, space.num_ws)
    rng = np.random.default_rng(seed)
    za = rng.standard_normal((rows, space.z_dim)).astype(np.float32)
    zb = rng.standard_normal((cols, space.z_dim)).astype(np.float32)
    wa = _numpy(space.broadcast_ws(space.latents(za)))
    wb = _numpy(space.broadcast_ws(space.latents(zb)))
    grid_rows = [[None] + list(space.render(wb))]
    img_a = space.render(wa)
    for i in range(rows):
        mixed = np.repeat(wa[i:i + 1], cols, axis=0)
        mixed[:, start:stop] = wb[:, start:stop]
        grid_rows.append([img_a[i]] + list(space.render(mixed)))
    return {"path": write_grid(path, grid_rows), "styles": [start, stop]}


def truncate(space, path, *, rows=4, psi=None, thresholds=None, seed=0, label=None):
    """Write a truncation grid: one column per psi (StyleGAN2) or threshold (z models)."""
    labels = _labels(space, rows, label)
    if space.is_style:
        if thresholds:
            raise KzooError("--threshold is the z-space truncation of z models; StyleGAN2 truncates "
                            "in w: give --psi")
        psi = list(DEFAULT_PSI if psi is None else psi)
        bad = [p for p in psi if not 0.0 <= p <= 1.0]
        if bad:
            raise KzooError(f"--psi must be in [0, 1], got {bad[0]}")
        z = np.random.default_rng(seed).standard_normal((rows, space.z_dim)).astype(np.float32)
        ws = space.broadcast_ws(space.latents(z))
        columns = [space.render(_numpy(space.model.truncate(ws, p))) for p in psi]
        method, values = "w_avg + psi (w - w_avg)", psi
    else:
        if psi:
            raise KzooError(f"--psi is StyleGAN2's truncation in w; {space.name} is a {space.family}: "
                            "give --threshold (z values above it are resampled)")
        values = [None] + list(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
        columns = []
        for th in values:  # the same generator state for every column: same draws
            z = truncated_normal(np.random.default_rng(seed), (rows, space.z_dim), th)
            columns.append(space.render(space.latents(z, labels)))
        method = "resample |z| > threshold"
    grid_rows = [[c[i] for c in columns] for i in range(rows)]
    return {"path": write_grid(path, grid_rows), "method": method, "values": values}


def _classify(images):
    from kzoo.metrics import predict_proba, to_digits_input

    return predict_proba(to_digits_input(images)).argmax(-1)


def _pool(space, pool, seed):
    """(latents, classes) to draw class exemplars from (see module docstring)."""
    if space.has_encoder:
        from kzoo.data.images import digits_arrays

        size, channels = space.model.image_size, space.model.channels
        x, y = digits_arrays("train", size)
        x = np.clip(x, 0.0, 1.0) * 2.0 - 1.0
        if channels == 3:
            x = np.repeat(x, 3, axis=-1)
        return np.concatenate([space.encode(x[i:i + 256]) for i in range(0, len(x), 256)]), y, "encoder"
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((pool, space.z_dim)).astype(np.float32)
    if space.kind == "zy":
        y = np.arange(pool) % space.num_classes
        return space.latents(z, y), y, "labels"
    latents = space.latents(z)
    return latents, _classify(space.render(latents)), "reference classifier"


def arithmetic(space, path, *, expression="3-3+8", num=64, exemplars=3, pool=1000, seed=0, show=8):
    """Concept arithmetic A - B + C (see module docstring); returns the scores."""
    a, b, c = parse_expression(expression)
    latents, classes, how = _pool(space, pool, seed)
    rng = np.random.default_rng(seed + 1)
    members = {k: np.flatnonzero(classes == k) for k in (a, b, c)}
    for k, idx in members.items():
        if len(idx) < exemplars:
            raise KzooError(f"only {len(idx)} of the {len(classes)} pool latents are class {k} "
                            f"({how}); raise --pool or lower --exemplars")

    def concept(k):
        return latents[rng.choice(members[k], (num, exemplars))].mean(1)

    ma, mb, mc = concept(a), concept(b), concept(c)
    result = ma - mb + mc
    images = space.render(result)
    hit = float((_classify(images) == c).mean())
    z = np.random.default_rng(seed + 2).standard_normal((num, space.z_dim)).astype(np.float32)
    random_labels = np.random.default_rng(seed + 3).integers(0, space.num_classes, num) if space.num_classes else None
    baseline = float((_classify(space.render(space.latents(z, random_labels))) == c).mean())
    k = min(show, num)
    columns = [space.render(ma[:k]), space.render(mb[:k]), space.render(mc[:k]), images[:k]]
    write_grid(path, [[col[i] for col in columns] for i in range(k)])
    return {"path": path, "expression": f"{a}-{b}+{c}", "target": c, "results": num,
            "exemplars": exemplars, "pool": how, "target_share": hit, "random_latent_share": baseline}


def held_out_digits(space, num):
    """The first `num` held-out digits (the test split of builtin:digits) at the model's
    size and channels, in [-1, 1], and their labels."""
    from kzoo.data.images import digits_arrays

    h, _, channels = space.sample_shape()
    x, y = digits_arrays("test", h)
    if num > len(x):
        raise KzooError(f"--num {num}: there are {len(x)} held-out digits")
    x = np.clip(x[:num], 0.0, 1.0) * 2.0 - 1.0
    return (np.repeat(x, channels, axis=-1) if channels == 3 else x), y[:num]


def load_images(space, paths):
    """Image files -> (N, H, W, C) in [-1, 1] at the model's size and channels (resized
    bicubically; each checked against the pixel budget before it is decoded)."""
    from PIL import Image

    from kzoo.io import check_image_pixels

    h, w, channels = space.sample_shape()
    out = []
    for path in paths:
        try:
            with Image.open(path) as img:
                check_image_pixels(path, *img.size)
                img = img.convert("RGB" if channels == 3 else "L").resize((w, h), Image.BICUBIC)
                x = np.asarray(img, np.float32) / 127.5 - 1.0
        except OSError as e:
            raise KzooError(f"cannot read image {path}: {e}") from None
        out.append(x.reshape(h, w, channels))
    return np.stack(out)


def _perceptual(images):
    """The reference digits classifier's hidden activations of images in [-1, 1], as
    backend tensors (the network of `kzoo.metrics.features`, differentiable)."""
    import keras

    from kzoo.metrics import reference_classifier

    x = images
    if x.shape[-1] == 3:
        x = keras.ops.sum(x * np.array([0.299, 0.587, 0.114], np.float32), axis=-1, keepdims=True)
    x = keras.ops.clip((x + 1.0) / 2.0, 0.0, 1.0)
    if x.shape[1] != 8:
        x = keras.ops.image.resize(x, (8, 8), interpolation="bilinear", antialias=True)
    h = keras.ops.reshape(x, (-1, 64)) * 16.0
    clf = reference_classifier()
    feats = []
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = keras.ops.relu(keras.ops.matmul(h, w.astype(np.float32)) + b.astype(np.float32))
        feats.append(h)
    return feats


def _lr(step, steps, lr):
    """StyleGAN2-ADA projector's schedule: cosine ramp-down, linear ramp-up."""
    t = step / steps
    ramp = min(1.0, (1.0 - t) / LR_RAMPDOWN)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / LR_RAMPUP)


def _psnr(a, b):
    from kzoo.metrics import psnr

    return float(np.mean([psnr(x, y, data_range=2.0) for x, y in zip(a, b)]))


def project(space, path, *, images=None, num=64, steps=300, lr=PROJECT_LR, perceptual_weight=1.0,
            space_name=None, random=256, seed=0, show=16, log=None):
    """Project target images into the latent (see module docstring); returns PSNRs (dB)."""
    import keras

    from kzoo.training import minimize

    labels = None
    if images is None:
        targets, labels = held_out_digits(space, num)
    else:
        targets = np.asarray(images, np.float32)
    space_name = space_name or ("w" if space.is_style else "z")
    if space_name not in (("w", "w+") if space.is_style else ("z",)):
        raise KzooError(f"--space {space_name}: {space.name} projects into "
                        + ("w or w+" if space.is_style else "z"))
    mean = space.mean_latent()
    init = np.repeat(mean[None], len(targets), 0)
    if space_name == "w+":
        init = np.repeat(init[:, None], space.num_ws, 1)
    variable = keras.Variable(init, name="latent")
    target_t = keras.ops.convert_to_tensor(targets)
    target_feats = _perceptual(target_t) if perceptual_weight else []
    scales = [float(np.mean(_numpy(f) ** 2)) + 1e-8 for f in target_feats]

    def loss_fn():
        x = space.render_tensor(variable)
        loss = keras.ops.mean(keras.ops.square(x - target_t))
        if perceptual_weight:
            for f, t, s in zip(_perceptual(x), target_feats, scales):
                loss = loss + perceptual_weight * keras.ops.mean(keras.ops.square(f - t)) / s
        return loss, {"loss": loss}

    optimizer = keras.optimizers.Adam(lr, beta_1=0.9, beta_2=0.999)
    for step in range(steps):
        optimizer.learning_rate.assign(_lr(step, steps, lr))
        logs = minimize(optimizer, [variable], loss_fn)
        if log and (step + 1) % 100 == 0:
            log(f"step {step + 1}/{steps}: loss {float(logs['loss']):.4f}")
    projected = space.render(_numpy(variable))

    mean_img = space.render(mean[None])
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((random, space.z_dim)).astype(np.float32)
    candidates = space.render(space.latents(z, _labels(space, random, None)))
    errors = ((targets[:, None] - candidates[None]) ** 2).mean(axis=(2, 3, 4))
    best = candidates[errors.argmin(1)]
    scores = {"images": len(targets), "steps": steps, "space": space_name,
              "perceptual_weight": perceptual_weight, "psnr_projection": _psnr(projected, targets),
              "psnr_mean_latent": _psnr(np.repeat(mean_img, len(targets), 0), targets),
              f"psnr_best_of_{random}_random": _psnr(best, targets)}
    rows = {"target": targets, "mean_latent": np.repeat(mean_img, len(targets), 0),
            f"best_of_{random}_random": best}
    if space.has_encoder:
        rows["encoder"] = space.render(space.encode(targets))
        scores["psnr_encoder"] = _psnr(rows["encoder"], targets)
    rows["projection"] = projected
    if labels is not None:  # does the reconstruction still read as the digit it was?
        scores.update({f"label_kept_{k}": float((_classify(v) == labels).mean()) for k, v in rows.items()})
    rows = list(rows.values())
    k = min(show, len(targets))
    write_grid(path, [r[:k] for r in rows])
    return {"path": path, **scores}
