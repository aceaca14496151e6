"""The README.md of a preset: its model card in words, from metadata.json.

`readme` writes that of a preset kzoo trained, `upstream_readme` that of published
weights converted by `kzoo.hub.convert` (its `upstream` metadata: source, sha256,
paper, licence, what the conversion filled).

What the model does, its endpoints (inputs and outputs with roles, shapes and
value ranges) and its references come from the `kzoo.card.ModelCard` the model
declares (`metadata["card"]`); how it was trained, its metrics and versions from
the run. Nothing here knows a model family.

Example (the packaged wgan-gp-digits preset's metadata.json, read from its archive):
>>> import json, tarfile
>>> from pathlib import Path
>>> archive = Path(__file__).parent / "presets" / "wgan-gp-digits-2.tar.gz"
>>> with tarfile.open(archive) as tar:
...     meta = json.load(tar.extractfile("metadata.json"))
>>> readme(meta).splitlines()[0]
'# wgan-gp-digits'
"""

from __future__ import annotations

from kzoo.card import ModelCard

DATA_NOTES = {
    "builtin:digits": "scikit-learn's copy of the UCI ML hand-written digits (1,797 8x8 "
                      "grayscale images, CC BY 4.0), upsampled",
    "builtin:shapes": "kzoo's procedural scenes of circles, squares, triangles and striped "
                      "bars with per-pixel masks (2,048 training, 512 held-out scenes)",
    "builtin:photos": "seven of scikit-image's sample photographs (coffee and chelsea held "
                      "out); see skimage.data for each image's licence",
}


def _data_note(data):
    return DATA_NOTES.get(data) or DATA_NOTES.get(data.split("/")[0])


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _shape(entry, spatial):
    dims = ["batch"]
    for i, d in enumerate(entry["shape"][1:], start=1):
        dims.append(str(d) if d is not None else ("height", "width")[i - 1] if spatial and i <= 2
                    else "any")
    return "(" + ", ".join(dims) + ")"


def _values(entry):
    if entry.get("range") is not None:
        lo, hi = entry["range"]
        text = f"[{_fmt(float(lo))}, {_fmt(float(hi))}]"
        if entry.get("clip"):
            text += ", not bounded by the network: clip to it"
        return text
    if entry.get("num_classes") is not None:
        return f"0..{entry['num_classes'] - 1}"
    if entry.get("timesteps") is not None:
        return f"0..{entry['timesteps'] - 1}"
    if entry.get("distribution"):
        return entry["distribution"]
    return "-"


def _role(entry):
    return entry["role"] + (f" ({entry['color_space']})" if entry.get("color_space") else "")


def endpoint_lines(spec) -> list:
    """One endpoint's section: its sizes and a table of inputs and outputs."""
    dyn = spec["dynamic"]
    size = dyn.get("spatial_size")
    if size:
        how = (f"any height and width that are multiples of {size['multiple']}" if size["multiple"] > 1
               else "any height and width") + f" (e.g. {size['base']}x{size['base']})"
    else:
        how = "fixed shapes"
    lines = [f"### `{spec['endpoint']}`: {how}", "",
             "| | name | role | shape | dtype | values | description |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind, entries in (("input", spec["inputs"]), ("output", spec["outputs"])):
        for e in entries:
            lines.append(f"| {kind} | `{e['name']}` | {_role(e)} | {_shape(e, bool(size))} | "
                         f"{e['dtype']} | {_values(e)} | {e.get('description', '')} |")
    return lines + [""]


def readme(meta) -> str:
    """The README.md of a preset whose metadata.json is `meta` (which holds its `card`)."""
    card = ModelCard.from_dict(meta["card"])
    cfg = meta["config"]
    name = meta["name"]
    data = meta["dataset"] or "unknown data"
    size = f"{meta['image_size']}x{meta['image_size']}" if meta.get("image_size") else None
    spatial = any(e.spatial for e in card.endpoints)
    summary = card.summary.rstrip(".")
    lines = [
        f"# {name}", "",
        f"A `{meta['model_class']}` (task `{card.task}`) trained by kzoo's `{meta['recipe']}` "
        f"recipe on `{data}`" + (f" at {size}" if size else "")
        + (f" with {meta['channels']} channel(s)" if meta.get("channels") else "")
        + f". It {summary}.", "",
        "## Usage", "",
        "```python",
        "import kzoo.hub",
        f'model = kzoo.hub.load("{name}")            # {meta["inference_class"]} for inference',
        f'full = kzoo.hub.load("{name}", part="full")  # the trainable {meta["model_class"]}',
        "```", "",
        f"Command line: `kzoo hub download {name}`; `kzoo export {name}` (SavedModel + ONNX, "
        f"exported as `{name}`); `kzoo predict {name} ...`; fine-tune with "
        f"`python -m kzoo.recipes.{meta['recipe']} --init-from {name}`.", "",
        "## Endpoints", "",
        "Declared by the model's card (`kzoo.card`); images are NHWC.", "",
    ]
    for endpoint in card.endpoints:
        lines += endpoint_lines(endpoint.spec())
    lines += ["## Training", "",
              f"Reproduce: `{meta['command']}`", "",
              f"- data: `{data}`" + (f" ({_data_note(data)})" if _data_note(data) else ""),
              f"- schedule: {cfg.get('epochs')} epochs x {cfg.get('steps_per_epoch') or 'one pass'} "
              f"steps, batch {cfg.get('batch_size')}, seed {cfg.get('seed')}"
              + (f"; {meta['train_seconds']:.0f} s of training" if meta.get("train_seconds") else ""),
              f"- preset `{cfg.get('preset')}`; options changed from the paper defaults: "
              + (", ".join(f"`{k}={v}`" for k, v in sorted(meta["changed_from_paper"].items()))
                 or "none"),
              f"- versions: kzoo {meta['kzoo_version']}, Keras {meta['keras_version']}, "
              f"TensorFlow {meta['tensorflow_version']}", "",
              "## Metrics", ""]
    if meta["metrics"]:
        base = meta.get("untrained_metrics") or {}
        lines += ["Measured by the recipe's own `evaluate` at the end of the run "
                  "(see `kzoo/metrics.py`).", "",
                  "| metric | this model | untrained |", "| --- | --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} | {_fmt(base[k]) if k in base else '-'} |"
                  for k, v in sorted(meta["metrics"].items())]
    else:
        lines.append("No quality metric was measured for this data.")
    trained = f"Trained on `{data}` only" + (f", at {size}" if size else "")
    lines += ["", "![samples](samples.png)", "", "## Limits", "",
              f"- {trained}; expect nothing useful outside that domain"
              + (" (other sizes run, but were not trained on)." if spatial else " or size."),
              f"- The `{cfg.get('preset')}` preset" + (
                  " is a short CPU schedule, not the paper's: quality is below what the "
                  "paper's schedule reaches." if cfg.get("preset") == "quick" else "."),
              "- The metrics use a small reference digits classifier in place of Inception; "
              "they compare kzoo runs with each other, not with published numbers."
              if any(w in k for k in meta["metrics"]
                     for w in ("frechet", "inception", "consistency", "classifier")) else
              "- Metrics are those of the recipe's evaluation only.",
              ""]
    if card.references:
        lines += ["## References", "", *[f"- {r}" for r in card.references], ""]
    lines += ["## License", "", f"Weights: {meta['license']}.", ""]
    return "\n".join(lines)


def upstream_readme(meta) -> str:
    """The README.md of a converted preset (`kzoo.hub.convert.write`) whose metadata.json is
    `meta` (with its `card`, `model_class` and `kzoo_version`)."""
    card = ModelCard.from_dict(meta["card"])
    up = meta["upstream"]
    lines = [f"# {meta['name']}", "",
             (f"The published `{up['arch']}` weights of {up['code']}, converted to kzoo's "
              f"architecture-exact `{meta['model_class']}` (task `{card.task}`). It "
              f"{card.summary.rstrip('.')}."), "",
             f"- source: {up['source']}",
             f"- source sha256: `{up['sha256']}`"
             + (" (recorded on first download: trust on first use; every later download "
                "is checked against it)" if up.get("trust_on_first_use") else ""),
             f"- paper: {up['paper']}", f"- licence: {meta['license']}",
             f"- converted by kzoo {meta['kzoo_version']}: {up['note']}"]
    if "test_mode" in up:
        from kzoo.layers.test_mode import ABOUT

        lines.append(f"- test-time mode of the inference network: `{up['test_mode']}`, "
                     f"{ABOUT[up['test_mode']]} (`kzoo export --mode eval|authors` exports "
                     "either)")
    lines += ["",
              "## Usage", "", "```python", "import kzoo.hub",
              f'model = kzoo.hub.load("{up["load"]}")  # converted once, then cached',
              f'full = kzoo.hub.load("{up["load"]}", part="full")  # for --init-from / fine-tuning',
              "```", "", "## Endpoints", ""]
    for endpoint in card.endpoints:
        lines += endpoint_lines(card.spec(endpoint.name))
    return "\n".join(lines) + "\n"
