"""The preset catalog: `kzoo/hub/catalog.json`, shipped with the package.

Each entry names one published preset:

    {"name": "cgan-digits", "version": "1", "task": "...", "model_class": "...",
     "recipe": "cgan", "dataset": "builtin:digits", "image_size": 32,
     "path": "presets/cgan-digits.tar.gz"  (in the package, relative to the catalog)
       or "url": "https://.../cgan-digits.tar.gz",
     "sha256": "<archive sha256>", "size": <archive bytes>, "metrics": {...}}

An entry marked `upstream` names a published checkpoint of another framework instead,
converted on first use (`kzoo.hub.convert`; `upstream(name)` finds it); it has no path,
url, sha256 or size (the source's sha256 is recorded on its first download, trust on
first use, `kzoo.hub.cache.pinned`):

    {"name": "pix2pix-facades", "version": "upstream", "task": "...",
     "upstream": {"format": "junyanz", "arch": "unet_256",
                  "source": "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/facades_label2photo.pth",
                  "provenance": "junyanz/pytorch-CycleGAN-and-pix2pix scripts/download_pix2pix_model.sh:8",
                  "arch_provenance": "junyanz/pytorch-CycleGAN-and-pix2pix models/pix2pix_model.py ..."}}

`provenance` ("owner/repo path[:line]", optionally followed by a note) names the authors'
own download script or model card the source was read from; every upstream entry has
one. The authors' CycleGAN files are `.../cyclegan/pretrained_models/NAME.pth`
(`scripts/download_cyclegan_model.sh` line 9), their pix2pix files
`.../pix2pix/models-pytorch/NAME.pth` (`scripts/download_pix2pix_model.sh` line 8).
A CycleGAN entry names the other direction's generator file too where the authors
publish one (`"reverse": ".../pretrained_models/zebra2horse.pth"` for horse2zebra),
converted into `generator_ba`.

An `hf://owner/repo` entry names its `revision`: the commit it was read at (40 hex
digits), or "pinned on first download" where no commit could be traced (the commit the
repository's main branch resolves to on the first download is then recorded in
`$KZOO_HOME/upstream/sha256.json` and used from then on, see `kzoo.hub.hf`):

    {"name": "ddpm-cifar10-32", "version": "upstream", "task": "...",
     "upstream": {"format": "diffusers", "source": "hf://google/ddpm-cifar10-32",
                  "revision": "30eb34ce06e995c15ec349bc188a86d6bd0d5359",
                  "provenance": "google/ddpm-cifar10-32 README.md (the model card)"}}

Super-resolution entries (`kzoo.hub.convert.sr`) have format "realesrgan" (the GitHub
release files that xinntao/Real-ESRGAN's `inference_realesrgan.py` model table names) or
"edsr" (the files of the `url` dict in sanghyun-son/EDSR-PyTorch `src/model/edsr.py`), and
`arch` `RRDBNet`, `SRVGGNetCompact` or `EDSR` (widths, depths and scale are read from the
state dict).

`KZOO_CATALOG=/path/to/catalog.json` adds entries (the same name and version
there replaces the shipped one), e.g. for a private mirror.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from kzoo.errors import KzooError
from kzoo.hub import schema
from kzoo.io import write_json

SHIPPED = Path(__file__).parent / "catalog.json"


MAX_CATALOG_BYTES = 16 << 20


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        raise KzooError(f"catalog {path} does not exist")
    data = schema.read_json(path, max_bytes=MAX_CATALOG_BYTES)
    entries = data.get("presets") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KzooError(f"catalog {path} has no 'presets' list")
    out = []
    for i, e in enumerate(entries):
        schema.check_catalog_entry(e, f"catalog {path}, entry {i}")
        if "upstream" in e:
            _check_upstream(e, path)
        elif ("path" in e) == ("url" in e):
            raise KzooError(f"catalog {path}: entry {e['name']!r} needs exactly one of path / url")
        e = dict(e, version=str(e["version"]))
        if "path" in e:
            e["path"] = str((path.parent / e["path"]).resolve())
        out.append(e)
    return out


UPSTREAM_FORMATS = ("junyanz", "diffusers", "realesrgan", "edsr", "torchvision")


PIN_ON_FIRST_DOWNLOAD = "pinned on first download"
_PROVENANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]* [^ :]+(:\d+)?( .+)?")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _check_upstream(e, path):
    up = e["upstream"]
    where = f"catalog {path}: upstream entry {e['name']!r}"
    if "path" in e or "url" in e:
        raise KzooError(f"{where} takes its source from upstream.source, not path/url")
    if up.get("format") not in UPSTREAM_FORMATS:
        raise KzooError(f"{where}: upstream.format must be one of {', '.join(UPSTREAM_FORMATS)}")
    source = up.get("source")
    if not isinstance(source, str) or not source.startswith(("https://", "http://", "hf://")):
        raise KzooError(f"{where}: upstream.source must be an http(s):// or hf:// reference")
    provenance = up.get("provenance")
    if not isinstance(provenance, str) or not _PROVENANCE.fullmatch(provenance):
        raise KzooError(f"{where}: upstream.provenance must name where the source was read, as "
                        "'owner/repo path[:line]' of the authors' download script or model card")
    if up["format"] in ("junyanz", "torchvision") and not isinstance(up.get("arch"), str):
        raise KzooError(f"{where}: a {up['format']} source needs upstream.arch")
    reverse = up.get("reverse")
    if reverse is not None and (up["format"] != "junyanz" or not str(up.get("arch")).startswith("resnet")
                                or not isinstance(reverse, str)
                                or not reverse.startswith(("https://", "http://"))):
        raise KzooError(f"{where}: upstream.reverse (the other direction of a CycleGAN) must be the "
                        "http(s):// URL of a junyanz resnet generator")
    revision = up.get("revision")
    if source.startswith("hf://"):
        if "@" in source:
            raise KzooError(f"{where}: name the commit in upstream.revision, not in the source")
        if revision != PIN_ON_FIRST_DOWNLOAD and not (isinstance(revision, str)
                                                      and _COMMIT.fullmatch(revision)):
            raise KzooError(f"{where}: upstream.revision must be a commit (40 hex digits) or "
                            f"{PIN_ON_FIRST_DOWNLOAD!r}")
    elif revision is not None:
        raise KzooError(f"{where}: upstream.revision is for hf:// sources")


def entries() -> list[dict]:
    """Every catalog entry (shipped, then `KZOO_CATALOG`), later ones replacing earlier."""
    merged = {}
    sources = [SHIPPED] + ([Path(os.environ["KZOO_CATALOG"])] if os.environ.get("KZOO_CATALOG") else [])
    for source in sources:
        for e in _read(source):
            merged[(e["name"], e["version"])] = e
    return sorted(merged.values(), key=lambda e: (e["name"], _version_key(e["version"])))


def _version_key(v: str):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.split("."))


def names() -> list[str]:
    return sorted({e["name"] for e in entries()})


def lookup(ref: str) -> dict:
    """The entry for `name` (latest version) or `name@version`; unknown names list close ones."""
    name, _, version = ref.partition("@")
    all_entries = entries()
    matches = [e for e in all_entries if e["name"] == name]
    if not matches:
        known = sorted({e["name"] for e in all_entries})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        listed = ", ".join(known) if len(known) <= 12 else f"{len(known)} presets"
        raise KzooError(f"unknown preset {name!r}{hint} (catalog: {listed or 'empty'}; "
                        "`kzoo hub list` shows them)")
    if version:
        for e in matches:
            if e["version"] == version:
                return e
        raise KzooError(f"preset {name} has no version {version!r}; versions: "
                        f"{', '.join(e['version'] for e in matches)}")
    return matches[-1]


def upstream(ref: str):
    """The catalog entry marked `upstream` that `ref` names, or None (a URL, a path, an
    existing file or folder, or a name the catalog does not list or lists as a kzoo preset)."""
    if "://" in ref or os.sep in ref or Path(ref).expanduser().exists():
        return None
    try:
        entry = lookup(ref)
    except KzooError:
        return None
    return entry if "upstream" in entry else None


def add_entry(catalog_path, entry: dict, *, relative_to=None):
    """Add or replace (same name and version) `entry` in the catalog file, atomically.

    A local `path` is stored relative to the catalog's folder (`relative_to`).
    """
    catalog_path = Path(catalog_path)
    data = json.loads(catalog_path.read_text()) if catalog_path.exists() else {"presets": []}
    entry = dict(entry, version=str(entry["version"]))
    if "path" in entry:
        entry["path"] = os.path.relpath(entry["path"], relative_to or catalog_path.parent)
    data["presets"] = [e for e in data["presets"]
                       if (e["name"], str(e["version"])) != (entry["name"], entry["version"])]
    data["presets"].append(entry)
    data["presets"].sort(key=lambda e: (e["name"], _version_key(str(e["version"]))))
    write_json(catalog_path, data)


TABLE_METRICS = 4


def _is_baseline(key: str) -> bool:
    """Scores of a reference the recipes log beside the model's own (input as output, ...)."""
    return key.startswith(("input_", "bicubic_", "mean_color_", "train_data_", "untrained")) \
        or "identity" in key or "original" in key


def _metrics_cell(metrics: dict) -> str:
    """Up to TABLE_METRICS quality scores (no lists, step counts or timings)."""
    shown = [(k, v) for k, v in sorted(metrics.items(), key=lambda kv: (_is_baseline(kv[0]), kv[0]))
             if isinstance(v, (int, float)) and not isinstance(v, bool)
             and not k.endswith(("_steps", "_seconds", "_samples")) and k != "eval_samples"]
    cell = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in shown[:TABLE_METRICS])
    if len(shown) > TABLE_METRICS:
        cell += f" (+{len(shown) - TABLE_METRICS} more: kzoo hub info)"
    return cell


TABLE_HEAD = ("name", "task", "size", "metrics", "image size")


def table_rows(rows: list[dict]) -> list[tuple]:
    """The cells of the `kzoo hub list` table, one tuple per entry."""
    out = []
    for e in rows:
        metrics = _metrics_cell(e.get("metrics") or {})
        size = e.get("image_size")
        out.append((f"{e['name']}@{e['version']}", e["task"],
                    f"{e['size'] / 1e6:.1f} MB" if "size" in e else "upstream",
                    metrics or "-", f"{size}x{size}" if size else "-"))
    return out


def table(rows: list[dict], *, markdown: bool = False) -> str:
    """The `kzoo hub list` table: name, task, size, metrics, image size (`markdown`: the same
    cells as a Markdown table, as docs/hub.md shows the shipped presets)."""
    lines = [TABLE_HEAD, *table_rows(rows)]
    if markdown:
        cells = [lines[0], ("---",) * len(TABLE_HEAD), *lines[1:]]
        return "\n".join("| " + " | ".join(r) + " |" for r in cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(TABLE_HEAD))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


# The `kzoo.hub.convert` module of each upstream format (a diffusers AutoencoderKL folder has
# its own converter); each declares the error its fixture test proves (PROVEN_ERROR,
# MEASURED_ERROR, PROVEN_BY).
CONVERTERS = {"junyanz": "junyanz", "diffusers": "diffusers", "torchvision": "torchvision",
              "realesrgan": "sr", "edsr": "sr"}


def converter_module(entry: dict):
    """The converter module of an upstream catalog entry."""
    import importlib

    fmt = entry["upstream"]["format"]
    if fmt not in CONVERTERS:
        raise KzooError(f"{entry['name']}: no converter for upstream format {fmt!r} "
                        f"(known: {', '.join(sorted(CONVERTERS))})")
    name = "autoencoder_kl" if fmt == "diffusers" and entry.get("model_class") == "AutoencoderKL" \
        else CONVERTERS[fmt]
    return importlib.import_module(f"kzoo.hub.convert.{name}")


def proven_error(entry: dict) -> str:
    """The cell of an upstream entry's reference equality: the bound its converter's fixture
    test asserts, the largest error measured, and the test file."""
    module = converter_module(entry)
    test = module.PROVEN_BY.split("::")[0]
    return f"≤ {_sci(module.PROVEN_ERROR, 0)} (measured {_sci(module.MEASURED_ERROR, 1)}; `{test}`)"


def _sci(x: float, digits: int) -> str:
    """1e-05 -> "1e-5", 1.4e-06 -> "1.4e-6"."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


UPSTREAM_HEAD = ("name", "family", "architecture", "source", "other direction", "license",
                 "proven error", "read from")


def upstream_table(rows: list[dict]) -> str:
    """A Markdown table of the upstream entries: name, family (the kzoo model class),
    architecture, source, reverse, license, proven error (max |kzoo - reference| relative to
    the reference output's range, `proven_error`) and where the source was read (docs/hub.md
    shows it; a test keeps the two equal)."""
    cells = [UPSTREAM_HEAD, ("---",) * len(UPSTREAM_HEAD)]
    for e in rows:
        up = e["upstream"]
        source = up["source"] + (f"@{up['revision'][:12]}" if len(up.get("revision", "")) == 40
                                 else "")
        reverse = up.get("reverse", "")
        cells.append((e["name"], e.get("model_class", "-"), up.get("arch", up["format"]), f"`{source}`",
                      f"`{reverse.rsplit('/', 1)[-1]}`" if reverse else "-", e.get("license", "-"),
                      proven_error(e), up["provenance"]))
    return "\n".join("| " + " | ".join(r) + " |" for r in cells)
