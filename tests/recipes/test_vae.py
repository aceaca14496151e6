import json

import keras
import numpy as np
from PIL import Image

from kzoo.recipes.config import paper_config
from kzoo.recipes.runner import main, run
from kzoo.recipes.vae import RECIPE

TINY = ["--preset", "quick", *RECIPE.tiny, "--epochs", "1", "--steps-per-epoch", "1", "--no-jit-compile"]


def test_paper_defaults():
    """Kingma & Welling: Adagrad 0.02, minibatch 100; latent 20 and the Bernoulli decoder are the model's."""
    cfg = paper_config(RECIPE)
    assert (cfg.model["latent_dim"], cfg.model["likelihood"], cfg.model["beta"]) == (20, "bernoulli", 1.0)
    assert (cfg.optimizer, cfg.learning_rate, cfg.batch_size) == ("adagrad", 0.02, 100)


def test_digits_run_records_heldout_and_classifier_scores(smoke_run):
    out = smoke_run("vae")
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.shape == (5 * 18 + 2, 8 * 18 + 2)  # originals, reconstructions, 2 x samples, interpolation
    final = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][-1]
    for key in ("heldout_reconstruction", "heldout_kl", "heldout_reconstruction_mse",
                "heldout_reconstruction_classifier_accuracy", "sample_frechet_distance"):
        assert np.isfinite(final[key]), key
    assert final["heldout_original_classifier_accuracy"] > 0.9
    decoder = keras.saving.load_model(out / "model" / "inference.keras")
    assert decoder.output_shape == (None, 16, 16, 1)


def test_faces_gaussian_run(tmp_path):
    out = run(RECIPE, [*TINY, "--data", "builtin:faces", "--likelihood", "gaussian",
                       "--batch-size", "8", "--out", str(tmp_path / "run")])
    final = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert "heldout_reconstruction_mse" in final and "sample_frechet_distance" not in final


def test_bad_option_exits_2(tmp_path, capsys):
    assert main(RECIPE, [*TINY, "--likelihood", "poisson", "--out", str(tmp_path / "x")]) == 2
    assert "likelihood must be one of bernoulli, gaussian" in capsys.readouterr().err
