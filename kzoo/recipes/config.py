"""Recipe configuration: training options, model options, presets, flags, resolution.

A run is configured by two kinds of options:

- **training options**: a typed dataclass per recipe (`TrainConfig` and its
  subclasses: data, epochs, batch size, optimizer, learning rate, ...) whose
  defaults are the paper's;
- **model options**: the keyword arguments of the registered model the recipe
  trains, as its constructor declares them (`kzoo.options`, named by
  `Recipe.options`; no Keras import): each default and help text is written once,
  in the declaration, which the constructor takes its defaults from. Arguments
  that the data decides (`channels`, `num_classes`, ...) or that the recipe
  computes are not options. A name that is both a training option and a model
  argument (`image_size`, `seed`) has one value, passed to both.

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
import dataclasses
import inspect
import json
import math
import os
import re
import tomllib
import types
import typing
from pathlib import Path

from kzoo.errors import ArgumentParser, KzooError
from kzoo.options import ModelOption, Options

PRESET_DIR = Path(__file__).parent / "presets"
STRATEGIES = ("default", "data-parallel", "mirrored", "multiworker")
NONE = "none"  # how an optional value is written as a flag or in TOML


# What an option is, for a run that resumes (`--resume`): the `on_resume` metadata of a
# `TrainConfig` field (a subclass that only changes a default keeps its base's class).
ARCHITECTURE = "architecture"  # changes the network or its variables: cannot change
SCHEDULE = "schedule"  # how long the run trains and what it evaluates: may change
FIXED = "fixed"  # the data and the optimisation (the default): cannot change
ON_RESUME = "on_resume"


def option(default, on_resume: str):
    """A `TrainConfig` field with default `default` and resume class `on_resume`.

    Example:
    >>> eval_ddim_steps: int = option(50, SCHEDULE)
    """
    return dataclasses.field(default=default, metadata={ON_RESUME: on_resume})


@dataclasses.dataclass
class TrainConfig:
    """Options every recipe has. Recipes subclass this with their paper defaults.

    Attributes:
        data: data spec (`builtin:NAME`, `tfds:NAME`, a folder; see `kzoo.data`).
        epochs: training epochs.
        steps_per_epoch: optimizer steps per epoch; None: one pass over the data.
        batch_size: global batch (tf.distribute splits it over replicas).
        image_size: training image size; None: the model's default.
        seed: seed of data order, initial weights and the model's noise (>= 0).
        strategy: "default", "data-parallel" (the local devices, any backend), or the
            tf.distribute "mirrored" or "multiworker" (TensorFlow backend).
        mixed_precision: mixed_float16 on a GPU, mixed_bfloat16 on a CPU.
        jit_compile: XLA-compile the train step.
        preset: the preset the run started from (a name or a TOML file).
        init_from: a hub preset (name, path, URL) or run whose weights start the training.
        eval_samples: images the final evaluation scores (generated samples or held-out
            images); 0 skips the evaluation; None: every held-out image.
        model: the model options (keyword arguments of the recipe's model).
    """

    data: str = "builtin:digits"
    epochs: int = option(25, SCHEDULE)
    steps_per_epoch: int | None = option(None, SCHEDULE)
    batch_size: int = 128
    image_size: int | None = option(None, ARCHITECTURE)
    seed: int = 0
    strategy: str = "default"
    mixed_precision: bool = option(False, ARCHITECTURE)  # loss-scale variables, dtypes
    jit_compile: bool = False
    preset: str = "paper"
    init_from: str = ""
    eval_samples: int | None = option(None, SCHEDULE)
    model: dict = dataclasses.field(default_factory=dict)


def resume_class(cfg_cls, name: str) -> str:
    """ARCHITECTURE, SCHEDULE or FIXED: whether training option `name` of `cfg_cls` may
    change when a run resumes (model options are all ARCHITECTURE)."""
    for klass in cfg_cls.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is not None and ON_RESUME in field.metadata:
            return field.metadata[ON_RESUME]
    return FIXED


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

def doc_section(doc, section="Attributes") -> dict[str, str]:
    """`{name: text}` of a section (`Attributes:`) of a Google-style docstring: `name: text`
    entries (or `a, b: text` for several names), continuation lines indented deeper."""
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


def option_help(cfg_cls) -> dict[str, str]:
    """Help of each training option: the `Attributes:` of `cfg_cls` and its bases."""
    helps = {}
    for klass in reversed(cfg_cls.__mro__):
        helps.update(doc_section(klass.__doc__, "Attributes"))
    return helps


def model_options(model) -> Options:
    """The options of a model: its constructor's declaration (`kzoo.options`).

    Args:
        model: a model class, or the name of a registered model (`kzoo.zoo`; this
            imports the model, hence Keras: a recipe's options are `Recipe.options`).

    Example:
    >>> model_options("dcgan")["width"].default
    64
    """
    if isinstance(model, str):
        from kzoo.zoo import model_class

        try:
            model = model_class(model)
        except ValueError as e:
            raise KzooError(str(e)) from None
    options = getattr(model.__init__, "options", None)
    if not isinstance(options, Options):
        raise TypeError(f"{model.__name__}.__init__ declares no options (decorate it with kzoo.options.takes)")
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
    drop = {*recipe.data_args, *recipe.recipe_args, *train_fields(recipe.config_cls)}
    options = {k: o for k, o in recipe.options.items() if k not in drop}
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
        o = options[key]
        model[key] = _coerce_value(key, o.type, o.optional, value, source)
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
    tables = tomllib.loads(Path(recipe.presets or PRESET_DIR / f"{recipe.name}.toml").read_text())
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
    flag = flag_name(name)
    if t is bool:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
    else:
        p.add_argument(flag, type=_flag_type(t, optional), help=help_text)


def parser(recipe, options=None):
    """The argparse parser of `recipe`: training options, then model options."""
    options = recipe_options(recipe) if options is None else options
    p = ArgumentParser(
        prog=f"python -m kzoo.recipes.{recipe.name}",
        description=(recipe.config_cls.__doc__ or "").strip().splitlines()[0],
        argument_default=argparse.SUPPRESS)
    p.add_argument("--out", help=f"run directory (default runs/{recipe.name}/<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (schedule options, "
                        "e.g. --epochs, may change; the others must match the run)")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and C++ log messages")
    defaults, helps = recipe.config_cls(), option_help(recipe.config_cls)
    shared = recipe.options
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


# --- resolution ----------------------------------------------------------------

def make_config(recipe, train: dict, model: dict, options=None):
    """The full config: training defaults and model defaults under `train` and `model`.

    A shared name (`image_size`) left None takes the model's default.
    """
    options = recipe_options(recipe) if options is None else options
    try:
        cfg = recipe.config_cls(**train, model={**{k: o.default for k, o in options.items()}, **model})
    except TypeError as e:
        raise KzooError(f"{recipe.name}: {e}") from None
    signature = recipe.options
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
    """Parse `argv` into (config, out, resume, notes).

    Every flag is parsed and checked (`check_values`, and on `--resume` against the
    run's config.json, `check_resume`) before anything imports TensorFlow; only the
    choice of the default preset (`has_gpu`, None: detect) needs it.
    """
    options = recipe_options(recipe)
    args = vars(parser(recipe, options).parse_args(argv))
    out = args.pop("out", None)
    resume = args.pop("resume", False)
    args.pop("verbose", None)
    model_flags = {k: args.pop(k) for k in list(args) if k in options}
    check_values({**args, **model_flags})
    if "data" in args:  # a preset may name a folder the user fetches later: checked when loaded
        check_data_flag(args["data"])
    check_out_dir(out, resume)
    notes = []
    if resume:
        train, model = from_record(recipe, read_run_config(out)["config"], options)
        check_resume(recipe, make_config(recipe, train, model, options), args, model_flags)
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
        if args.get("init_from") and recipe.init_weights is None:
            source_train, source_model = init_source(recipe, args["init_from"], options)
            changed = sorted(k for k, v in {**source_train, **source_model}.items()
                             if {**train, **model}.get(k, v) != v and k not in args
                             and k not in model_flags)
            if changed:
                notes.append(f"--init-from {args['init_from']}: its "
                             f"{', '.join(flag_text(k, {**source_train, **source_model}[k]) for k in changed)} "
                             f"replace the {preset} preset's (flags still win)")
            train.update(source_train)
            model.update(source_model)
    train.update(args)
    model.update(model_flags)
    if not resume:
        model = implied(recipe, model, explicit=set(model_flags))
    cfg = make_config(recipe, train, model, options)
    validate(cfg)
    return cfg, out, resume, notes


def init_source(recipe, ref, options=None) -> tuple[dict, dict]:
    """(training, model) values that `--init-from ref` brings: the options its full model
    was built with (read from the preset's model.keras, `kzoo.hub.loader.model_config`;
    fetching a catalog entry downloads and converts it), so that the network built
    for fine-tuning is the preset's. Empty when the preset holds another model class
    (the copy of the weights then names the mismatch). The resolution order is recipe
    defaults -> recipe preset -> these -> flags."""
    from kzoo.backend import import_tensorflow
    from kzoo.hub.loader import model_config

    options = recipe_options(recipe) if options is None else options
    import_tensorflow()  # quietly: converting a catalog entry builds Keras models
    name, config = model_config(ref)
    from kzoo.zoo import model_class

    if name != model_class(recipe.model).__name__:
        return {}, {}
    table = {k: config[k] for k in ("image_size",)
             if k in config and k in train_fields(recipe.config_cls)}
    table["model"] = {k: v for k, v in config.items() if k in options}
    return _split(recipe, table, f"--init-from {ref}", options)


def implied(recipe, model: dict, explicit=()) -> dict:
    """`model` options with the values other options imply: a family's options declaration
    holds `implied = {option: {value: {other option: value}}}` (e.g. `exact="junyanz"`
    implies the authors' transposed-conv upsampling); an option given as a flag
    (`explicit`) keeps its value, so a contradiction is still reported by the model."""
    rules = recipe.options.implied
    out = dict(model)
    for option, by_value in rules.items():
        for key, value in by_value.get(out.get(option), {}).items():
            if key not in explicit:
                out[key] = value
    return out


def check_data_flag(spec: str):
    """`--data` must be `builtin:NAME`, `tfds:NAME` or a folder that exists (KzooError)."""
    if not spec.startswith(("builtin:", "tfds:")) and not Path(os.path.expanduser(spec)).is_dir():
        raise KzooError(f"--data {spec!r} does not exist or is not a folder (a data spec is "
                        "builtin:NAME, tfds:NAME or a folder of images)")


def check_out_dir(out, resume: bool):
    """`--out` must be writable (`kzoo.io.check_writable_dir`), and a run directory that
    holds something is continued only with `--resume`."""
    if not out:
        return
    from kzoo.io import check_writable_dir
    from kzoo.recipes.distribute import is_chief

    path = Path(out)
    check_writable_dir(path)
    if not resume and is_chief() and path.is_dir() and any(path.iterdir()):
        raise KzooError(f"run directory {path} already exists; pass --resume to continue it "
                        "or choose another --out")


def read_run_config(out) -> dict:
    """The config.json of run directory `out` (`--resume --out RUN`); KzooError if unreadable."""
    if not out:
        raise KzooError("--resume needs --out RUN_DIR")
    path = Path(out) / "config.json"
    if not path.is_file():
        raise KzooError(f"cannot resume: {path} does not exist")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KzooError(f"cannot resume: {path} is unreadable ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise KzooError(f"cannot resume: {path} holds no \"config\" table")
    return record


def flag_name(name: str) -> str:
    """The flag of option `name`: `--name-with-dashes`."""
    return "--" + name.replace("_", "-")


def flag_text(name: str, value) -> str:
    """`--name value` as typed on the command line (`none`, `true`, `2,4,6`)."""
    return f"{flag_name(name)} {value_text(value)}"


def value_text(value) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def check_resume(recipe, recorded, train_flags: dict, model_flags: dict):
    """Refuse flags of a resumed run that change what it is: any flag whose value
    differs from the run's `recorded` config, unless its resume class is SCHEDULE
    (`resume_class`; model options are ARCHITECTURE). KzooError names the flag and
    both values."""
    schedule = sorted(flag_name(k) for k in train_fields(recipe.config_cls)
                      if resume_class(recipe.config_cls, k) == SCHEDULE)
    given = [(k, v, getattr(recorded, k), resume_class(recipe.config_cls, k)) for k, v in train_flags.items()]
    given += [(k, v, recorded.model.get(k), ARCHITECTURE) for k, v in model_flags.items()]
    for name, value, was, kind in given:
        if value == was or kind == SCHEDULE:
            continue
        what = "architecture flags" if kind == ARCHITECTURE else "the data and training flags"
        raise KzooError(f"{flag_text(name, value)} differs from the run's {value_text(was)}: {what} "
                        f"cannot change on resume (only {', '.join(schedule)} can)")


def _finite(value) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return all(math.isfinite(v) for v in values if isinstance(v, float))


# Range of options by name (training or model options of any recipe): (check, what it must be).
VALUE_RULES = {
    "epochs": (lambda v: v >= 1, ">= 1"),
    "steps_per_epoch": (lambda v: v is None or v >= 1, ">= 1 (or none: one pass over the data)"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "eval_samples": (lambda v: v is None or v >= 0, ">= 0 (0 skips the evaluation)"),
    "seed": (lambda v: 0 <= v < 2**32, "between 0 and 2**32 - 1"),
    "strategy": (lambda v: v in STRATEGIES, " or ".join(STRATEGIES)),
    "image_size": (lambda v: v is None or v >= 1, ">= 1"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "beta_1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta_2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"),
    "grad_clip": (lambda v: v is None or v > 0, "> 0 (or none)"),
    "num_crops": (lambda v: v >= 1, ">= 1"),
    "truncation_psi": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "mixing_prob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "w_avg_beta": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "r1_interval": (lambda v: v >= 1, ">= 1"),
    "path_interval": (lambda v: v >= 1, ">= 1"),
    "path_batch_shrink": (lambda v: v >= 1, ">= 1"),
    "mixing_crossover": (lambda v: v >= 0, ">= 0 (0: no style-mixing grid)"),
}


def check_values(values: dict):
    """KzooError for the first option of `values` ({name: value}, training or model
    options) out of its range (`VALUE_RULES`) or a float that is nan or infinite."""
    for name, value in values.items():
        if name == "model" and isinstance(value, dict):
            check_values(value)
            continue
        if not _finite(value):
            raise KzooError(f"{flag_name(name)} must be a finite number, got {value_text(value)}")
        rule = VALUE_RULES.get(name)
        if rule is not None and not rule[0](value):
            got = repr(value) if isinstance(value, str) else value_text(value)
            raise KzooError(f"{flag_name(name)} must be {rule[1]}, got {got}")


def validate(cfg):
    """Bad options of a resolved config (flags, preset or record) -> KzooError, before
    anything runs."""
    check_values(dataclasses.asdict(cfg))
    check_bounds(cfg)


# The optimizer counts its steps in a Keras variable of dtype "int": int64 on TensorFlow,
# int32 on JAX (keras/src/optimizers/base_optimizer.py, BaseOptimizer.__init__, Keras 3.15);
# Keras takes the backend from KERAS_BACKEND first (keras/src/backend/config.py).
def max_steps() -> int:
    """The most optimizer steps a run can count (its step counter's largest value)."""
    return 2**31 - 1 if os.environ.get("KERAS_BACKEND") == "jax" else 2**63 - 1


def check_bounds(cfg):
    """Upper bounds of the size and schedule options, from the machine and the
    optimizer (KzooError): the steps the optimizer can count (`max_steps`), and what
    one training batch certainly holds -- `batch_size` images of `image_size`^2 float32
    pixels (one channel at least), `batch_size` latent vectors of `latent_dim` float32
    -- within the machine's memory (`kzoo.io.memory_bytes`). The model's own
    activations and weights are larger still; these bounds only refuse what cannot run."""
    from kzoo.io import check_memory

    steps = cfg.epochs * (cfg.steps_per_epoch or 1)
    if steps > max_steps():
        raise KzooError(f"--epochs {cfg.epochs}" + (f" x --steps-per-epoch {cfg.steps_per_epoch}"
                                                    if cfg.steps_per_epoch else "")
                        + f" is {steps:,} optimizer steps, more than the {max_steps():,} its step "
                        "counter can count")
    batch = cfg.batch_size
    if cfg.image_size:
        size = cfg.image_size
        check_memory(batch * size * size * 4, f"--image-size {size} (one batch of {batch} {size}x{size} "
                     "float32 images)", "lower --image-size or --batch-size")
    latent = cfg.model.get("latent_dim")
    if isinstance(latent, int) and latent > 0:
        check_memory(batch * latent * 4, f"--latent-dim {latent} (one batch of {batch} float32 latent "
                     "vectors)", "lower --latent-dim or --batch-size")


def model_args(cfg, name: str, **args) -> dict:
    """Constructor arguments of registered model `name` for `cfg`: its model options,
    the training options it shares (image_size, seed), then `args` (data-decided)."""
    accepted = model_options(name)
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
