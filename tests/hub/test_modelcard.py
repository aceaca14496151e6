"""The README.md of a preset, written from its metadata and the model's card."""

from kzoo.card import ModelCard, image_to_image
from kzoo.hub.modelcard import endpoint_lines
from kzoo.hub.preset import verify


def test_readme_is_written_from_the_card_config_and_metrics(tiny_preset_dir):
    card = (tiny_preset_dir / "README.md").read_text()
    meta = verify(tiny_preset_dir)
    fd = meta["metrics"]["frechet_distance"]
    assert f"{fd:.4g}" in card
    assert meta["command"] in card
    assert 'kzoo.hub.load("tiny-cgan")' in card
    refs = card.split("## References", 1)[1].split("##", 1)[0].strip().splitlines()
    assert refs[0].startswith("- Mirza & Osindero") and refs[0].endswith(".")  # one bullet each
    assert tuple(r[2:] for r in refs) == ModelCard.from_dict(meta["card"]).references
    for section in ("## Usage", "## Endpoints", "## Training", "## Metrics", "## Limits",
                    "## License"):
        assert section in card
    assert "It draws new images of a requested class" in card  # the card's summary
    assert "### `generator`: fixed shapes" in card
    assert "| input | `label` | label | (batch) | int32 | 0..9 |" in card
    assert "| output | `image` | image (gray) | (batch, 8, 8, 1) | float32 | [-1, 1] |" in card


def test_card_text_of_a_dynamic_endpoint():
    ep = image_to_image("generator", 3, 3, size_multiple=4, base_size=24, input_name="lr",
                        output_name="sr", clip=True)
    text = "\n".join(endpoint_lines(ep.spec()))
    assert "### `generator`: any height and width that are multiples of 4 (e.g. 24x24)" in text
    assert "| output | `sr` | image (rgb) | (batch, height, width, 3) | float32 | [-1, 1], not " \
           "bounded by the network: clip to it |" in text
