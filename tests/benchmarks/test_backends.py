"""benchmarks/backends.py: a row per family and backend, and the JAX/TF table."""

from benchmarks import backends


def test_measure_gives_a_row_on_this_backend():
    row = backends.measure("vae", steps=1, warmup=1)
    assert row["backend"] == "tensorflow" and row["images_per_s"] > 0 and row["batch"] == 64


def test_render_pairs_backends_and_reports_failures():
    rows = [{"family": "dcgan", "model": "dcgan_digits", "backend": "tensorflow", "batch": 64,
             "images_per_s": 100.0},
            {"family": "dcgan", "model": "dcgan_digits", "backend": "jax", "batch": 64,
             "images_per_s": 50.0},
            {"family": "vae", "backend": "jax", "error": "ValueError: boom"}]
    text = backends.render({"command": "c", "date": "d", "machine": "m", "rows": rows,
                            "notes": ["Not run on a GPU."]})
    assert "| dcgan | dcgan_digits | 64 | 100.0 | 50.0 | 0.50 |" in text
    assert "| vae |  |  | not run | ValueError: boom |  |" in text and "Not run on a GPU." in text


def test_results_md_gets_the_same_rows_and_the_load(tmp_path):
    import json

    from benchmarks import report

    result = {"command": "python -m benchmarks.backends --steps 3", "date": "d", "machine": "m", "cores": 2,
              "load_average": {"tensorflow": [4.0, 6.5], "jax": [7.0, 8.0]},
              "rows": [{"family": "vae", "model": "vae", "backend": "tensorflow", "batch": 64,
                        "images_per_s": 80.0},
                       {"family": "vae", "model": "vae", "backend": "jax", "batch": 64,
                        "images_per_s": 100.0}], "notes": []}
    path = tmp_path / "backends.json"
    assert report.backends_section(path) == []  # not measured: no section
    path.write_text(json.dumps(result))
    section = "\n".join(report.backends_section(path))
    row = "| vae | vae | 64 | 80.0 | 100.0 | 1.25 |"
    assert section.startswith("## Backends") and row in section and row in backends.render(result)
    assert "jax worker: 7.0 at its start, 8.0 at its end" in section and "under that load" in section


def test_every_family_is_measured_at_its_quick_preset():
    """The families are the registered recipes; sizes and batch are the quick presets'
    (they drifted when written here by hand: pix2pix at width 32 RGB)."""
    from kzoo.recipes.config import load_preset
    from kzoo.recipes.registry import get_recipe, list_recipes

    assert backends.registered_families() == list_recipes()
    for family in list_recipes():
        recipe = get_recipe(family)
        train, model_opts = load_preset(recipe, "quick")
        name, args, batch = backends.quick_model(family)
        assert name == recipe.model and batch == train.get("batch_size", recipe.config_cls.batch_size)
        assert model_opts.items() <= args.items(), family
        if "image_size" in train and "image_size" in recipe.options:
            assert args["image_size"] == train["image_size"], family
    name, args, batch = backends.quick_model("pix2pix")
    assert (args["width"], args["color"], args["input_channels"], args["output_channels"], batch) == (8, "lab", 1, 3, 4)
