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
