"""Model options declared as data (kzoo.options): declarations, inheritance, the constructors
that take their defaults from them, and a command line that never imports Keras for them."""

import inspect
import subprocess
import sys

import pytest

from kzoo.options import ModelOption, Options, takes

WIDTH = ModelOption("width", int, 64, "Channels.")
NORM = ModelOption("norm", str, "batch", "Norm.")


def test_a_declaration_extends_another_in_code():
    base = Options(WIDTH, NORM, ModelOption("seed", int, None, "Seed.", optional=True))
    child = Options(ModelOption("gp_weight", float, 10.0, "lambda."), ModelOption("width", int, 32, "W."),
                    base=base, drop=("norm",))
    assert list(child) == ["gp_weight", "width", "seed"]  # own first, then the base's
    assert child["width"].default == 32 and child["seed"] is base["seed"]
    assert child.defaults() == {"gp_weight": 10.0, "width": 32, "seed": None}
    assert child.base is base and child.drop == ("norm",)
    with pytest.raises(TypeError, match="cannot drop"):
        Options(base=base, drop=("nope",))
    with pytest.raises(TypeError, match="declared twice"):
        Options(WIDTH, WIDTH)
    with pytest.raises(TypeError, match="None default needs optional"):
        ModelOption("levels", int, None, "Levels.")
    with pytest.raises(TypeError, match="type must be"):
        ModelOption("net", dict, {}, "A dict.")


def test_implied_values_are_declared_with_the_options():
    exact = ModelOption("exact", str, None, "Layout.", optional=True)
    base = Options(WIDTH, NORM, exact, implied={"exact": {"junyanz": {"norm": "instance"}}})
    child = Options(ModelOption("depth", int, 4, "Depth."), base=base, implied={"depth": {1: {"width": 8}}})
    assert child.implied == {"exact": {"junyanz": {"norm": "instance"}}, "depth": {1: {"width": 8}}}
    with pytest.raises(TypeError, match=r"implied rules name \['upsample'\]"):
        Options(WIDTH, exact, implied={"exact": {"junyanz": {"upsample": "transpose"}}})


def test_the_constructor_takes_its_defaults_from_the_declaration():
    class Base:
        @takes(Options(WIDTH, NORM))
        def __init__(self, *, width, norm, network=None):
            self.width, self.norm, self.network = width, norm, network

    class Child(Base):
        @takes(Options(ModelOption("depth", int, 4, "Depth."), base=Base.__init__.options, drop=("norm",)))
        def __init__(self, *, depth, **kwargs):
            super().__init__(norm="layer", **kwargs)
            self.depth = depth

    model = Child(width=8)
    assert (model.width, model.norm, model.depth) == (8, "layer", 4)
    assert str(inspect.signature(Base.__init__)) == "(self, *, width=64, norm='batch', network=None)"
    assert list(Child.__init__.options) == ["depth", "width"]
    with pytest.raises(TypeError, match="leave them out of the signature"):
        @takes(Options(WIDTH))
        def __init__(self, *, width=64):
            pass


def _drops(options):
    names = set()
    while options is not None:
        names |= set(options.drop)
        options = options.base
    return names


def _registered():
    from kzoo.zoo import list_models

    return list_models()


@pytest.mark.parametrize("name", _registered())
def test_every_registered_constructor_matches_its_declaration(name):
    """Each declared option is a keyword argument of the constructor chain with the
    declared default, and every defaulted argument of a declaring constructor is declared
    (or dropped by a subclass that sets it itself)."""
    from kzoo.recipes.config import model_options
    from kzoo.zoo import model_class

    cls = model_class(name)
    options = model_options(cls)
    accepted = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            accepted.update({p.name: p.default for p in inspect.signature(klass.__init__).parameters.values()
                             if p.kind is p.KEYWORD_ONLY})
    assert {k: accepted.get(k, "not accepted") for k in options} == options.defaults()
    known = set(options) | _drops(options)
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if hasattr(init, "options"):
            undeclared = [p.name for p in inspect.signature(init).parameters.values()
                          if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and p.name not in known]
            assert not undeclared, f"{klass.__name__}.__init__ arguments not in its declaration: {undeclared}"


def test_help_and_flags_of_every_recipe_without_keras():
    """`kzoo train NAME --help` and the flag resolution of every recipe read the
    declarations only: neither TensorFlow, Keras nor JAX is imported."""
    code = ("import contextlib, io, sys\n"
            "from kzoo.cli import main\n"
            "from kzoo.recipes.config import resolve_config\n"
            "from kzoo.recipes.registry import get_recipe, list_recipes\n"
            "for name in list_recipes():\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out):\n"
            "        try:\n"
            "            main(['train', name, '--help'])\n"
            "        except SystemExit as e:\n"
            "            assert e.code == 0, (name, e.code)\n"
            "    assert 'model options' in out.getvalue() and '--seed' in out.getvalue(), name\n"
            "    resolve_config(get_recipe(name), ['--preset', 'quick'], has_gpu=False)\n"
            "bad = sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules)\n"
            "assert not bad, bad\n"
            "print(len(list_recipes()))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) >= 10
