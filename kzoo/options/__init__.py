"""Model options declared as data: what each model constructor takes, without Keras.

A model family declares its constructor's keyword arguments once, in a small module of
this package that imports neither Keras nor TensorFlow (`kzoo.options.dcgan`):

    DCGAN_OPTIONS = Options(
        ModelOption("latent_dim", int, 100, "Size of z ~ N(0, I)."),
        ...)

The constructor takes its defaults from the declaration (`takes`), so each default is
written once; a family built on another extends the other's declaration in code
(`Options(..., base=DCGAN_OPTIONS, drop=("discriminator_norm",))`). A recipe names the
declaration of the model it trains (`Recipe.options`), and `kzoo.recipes.config` turns
it into flags and TOML keys before anything imports Keras (`kzoo train dcgan --help`).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import typing


@dataclasses.dataclass(frozen=True)
class ModelOption:
    """One keyword argument of a model constructor, as a recipe option.

    Attributes:
        name: the argument's name (flag `--name-with-dashes`, TOML key `name`).
        type: int, float, str, bool or tuple (of numbers); None: not a flag (a Keras
            object, say), which a recipe must then compute (`Recipe.recipe_args`).
        default: the constructor's default.
        help: the flag's help text.
        optional: None is a valid value (written `none`).
    """

    name: str
    type: type | None
    default: typing.Any
    help: str
    optional: bool = False

    def __post_init__(self):
        if self.type not in (int, float, str, bool, tuple, None):
            raise TypeError(f"option {self.name!r}: type must be int, float, str, bool, tuple or None, "
                            f"got {self.type!r}")
        if self.default is None and not self.optional:
            raise TypeError(f"option {self.name!r}: a None default needs optional=True")


class Options(collections.abc.Mapping):
    """The ordered options of one model constructor: `{name: ModelOption}`.

    `Options(*own, base=OTHER, drop=names)` is a constructor that extends another's:
    its own options first, then `base`'s less the ones it redeclares and the `drop`
    names (arguments the constructor passes to its parent itself, e.g. WGAN-GP's
    `discriminator_norm`). `implied` holds rules `{option: {value: {other option:
    value}}}`: values that one option's value sets for others unless given (the
    base's rules, then these).

    Example:
    >>> base = Options(ModelOption("width", int, 64, "Channels."), ModelOption("norm", str, "batch", "Norm."))
    >>> list(Options(ModelOption("gp_weight", float, 10.0, "lambda."), base=base, drop=("norm",)))
    ['gp_weight', 'width']
    """

    def __init__(self, *options: ModelOption, base: Options | None = None, drop: tuple = (),
                 implied: dict | None = None):
        own = {}
        for o in options:
            if o.name in own:
                raise TypeError(f"option {o.name!r} is declared twice")
            own[o.name] = o
        inherited = dict(base or {})
        unknown = [n for n in drop if n not in inherited]
        if unknown:
            raise TypeError(f"cannot drop {unknown}: not options of the base declaration")
        self._options = {**own, **{k: o for k, o in inherited.items() if k not in own and k not in drop}}
        self.base = base
        self.drop = tuple(drop)
        self.implied = {**(base.implied if base is not None else {}), **(implied or {})}
        unknown = sorted({k for k in self.implied if k not in self._options}
                         | {o for rules in self.implied.values() for sets in rules.values() for o in sets
                            if o not in self._options})
        if unknown:
            raise TypeError(f"implied rules name {unknown}, not options of this declaration")

    def __getitem__(self, name) -> ModelOption:
        return self._options[name]

    def __iter__(self):
        return iter(self._options)

    def __len__(self):
        return len(self._options)

    def __repr__(self):
        return f"Options({', '.join(self._options)})"

    def defaults(self) -> dict:
        """`{name: default}`."""
        return {k: o.default for k, o in self._options.items()}


def takes(options: Options):
    """Decorator of a model's `__init__`: its keyword-only arguments named in `options`
    take their defaults from there (the signature names them without a default).

    Arguments `options` declares but `__init__` does not name pass through its
    `**kwargs` to the parent constructor, which declares their defaults itself. The
    decorated `__init__` carries the declaration (`__init__.options`, read by
    `kzoo.recipes.config.model_options`) and a signature with the defaults filled in.

    Example:
    >>> class Model:
    ...     @takes(Options(ModelOption("width", int, 64, "Channels.")))
    ...     def __init__(self, *, width):
    ...         self.width = width
    >>> Model().width, str(inspect.signature(Model.__init__))
    (64, '(self, *, width=64)')
    """

    def decorate(init):
        signature = inspect.signature(init)
        own = [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name in options]
        written = [p.name for p in own if p.default is not p.empty]
        if written:
            raise TypeError(f"{init.__qualname__}: the defaults of {written} are declared in the "
                            "options; leave them out of the signature")
        defaults = {p.name: options[p.name].default for p in own}

        @functools.wraps(init)
        def wrapper(self, *args, **kwargs):
            return init(self, *args, **{**defaults, **kwargs})

        wrapper.__signature__ = signature.replace(parameters=[
            p.replace(default=defaults[p.name]) if p.name in defaults else p
            for p in signature.parameters.values()])
        wrapper.options = options
        return wrapper

    return decorate
