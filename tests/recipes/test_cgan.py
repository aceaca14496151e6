import pytest

from kzoo.errors import KzooError
from kzoo.recipes.cgan import RECIPE
from kzoo.recipes.runner import resolve_config


def test_needs_labelled_data():
    cfg, _, _, _ = resolve_config(RECIPE, ["--data", "builtin:faces", "--image-size", "16"])
    with pytest.raises(KzooError, match="needs labelled data"):
        RECIPE.load_data(cfg)
