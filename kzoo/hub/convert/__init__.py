"""Published reference weights -> ordinary kzoo presets, converted on first use.

    kzoo hub convert SOURCE [--arch NAME] --out DIR
    kzoo.hub.load("latest_net_G.pth#arch=resnet_9blocks")     # converted into KZOO_HOME once
    kzoo.hub.load("hf://google/ddpm-cifar10-32")
    kzoo.hub.load("pix2pix-facades")                          # a catalog entry marked upstream

A SOURCE is

- a junyanz/pytorch-CycleGAN-and-pix2pix generator file (`*_net_G.pth`, any
  `.pth`/`.pt`/`.bin`/`.safetensors` state dict): `kzoo.hub.convert.junyanz`; the
  architecture comes from `--arch` (or `#arch=NAME` on the reference), else the one
  named architecture the state dict matches exactly;
- a Real-ESRGAN (`RRDBNet`, `SRVGGNetCompact`) or EDSR super-resolution state dict:
  `kzoo.hub.convert.sr` (architecture detected, or `--arch NAME`);
- a rosinality/stylegan2-pytorch checkpoint (`train.py`'s or `convert_weight.py`'s `.pt`:
  its `g_ema`): `kzoo.hub.convert.stylegan2`;
- a torchvision DeepLabV3 state dict (`deeplabv3_*.pth`: `backbone.*` and `classifier.*`
  names): `kzoo.hub.convert.torchvision`;
- a diffusers model folder (`config.json` with `_class_name` `UNet2DModel` or
  `AutoencoderKL`, its `diffusion_pytorch_model.safetensors` or `.bin`, and
  `scheduler_config.json` beside it or in `scheduler/`): `kzoo.hub.convert.diffusers_folder`
  (converters `kzoo.hub.convert.diffusers`, `kzoo.hub.convert.autoencoder_kl`);
- an `http(s)://` URL of such a file (its sha256 is recorded in
  `$KZOO_HOME/upstream/sha256.json` on the first download -- trust on first use -- and
  every later download must match it: `kzoo.hub.cache.download_upstream`), or
  `hf://owner/repo[@revision]` of a diffusers repository (fetched over HTTPS at a pinned
  commit, each file's sha256 recorded the same way: `kzoo.hub.hf`).

`.pth` files are read without PyTorch and without running pickle code
(`kzoo.hub.convert.torchfile`). The converted preset holds the full kzoo model (a
`Pix2Pix`, `CycleGAN` or `DDPM` whose networks are the exact upstream ones, for
fine-tuning with `--init-from`) and the inference network, and its metadata names the
upstream source, its sha256, the paper and the licence.

`--mode` picks the inference network's test-time mode (`kzoo.layers.test_mode`):
`eval` (the default: batch norm's running statistics, no dropout, as the authors'
`test.py --eval`) or `authors` (test.py's default: batch statistics of each image,
dropout on). The preset records it (`test_mode` in metadata.json, its README); the
full model is the same in both.

Formats
-------
This module knows no format: it resolves a reference to a local file or folder
(downloading it, `kzoo.hub.cache`), asks each module named in `FORMATS`, in order,
whether it `accepts` that `Source`, lets the first that does build the models, and
writes the preset. A format is a module of this package with

    accepts(source) -> bool
        whether it converts `source` (a `Source`: `path`, `arch`, `mode`, `reverse`,
        `origin`, `sha256`, and `state`, the file's state dict read once). A file format
        says False to a folder without reading it.
    models(source) -> (full model, inference network, info, image size)
        the converted kzoo model and the network a user loads; `info` is a dict with
        "format", "arch", "code", "paper", "license", "note" (and "test_mode" where the
        format has one), written into the preset's metadata.json and README. Options the
        format has no use for (`--reverse`, `--mode authors`, `--arch`) are refused here
        in one line, or ignored where they always were.

and, for a folder format, `files(source)`: the files it reads, whose sha256s identify
the source. `ARCH_IN_REFERENCE = False` says the source names its architecture itself,
so the preset's reference carries no `#arch=`. Adding a format is adding its module
and its name to `FORMATS`; the first format that accepts a source converts it, and
`junyanz` accepts every state dict file, so file formats go before it (one that reads
its files its own way, not through `Source.state`, before every format that does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError
from kzoo.io import remove_stale_dirs

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

# The formats, in the order they are asked (modules of this package, imported on first use).
FORMATS = ("torchvision", "sr", "stylegan2", "junyanz", "diffusers_folder")


@dataclasses.dataclass
class Source:
    """A local weights file or model folder to convert, and what the user said of it.

    Attributes:
        path: Path. The file or folder.
        arch: str or None. `--arch` (`#arch=NAME`); None: the format finds it.
        mode: str. `--mode`: the inference network's test-time mode, "eval" or "authors".
        reverse: Path or None. `--reverse`: a local file of a CycleGAN's other direction.
        origin: str. Where `path` came from (a URL, an `hf://` reference, the path).
        sha256: str or None. The origin's sha256, where it was downloaded.
    """

    path: Path
    arch: str | None = None
    mode: str = "eval"
    reverse: Path | None = None
    origin: str = ""
    sha256: str | None = None

    @functools.cached_property
    def state(self):
        """The state dict of a file (`torchfile.load_state_dict`, read once); None for a folder."""
        if not self.path.is_file():
            return None
        from kzoo.hub.convert.torchfile import load_state_dict

        return load_state_dict(self.path)

    @functools.cached_property
    def reverse_state(self):
        """The state dict of `reverse` (read once), or None without one."""
        if self.reverse is None:
            return None
        if not self.reverse.is_file():
            raise KzooError(f"{self.reverse}: no such weights file (--reverse)")
        from kzoo.hub.convert.torchfile import load_state_dict

        return load_state_dict(self.reverse)


def formats() -> tuple:
    """The modules of `FORMATS`, in order."""
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in FORMATS)


def format_of(source: Source):
    """The first format that accepts `source`, or None."""
    return next((fmt for fmt in formats() if fmt.accepts(source)), None)


# --- references -------------------------------------------------------------------

def split_ref(ref: str):
    """`(base, arch or None, sha256 or None)` of `SOURCE[#arch=NAME][&sha256=HEX]`."""
    base, _, fragment = str(ref).partition("#")
    params = urllib.parse.parse_qs(fragment) if fragment else {}
    unknown = set(params) - {"arch", "sha256"}
    if unknown:
        raise KzooError(f"{ref}: unknown reference option(s) {', '.join(sorted(unknown))} "
                        "(#arch=NAME, &sha256=HEX)")
    arch = params.get("arch", [None])[0]
    digest = params.get("sha256", [None])[0]
    return base, arch, digest.lower() if digest else None



def is_upstream(ref) -> bool:
    """Whether `ref` names something to convert (not a kzoo preset): a weights file, a
    folder a format accepts, or an http(s) URL of a weights file."""
    base, _, _ = split_ref(str(ref))
    if base.startswith(("https://", "http://")):
        return urllib.parse.urlsplit(base).path.lower().endswith(WEIGHT_SUFFIXES)
    if "://" in base:
        return False
    path = Path(base).expanduser()
    if path.is_file():
        return path.suffix.lower() in WEIGHT_SUFFIXES
    return path.is_dir() and format_of(Source(path)) is not None


def _files(path: Path) -> list:
    """The files whose contents identify local source `path` (a folder: what its format reads)."""
    if not path.is_dir():
        return [path]
    source = Source(path)
    fmt = format_of(source)
    return fmt.files(source) if fmt else []


# --- the preset -----------------------------------------------------------------------

def _sample_picture(full, inference, size):
    """A picture of what the converted network does: translators map a synthetic test
    pattern (shown beside the output); a DDPM shows its prediction on pure noise."""
    shape = tuple(inference.inputs[0].shape[1:])
    if getattr(full, "num_classes", None) and len(shape) == 3:  # a segmenter: its coloured labels
        from kzoo.viz import colorize

        yy, xx = np.mgrid[0:shape[0], 0:shape[1]] / max(shape[0] - 1, 1)
        pattern = (np.stack([xx, yy, 1 - xx * yy], -1) * 2 - 1)[None].astype("float32")
        logits = np.asarray(inference(pattern, training=False))[0]
        to8 = np.clip((pattern[0] + 1) * 127.5, 0, 255).astype(np.uint8)
        return np.concatenate([to8, colorize(np.argmax(logits, -1))], axis=1)
    if len(inference.inputs) == 1 and len(shape) == 3:
        c = shape[-1]
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        pattern = np.stack([xx, yy, 1 - xx * yy, (xx + yy) / 2][:c] if c <= 4 else
                           [xx] * c, axis=-1)
        pattern = (pattern * 2 - 1)[None].astype("float32")
        out = inference(pattern, training=False)
        if isinstance(out, dict):  # several outputs (an autoencoder's latent too): the image
            out = next(v for v in out.values() if tuple(v.shape[1:3]) == (size, size))
        out = np.asarray(out)[0]
        to8 = lambda a: np.clip((a + 1) * 127.5, 0, 255).astype(np.uint8)  # noqa: E731
        left, right = to8(pattern[0]), to8(out)
        if left.shape[:2] != right.shape[:2]:  # super-resolution: the input at the output's size
            fy, fx = right.shape[0] // left.shape[0], right.shape[1] // left.shape[1]
            left = np.repeat(np.repeat(left, fy, axis=0), fx, axis=1)
        if left.shape[-1] != right.shape[-1]:
            left = np.repeat(left[..., :1], right.shape[-1], axis=-1)
            right = right if right.shape[-1] in (1, 3) else right[..., :3]
        return np.concatenate([left, right], axis=1)
    if len(inference.inputs) == 1 and len(shape) == 1:  # a generator: 4 images of seeded latents
        z = np.random.default_rng(0).standard_normal((4, *shape)).astype("float32")
        images = np.asarray(inference(z, training=False))
        f = max(1, images.shape[1] // size)  # block means down to `size` pixels
        images = images.reshape(4, images.shape[1] // f, f, images.shape[2] // f, f, -1).mean((2, 4))
        images = np.clip((images + 1) * 127.5, 0, 255).astype(np.uint8)
        images = np.repeat(images, 3, -1) if images.shape[-1] == 1 else images[..., :3]
        return np.concatenate(list(images), axis=1)
    return np.full((size, size, 3), 127, np.uint8)


def write(full, inference, info, size, out, *, name, source, source_sha256, tofu=False,
          load_as=None, reverse=None) -> Path:
    """Write the converted preset folder `out` (atomically); `load_as`: the reference
    the README tells users to load (default: the source with its architecture);
    `reverse`: {"source", "sha256"} of the other direction's generator file, if any."""
    from kzoo.hub.modelcard import upstream_readme
    from kzoo.hub.preset import build_from_models

    if load_as is None:
        load_as = f"{source}#arch={info['arch']}"
    meta = {"name": name, "version": "upstream", "license": info["license"],
            "recipe": None, "dataset": None, "image_size": size,
            "upstream": {"format": info["format"], "arch": info["arch"], "source": source,
                         "sha256": source_sha256, "trust_on_first_use": tofu, "load": load_as,
                         "code": info["code"], "paper": info["paper"], "note": info["note"]},
            "config": {"arch": info["arch"]},
            "command": f"kzoo hub convert {source} --arch {info['arch']}"
                       + (f" --reverse {reverse['source']}" if reverse else "")
                       + (f" --mode {info['test_mode']}" if "test_mode" in info else "")}
    if "test_mode" in info:
        meta["test_mode"] = meta["upstream"]["test_mode"] = info["test_mode"]
    if reverse:
        meta["upstream"]["reverse"] = dict(reverse)
    from kzoo.card import card_of
    import kzoo

    meta_for_readme = dict(meta, card=card_of(full).to_dict(), model_class=type(full).__name__,
                           kzoo_version=kzoo.__version__)
    return build_from_models(out, full=full, inference=inference, meta=meta,
                             readme_text=upstream_readme(meta_for_readme),
                             sample=_sample_picture(full, inference, min(size, 256)))


def _digest_of(paths) -> str:
    """The sha256 of one file; of several (a diffusers folder), that of their sha256s."""
    from kzoo.hub.preset import sha256_file

    digests = [sha256_file(p) for p in paths]
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()


def convert_local(path: Path, out: Path, *, arch=None, name=None, source=None,
                  source_sha256=None, tofu=False, load_as=None, reverse=None,
                  reverse_source=None, reverse_sha256=None, mode="eval") -> Path:
    """Convert the local weights file or model folder `path` into the preset `out` with
    the format that accepts it (`FORMATS`); `reverse`: a local file of a CycleGAN's other
    direction (`kzoo.hub.convert.junyanz.models`)."""
    from kzoo.layers.test_mode import check_mode

    check_mode(mode)
    src = Source(Path(path), arch=arch, mode=mode,
                 reverse=Path(reverse) if reverse is not None else None,
                 origin=source or str(path), sha256=source_sha256)
    if src.reverse is not None and src.path.is_file():
        src.reverse_state  # noqa: B018  (the --reverse file is read, or refused, before the file)
    fmt = format_of(src)
    if fmt is None:
        raise KzooError(f"{src.path}: no such weights file or diffusers folder")
    full, inference, info, size = fmt.models(src)
    digest = source_sha256 or _digest_of(_files(src.path))
    name = name or _default_name(src.origin, info["arch"])
    if load_as is None and not getattr(fmt, "ARCH_IN_REFERENCE", True):
        load_as = src.origin
    back = None
    if reverse is not None:
        back = {"source": reverse_source or str(reverse),
                "sha256": reverse_sha256 or _digest_of([reverse])}
    return write(full, inference, info, size, out, name=name, source=src.origin,
                 source_sha256=digest, tofu=tofu, load_as=load_as, reverse=back)


def _default_name(source: str, arch: str) -> str:
    import re

    stem = Path(urllib.parse.urlsplit(source).path.rstrip("/")).name
    stem = re.sub(r"\.(pth|pt|bin|safetensors)$", "", stem.lower())
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._") or "converted"
    return f"{stem}-{arch.lower()}"[:64].strip("-._") if arch else stem[:64].strip("-._")


def convert(source, *, out, arch=None, name=None, reverse=None, progress=True, mode="eval") -> Path:
    """What `kzoo hub convert SOURCE --arch NAME --out DIR` does; returns `out`.

    Args:
        source: a weights file, a diffusers folder, an http(s) URL of a weights file,
            `hf://owner/repo`, or a catalog name marked upstream.
        out: the new preset folder.
        arch: the junyanz architecture (None: the one the state dict matches).
        name: the preset name (default: from the source and architecture).
        reverse: a CycleGAN's other direction (a file, URL or catalog name, e.g.
            zebra2horse.pth for horse2zebra.pth) for `generator_ba`; a catalog entry
            names its own (`upstream.reverse`).
        mode: the inference network's test-time mode: "eval" (default) or "authors"
            (`kzoo.layers.test_mode`).

    Example::

        convert("horse2zebra.pth", arch="resnet_9blocks", out="presets/horse2zebra",
                reverse="zebra2horse.pth")
    """
    from kzoo.layers.test_mode import check_mode

    check_mode(mode)
    out = Path(out)
    if out.exists():
        raise KzooError(f"{out} already exists; remove it or choose another destination")
    base, ref_arch, digest = split_ref(str(source))
    arch = arch or ref_arch
    from kzoo.hub import cache, catalog

    entry = catalog.upstream(base)
    reverse = reverse or (entry["upstream"].get("reverse") if entry else None)
    remove_stale_dirs(out.parent, legacy=re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]{{8}}$"))
    with _scratch() as tmp:
        local, src, sha, new, name = _obtain(base, Path(tmp), arch, digest, name, progress)
        fetched = dict(new)
        back = {}
        if reverse:
            rbase, _, rdigest = split_ref(str(reverse))
            (Path(tmp) / "reverse").mkdir()
            rlocal, rsrc, rsha, rnew, _ = _obtain(rbase, Path(tmp) / "reverse", arch, rdigest,
                                                  None, progress)
            back = {"reverse": rlocal, "reverse_source": rsrc, "reverse_sha256": rsha}
            fetched.update(rnew)
        folder = convert_local(local, out, arch=arch or _catalog_arch(base), name=name,
                               source=src, source_sha256=sha, tofu=bool(new),
                               load_as=base if entry else None, mode=mode, **back)
    cache.record(fetched)  # only for files that converted: a failure leaves nothing behind
    return folder


# The download folders of `convert` (in the system's temporary folder): named by their pid
# so that the next convert removes those of killed processes.
SCRATCH_NAME = re.compile(r"^kzoo-convert-(?P<pid>\d+)-[a-z0-9_]{8}$")


@contextlib.contextmanager
def _scratch():
    """A private folder for downloads, in the system's temporary folder, removed at the
    end; those that killed converts left there are removed first."""
    remove_stale_dirs(tempfile.gettempdir(), SCRATCH_NAME)
    tmp = tempfile.mkdtemp(prefix=f"kzoo-convert-{os.getpid()}-")
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _catalog_arch(base):
    from kzoo.hub import catalog

    entry = catalog.upstream(base)
    return entry["upstream"].get("arch") if entry else None


def _obtain(base, tmp: Path, arch, digest, name, progress):
    """`(local path, source, its sha256 or None, pins to record, name)` of `base`; the
    pins (`kzoo.hub.cache.record`) are what was downloaded for the first time."""
    from kzoo.hub import cache, catalog

    entry = catalog.upstream(base)
    if entry:
        base, digest = entry["upstream"]["source"], digest or entry.get("sha256")
        name = name or entry["name"]
    if base.startswith("hf://"):
        from kzoo.hub import hf

        src, new = hf.download(base, tmp / "repo", pinned=cache.pinned, progress=progress)
        return tmp / "repo", src, None, new, name or hf_name(base)
    if base.startswith(("https://", "http://")):
        fname = Path(urllib.parse.urlsplit(base).path).name or "weights.pth"
        local = tmp / fname
        tofu = digest is None and cache.pinned(base) is None
        sha = cache.download_upstream(base, local, expected=digest, progress=progress)
        return local, base, sha, {base: sha} if tofu else {}, name
    return Path(base).expanduser(), str(Path(base).expanduser().resolve()), None, {}, name


def hf_name(ref: str) -> str:
    """The preset name of a converted hf:// repository: `owner-repo`."""
    from kzoo.hub import hf

    return _default_name(hf.parse(ref)[0].replace("/", "-"), "")


def cache_key(base: str, arch) -> str:
    """The cache entry of a converted source."""
    if base.startswith(("https://", "http://", "hf://")) or "://" not in base and \
            not Path(base).expanduser().exists():
        ident = hashlib.sha256(base.encode()).hexdigest()[:16]
    else:
        path = Path(base).expanduser()
        ident = _digest_of(_files(path))[:16]
    return f"converted/{ident}-{(arch or 'auto').lower()}"


def fetch(ref, *, arch=None, progress=True) -> Path:
    """The cached, verified preset converted from `ref` (converting it on first use).

    A conversion that fails leaves nothing in the cache. For a URL, the cached preset's
    recorded source sha256 is checked against the pin at every load.
    """
    from kzoo.hub import cache, catalog

    base, ref_arch, digest = split_ref(str(ref))
    arch = arch or ref_arch or _catalog_arch(base)
    key = cache_key(base, arch)

    def obtain(dest):
        convert(ref, out=dest, arch=arch, progress=progress)

    root = cache.install(key, obtain, what=str(ref), how=f"kzoo hub download '{ref}'",
                         needs_network="://" in base or catalog.upstream(base) is not None)
    source = json.loads((root / "metadata.json").read_text()).get("upstream", {})
    expected = cache.pinned(source.get("source", ""))
    if expected and source.get("sha256") != expected:
        shutil.rmtree(root, ignore_errors=True)
        raise KzooError(f"{ref}: the cached conversion was made from a file with sha256 "
                        f"{source.get('sha256')}, the pinned one is {expected}; it was removed")
    return root

