"""Pretrained presets: load from the catalog, a path, a URL or hf://; publish runs.

    import kzoo.hub
    generator = kzoo.hub.load("cgan-digits")             # inference part
    model = kzoo.hub.load("cgan-digits", part="full")    # trainable, for fine-tuning

See `kzoo/hub/preset.py` for the format, `loader.py` for references and the
cache, `catalog.py` for the shipped catalog and `publish.py` for publishing.
"""

from kzoo.hub.catalog import entries as catalog_entries  # noqa: F401
from kzoo.hub.loader import fetch, init_weights, load, metadata  # noqa: F401
from kzoo.hub.preset import build_preset, verify  # noqa: F401
from kzoo.hub.publish import publish  # noqa: F401
