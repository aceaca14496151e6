"""The DDPM recipe: paper defaults, a tiny end-to-end run, and bad sampler options."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from kzoo.recipes import ddpm
from kzoo.recipes.config import resolve_config
from kzoo.recipes.runner import main


def test_paper_defaults():
    """Ho et al. 2020, App. B (CIFAR-10)."""
    cfg, _, _, _ = resolve_config(ddpm.RECIPE, ["--preset", "paper"])
    m = cfg.model
    assert (cfg.data, cfg.image_size, cfg.batch_size) == ("tfds:cifar10", 32, 128)
    assert (m["width"], m["channel_mults"], m["num_res_blocks"]) == (128, (1, 2, 2, 2), 2)
    assert (m["attention_resolutions"], m["dropout"], m["norm_groups"]) == ((16,), 0.1, 32)
    assert (m["num_timesteps"], m["beta_start"], m["beta_end"], m["ema_decay"]) == (1000, 1e-4, 0.02, 0.9999)
    assert (cfg.learning_rate, cfg.warmup_steps, cfg.grad_clip) == (2e-4, 5000, 1.0)
    assert cfg.epochs * cfg.steps_per_epoch == 800_000 and cfg.random_flip
    assert (cfg.eval_ddpm_steps, cfg.eval_ddim_steps) == (None, 50)  # None: all T steps
    quick, _, _, _ = resolve_config(ddpm.RECIPE, ["--preset", "quick"])
    assert (quick.data, quick.image_size, quick.random_flip) == ("builtin:digits", 16, False)


def test_tiny_run_writes_samples_trajectory_scores_and_model(smoke_run):
    out = smoke_run("ddpm")
    picture = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    cell = 8 + 2  # image + border
    assert picture.shape == ((8 + ddpm.TRAJECTORY_ROWS) * cell + 2 * 2, 8 * cell + 2)
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["final"] and final["eval_samples"] == 4
    assert (final["ddpm_steps"], final["ddim_steps"]) == (10, 2)  # ancestral: all T = 10 steps
    for sampler in ("ddpm", "ddim"):
        assert final[f"{sampler}_frechet_distance"] > 0 and final[f"{sampler}_sample_seconds"] > 0
        assert 1.0 <= final[f"{sampler}_inception_score"] <= 10.0
    eps = keras.saving.load_model(out / "model" / "inference.keras")
    assert sorted(i.name for i in eps.inputs) == ["t", "x_t"] and eps.output_shape == (None, 8, 8, 1)
    full = keras.saving.load_model(out / "model" / "model.keras")
    x = {"x_t": np.zeros((2, 8, 8, 1), "float32"), "t": np.array([0, 9], "int32")}
    np.testing.assert_allclose(eps(x), full.ema_network(x), atol=1e-6)


@pytest.mark.parametrize("flag,value,message", [
    ("--eval-ddpm-steps", "1001", "--eval-ddpm-steps: sampling steps must be an integer from 1 to T = 1000"),
    ("--eval-ddim-steps", "0", "--eval-ddim-steps: sampling steps must be an integer from 1 to T = 1000"),
    ("--sample-steps", "-1", "--sample-steps: sampling steps must be"),
    ("--sample-sampler", "euler", "unknown sampler 'euler'"),
    ("--variance", "learned", "--variance must be beta or beta_tilde"),
    ("--beta-schedule", "cosine", "unknown beta schedule 'cosine'; supported: linear, scaled_linear"),
])
def test_bad_sampler_options_exit_2_before_training(tmp_path, capsys, flag, value, message):
    out = tmp_path / "run"
    assert main(ddpm.RECIPE, ["--preset", "quick", flag, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_cli_more_steps_than_T_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "kzoo.recipes.ddpm", "--num-timesteps", "100",
                           "--eval-ddim-steps", "200", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "from 1 to T = 100" in lines[0] and "got 200" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
