"""Recipe configuration: training options, model options, presets, flags, resolution.

A run is configured by two kinds of options:

- **training options**: a typed dataclass per recipe (`TrainConfig` and its
  subclasses: data, epochs, batch size, optimizer, learning rate, ...) whose
  defaults are the paper's;
- **model options**: the keyword arguments of the registered model the recipe
  trains, read from its constructor signature (`model_options`): each default is
  written once, in the model, and each help text comes from the `Args:` section of
  the model's docstring. Arguments that the data decides (`channels`,
  `num_classes`, ...) or that the recipe computes are not options. A name that is
  both a training option and a model argument (`image_size`, `seed`) has one value,
  passed to both.

The resolved configuration follows the precedence defaults -> preset -> flags. A
preset is a table of `kzoo/recipes/presets/<recipe>.toml` (`[paper]`, `[quick]`,
with model options in a nested `[quick.model]` table) or a TOML file
(`--preset recipes/dcgan-cifar10.toml`: training options at the top, model options
in `[model]`, optionally `recipe = "dcgan"` to say which recipe it is for). On the
command line both kinds are flags (`--epochs 5 --width 32`). An optional value
(`int or None`) is written `none` on the command line and in TOML.

The resolved config (`cfg`) is a `TrainConfig` whose `model` field holds the model
options; `dataclasses.asdict(cfg)` is what `config.json` records under "config".
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import os
import re
import textwrap
import tomllib
import types
import typing
from pathlib import Path

from kzoo.errors import KzooError

PRESET_DIR = Path(__file__).parent / "presets"
STRATEGIES = ("default", "mirrored", "multiworker")
NONE = "none"  # how an optional value is written as a flag or in TOML


@dataclasses.dataclass
class TrainConfig:
    """Options every recipe has. Recipes subclass this with their paper defaults.

    Attributes:
        data: data spec (`builtin:NAME`, `tfds:NAME`, a folder; see `kzoo.data`).
        epochs: training epochs.
        steps_per_epoch: optimizer steps per epoch; None: one pass over the data.
        batch_size: global batch (tf.distribute splits it over replicas).
        image_size: training image size; None: the model's default.
        seed: seed of data order, initial weights and the model's noise.
        strategy: "default", "mirrored" or "multiworker" (tf.distribute).
        mixed_precision: mixed_float16 on a GPU, mixed_bfloat16 on a CPU.
        jit_compile: XLA-compile the train step.
        preset: the preset the run started from (a name or a TOML file).
        init_from: a hub preset (name, path, URL) or run whose weights start the training.
        eval_samples: images the final evaluation scores (generated samples or held-out
            images); 0 skips the evaluation; None: every held-out image.
        model: the model options (keyword arguments of the recipe's model).
    """

    data: str = "builtin:digits"
    epochs: int = 25
    steps_per_epoch: int | None = None
    batch_size: int = 128
    image_size: int | None = None
    seed: int = 0
    strategy: str = "default"
    mixed_precision: bool = False
    jit_compile: bool = False
    preset: str = "paper"
    init_from: str = ""
    eval_samples: int | None = None
    model: dict = dataclasses.field(default_factory=dict)


def steps_per_epoch(cfg, data, *, minibatches=1) -> int:
    """Optimizer steps of one epoch: `cfg.steps_per_epoch`, or one pass over `data`
    (a step consumes `minibatches` batches, e.g. WGAN-GP's critic steps)."""
    if cfg.steps_per_epoch is not None:
        return cfg.steps_per_epoch
    return max(1, data.num_examples // (cfg.batch_size * minibatches))


def total_steps(cfg, data, *, minibatches=1) -> int:
    """Optimizer steps of the whole run (learning-rate schedules)."""
    return cfg.epochs * steps_per_epoch(cfg, data, minibatches=minibatches)


# --- model options -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelOption:
    """One keyword argument of a model constructor, as a recipe option.

    Attributes:
        name: the argument's name (flag `--name-with-dashes`, TOML key `name`).
        type: int, float, str, bool or tuple (of numbers).
        default: the constructor's default.
        optional: None is a valid value (written `none`).
        help: the argument's description in the model's `Args:` docstring section.
    """

    name: str
    type: type
    default: typing.Any
    optional: bool
    help: str

    def coerce(self, value, source):
        """`value` (from TOML or JSON) as this option's type; KzooError if it is not."""
        return _coerce_value(self.name, self.type, self.optional, value, source)


_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


def doc_section(doc, section="Args") -> dict[str, str]:
    """`{name: text}` of a section (`Args:`, `Attributes:`) of a Google-style docstring:
    `name: text` entries (or `a, b: text` for several names), continuation lines indented deeper."""
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"{section}:") + 1
    except StopIteration:
        return {}
    entries, indent, names = {}, None, []
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break
        indent = depth if indent is None else indent
        match = re.match(r"(\**\w+(?:, \**\w+)*):\s*(.*)", line.strip())
        if depth == indent and match:
            names = match.group(1).split(", ")
            entries.update({n: match.group(2) for n in names})
        else:
            entries.update({n: entries[n] + " " + line.strip() for n in names})
    return entries


def docstring_args(doc) -> dict[str, tuple[str, str]]:
    """`{name: (type, description)}` of the `Args:` section (`name: type. description`)."""
    out = {}
    for name, text in doc_section(doc, "Args").items():
        kind, _, description = text.partition(". ")
        out[name] = (kind.strip(), description.strip())
    return out


def option_help(cfg_cls) -> dict[str, str]:
    """Help of each training option: the `Attributes:` of `cfg_cls` and its bases."""
    helps = {}
    for klass in reversed(cfg_cls.__mro__):
        helps.update(doc_section(klass.__doc__, "Attributes"))
    return helps


def _set_by_init(cls) -> set[str]:
    """Keyword arguments `cls.__init__` passes to its parent itself (`super().__init__(x=...)`)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    except (OSError, TypeError, SyntaxError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "__init__" and isinstance(node.func.value, ast.Call)
                and isinstance(node.func.value.func, ast.Name) and node.func.value.func.id == "super"):
            names.update(k.arg for k in node.keywords if k.arg)
    return names


def _option_type(default, doc_type):
    """(type, optional) of an argument from its default, or from its docstring type."""
    optional = doc_type.endswith(" or None") or default is None
    base = doc_type.removesuffix(" or None").strip()
    if default is not None:
        return type(default) if type(default) in (*_SCALARS.values(), tuple) else None, optional
    if base.startswith(("tuple", "sequence")):
        return tuple, optional
    return _SCALARS.get(base), optional


@functools.lru_cache(maxsize=None)
def model_options(cls) -> dict[str, ModelOption]:
    """The options of model class `cls`: its keyword arguments with defaults.

    The class's own arguments, then those of the parent its `**kwargs` entry in
    `Args:` names ("**kwargs: the `DCGAN` arguments"), less the ones the class
    passes to that parent itself. Types come from the default (or, for a None
    default, from the docstring's `int or None`); an argument whose type is not a
    number, string, bool or tuple of numbers maps to `type=None` (not a flag).
    """
    options, skip = {}, set()
    while cls is not None:
        docs = docstring_args(cls.__doc__)
        for p in inspect.signature(cls.__init__).parameters.values():
            if (p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
                    and p.default is not p.empty and p.name not in options and p.name not in skip):
                doc_type, help_text = docs.get(p.name, ("", ""))
                t, optional = _option_type(p.default, doc_type)
                options[p.name] = ModelOption(p.name, t, p.default, optional, help_text)
        skip |= _set_by_init(cls)
        parent = re.search(r"`(\w+)`", docs.get("**kwargs", ("", ""))[1] or "")
        parent = parent or re.search(r"`(\w+)`", docs.get("**kwargs", ("", ""))[0])
        cls = next((c for c in cls.__mro__[1:] if parent and c.__name__ == parent.group(1)), None)
    return options


# --- coercion ------------------------------------------------------------------

def _coerce_value(key, t, optional, value, source):
    if optional and (value is None or (isinstance(value, str) and value.lower() == NONE)):
        return None
    if t is bool and not isinstance(value, bool):
        raise KzooError(f"{source}: {key} must be true or false, got {value!r}")
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if t is tuple and isinstance(value, list):
        value = tuple(value)
    if t is int and isinstance(value, bool) or not isinstance(value, t):
        what = t.__name__ + (" or none" if optional else "")
        raise KzooError(f"{source}: {key} must be {what}, got {value!r}")
    return value


def _field_type(cfg_cls, name):
    """(type, optional) of training option `name` of `cfg_cls`."""
    t = typing.get_type_hints(cfg_cls)[name]
    optional = False
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = typing.get_args(t)
        optional = type(None) in args
        t = next(a for a in args if a is not type(None))
    return t, optional


def train_fields(cfg_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cfg_cls) if f.name != "model"]


def recipe_options(recipe) -> dict[str, ModelOption]:
    """The model options of `recipe`: its model's, less the arguments the data decides,
    the recipe computes, or a training option shares."""
    from kzoo.zoo import model_class

    drop = {*recipe.data_args, *recipe.recipe_args, *train_fields(recipe.config_cls)}
    options = {k: o for k, o in model_options(model_class(recipe.model)).items() if k not in drop}
    untyped = [k for k, o in options.items() if o.type is None]
    if untyped:
        raise TypeError(f"recipe {recipe.name}: model {recipe.model!r} arguments {untyped} have no "
                        "option type; list them in the recipe's recipe_args or data_args")
    return options


def _split(recipe, table, source, options, *, nested=True):
    """(training values, model values) of a preset table, each checked and coerced."""
    table = dict(table)
    model_table = table.pop("model", {}) if nested else {}
    if not isinstance(model_table, dict):
        raise KzooError(f"{source}: model must be a table of model options")
    train, fields = {}, set(train_fields(recipe.config_cls))
    for key, value in table.items():
        if key not in fields:
            hint = " (a model option: put it in the [model] table)" if key in options else ""
            raise KzooError(f"{source}: unknown option {key!r}{hint}; known: {', '.join(sorted(fields))}")
        t, optional = _field_type(recipe.config_cls, key)
        train[key] = _coerce_value(key, t, optional, value, source)
    model = {}
    for key, value in model_table.items():
        if key not in options:
            raise KzooError(f"{source}: unknown model option {key!r} of {recipe.model}; known: "
                            f"{', '.join(sorted(options))}")
        model[key] = options[key].coerce(value, source)
    return train, model


def read_toml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise KzooError(f"preset file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise KzooError(f"preset file {str(path)!r} is not valid TOML: {e}") from None


def load_preset(recipe, preset: str) -> tuple[dict, dict]:
    """(training options, model options) of a named preset of `recipe`, or of a TOML file."""
    options = recipe_options(recipe)
    if preset.endswith(".toml") or os.sep in preset:
        table = read_toml(preset)
        named = table.pop("recipe", recipe.name)
        if named != recipe.name:
            raise KzooError(f"preset file {preset!r} is for the {named} recipe, not {recipe.name}")
        return _split(recipe, table, preset, options)
    tables = tomllib.loads((PRESET_DIR / f"{recipe.name}.toml").read_text())
    if preset not in tables:
        raise KzooError(f"unknown preset {preset!r} for {recipe.name}; known: {', '.join(tables)} "
                        "(or a path to a .toml file)")
    return _split(recipe, tables[preset], f"preset {preset}", options)


# --- flags ---------------------------------------------------------------------

def _number_tuple(text):
    """"2,4,6" -> (2, 4, 6); "0.5,2" -> (0.5, 2)."""
    return tuple(float(v) if any(c in v for c in ".eE") else int(v) for v in text.split(","))


def _flag_type(t, optional):
    parse = _number_tuple if t is tuple else t

    def convert(text):
        return None if optional and text.lower() == NONE else parse(text)

    convert.__name__ = ("number list" if t is tuple else t.__name__) + (" or none" if optional else "")
    return convert


def _add_flag(p, name, t, optional, help_text):
    flag = "--" + name.replace("_", "-")
    if t is bool:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
    else:
        p.add_argument(flag, type=_flag_type(t, optional), help=help_text)


def parser(recipe, options=None):
    """The argparse parser of `recipe`: training options, then model options."""
    options = recipe_options(recipe) if options is None else options
    p = argparse.ArgumentParser(
        prog=f"python -m kzoo.recipes.{recipe.name}",
        description=(recipe.config_cls.__doc__ or "").strip().splitlines()[0],
        argument_default=argparse.SUPPRESS)
    p.add_argument("--out", help=f"run directory (default runs/{recipe.name}/<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    from kzoo.zoo import model_class

    defaults, helps = recipe.config_cls(), option_help(recipe.config_cls)
    shared = model_options(model_class(recipe.model))
    train = p.add_argument_group("training options")
    for name in train_fields(recipe.config_cls):
        if name == "preset":
            train.add_argument("--preset", help="paper | quick | FILE.toml (default: quick on a "
                                                "machine without a GPU, else paper)")
            continue
        t, optional = _field_type(recipe.config_cls, name)
        default = getattr(defaults, name)
        shown = "the model's" if default is None and name in shared else repr(default)
        _add_flag(train, name, t, optional, f"{helps.get(name, '')} (default: {shown})".lstrip())
    group = p.add_argument_group(f"model options (arguments of {recipe.model})")
    for o in options.values():
        _add_flag(group, o.name, o.type, o.optional, f"{o.help} (default: {o.default!r})".lstrip())
    return p


def _parse_or_raise(p, argv):
    # argparse prints usage and exits 2 by itself on bad flags; make its message one line.
    def error(message):
        raise KzooError(f"{p.prog}: {message}")

    p.error = error
    return vars(p.parse_args(argv))


# --- resolution ----------------------------------------------------------------

def make_config(recipe, train: dict, model: dict, options=None):
    """The full config: training defaults and model defaults under `train` and `model`.

    A shared name (`image_size`) left None takes the model's default.
    """
    from kzoo.zoo import model_class

    options = recipe_options(recipe) if options is None else options
    try:
        cfg = recipe.config_cls(**train, model={**{k: o.default for k, o in options.items()}, **model})
    except TypeError as e:
        raise KzooError(f"{recipe.name}: {e}") from None
    signature = model_options(model_class(recipe.model))
    shared = {k: signature[k].default for k in train_fields(recipe.config_cls)
              if k in signature and k not in recipe.data_args and getattr(cfg, k) is None
              and signature[k].default is not None}
    return dataclasses.replace(cfg, **shared)


def paper_config(recipe):
    """The recipe's paper defaults (no preset, no flags)."""
    return make_config(recipe, {}, {})


def changed_from(cfg, reference) -> dict:
    """Options (training and model, by flag name) whose value differs from `reference`."""
    changed = {k: getattr(cfg, k) for k in train_fields(type(cfg))
               if getattr(cfg, k) != getattr(reference, k)}
    changed.update({k: v for k, v in cfg.model.items() if reference.model.get(k) != v})
    return changed


def from_record(recipe, saved: dict, options=None):
    """(training, model) values of a config recorded in config.json, checked and coerced.

    Also reads runs written before model options had their own key: one flat table
    in which 0 (or "") stood for None and `eval_images` for `eval_samples`.
    """
    options = recipe_options(recipe) if options is None else options
    saved = dict(saved)
    if "model" not in saved:  # a run of an earlier kzoo
        saved["model"] = {k: saved.pop(k) for k in list(saved) if k in options}
        if "eval_images" in saved:
            saved["eval_samples"] = saved.pop("eval_images")
        fields = set(train_fields(recipe.config_cls))
        for key in [k for k in saved if k not in fields and k != "model"]:
            del saved[key]  # options the data now decides (channels) or that no longer exist
        for table, optional in ((saved, lambda k: _field_type(recipe.config_cls, k)[1]),
                                (saved["model"], lambda k: options[k].optional)):
            for k, v in table.items():
                if k != "model" and v in (0, "") and not isinstance(v, bool) and optional(k):
                    table[k] = None
    return _split(recipe, saved, "config.json", options)


def resolve_config(recipe, argv=None, *, has_gpu=None):
    """Parse `argv` into (config, out, resume, notes)."""
    options = recipe_options(recipe)
    args = _parse_or_raise(parser(recipe, options), argv)
    out = args.pop("out", None)
    resume = args.pop("resume", False)
    model_flags = {k: args.pop(k) for k in list(args) if k in options}
    notes = []
    if resume:
        if not out:
            raise KzooError("--resume needs --out RUN_DIR")
        cfg_path = Path(out) / "config.json"
        if not cfg_path.is_file():
            raise KzooError(f"cannot resume: {cfg_path} does not exist")
        train, model = from_record(recipe, json.loads(cfg_path.read_text())["config"], options)
    else:
        preset = args.get("preset")
        if preset is None:
            if has_gpu is None:
                from kzoo.recipes.distribute import has_gpu as detect

                has_gpu = detect()
            preset = "paper" if has_gpu else "quick"
            if not has_gpu:
                notes.append("no GPU found: using the quick preset (pass --preset paper for the "
                             "paper schedule)")
        train, model = load_preset(recipe, preset)
        train["preset"] = preset
    train.update(args)
    model.update(model_flags)
    cfg = make_config(recipe, train, model, options)
    validate(cfg)
    return cfg, out, resume, notes


def validate(cfg):
    """Bad training options -> KzooError, before anything runs."""
    if cfg.epochs < 1:
        raise KzooError(f"--epochs must be >= 1, got {cfg.epochs}")
    if cfg.steps_per_epoch is not None and cfg.steps_per_epoch < 1:
        raise KzooError(f"--steps-per-epoch must be >= 1 (or none: one pass), got {cfg.steps_per_epoch}")
    if cfg.batch_size < 1:
        raise KzooError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.eval_samples is not None and cfg.eval_samples < 0:
        raise KzooError(f"--eval-samples must be >= 0 (0 skips the evaluation), got {cfg.eval_samples}")
    if cfg.strategy not in STRATEGIES:
        raise KzooError(f"--strategy must be default, mirrored or multiworker, got {cfg.strategy!r}")


def model_args(cfg, name: str, **args) -> dict:
    """Constructor arguments of registered model `name` for `cfg`: its model options,
    the training options it shares (image_size, seed), then `args` (data-decided)."""
    from kzoo.zoo import model_class

    accepted = model_options(model_class(name))
    shared = {k: getattr(cfg, k) for k in train_fields(type(cfg)) if k in accepted}
    merged = {**cfg.model, **shared, **args}
    return {k: v for k, v in merged.items() if k in accepted or k in args}


def create(cfg, name: str, **args):
    """Build registered model `name` from `cfg` (`model_args`); bad values -> KzooError."""
    from kzoo.zoo import create_model

    try:
        return create_model(name, **model_args(cfg, name, **args))
    except ValueError as e:
        raise KzooError(str(e)) from None
