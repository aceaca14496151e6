"""The shared segmentation recipe (unet and deeplab): scores, folders, bad input."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from kzoo.recipes import deeplab, unet
from kzoo.recipes.runner import main, run

TINY = {
    unet: ["--depth", "1", "--width", "4", "--norm", "batch", "--dropout", "0", "--image-size", "16"],
    deeplab: ["--blocks", "1,1,1,1", "--width", "4", "--aspp-filters", "8",
              "--low-level-filters", "4", "--decoder-filters", "8", "--multi-grid", "1",
              "--image-size", "16"],
}
COMMON = ["--preset", "quick", "--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "2",
          "--no-jit-compile"]


@pytest.mark.parametrize("module", [unet, deeplab], ids=["unet", "deeplab"])
def test_run_scores_heldout_iou_and_saves_a_segmenter(smoke_run, module):
    out = smoke_run(module.RECIPE.name)
    grid = np.asarray(Image.open(out / "samples" / "epoch_001.png"))
    assert grid.shape == (8 * 18 + 2, 3 * 18 + 2, 3)  # image | prediction | truth, 8 rows
    final = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final"] and 0.0 <= final["heldout_mean_iou"] <= 1.0
    assert len(final["heldout_per_class_iou"]) == 5
    # the trivial baseline beside it: background everywhere scores its pixel share / 5
    assert 0.1 < final["heldout_majority_class_mean_iou"] <= 0.2
    segmenter = keras.saving.load_model(out / "model" / "inference.keras")
    pred = segmenter(np.zeros((1, 16, 16, 3), "float32"))
    assert pred["labels"].shape == (1, 16, 16) and pred["probabilities"].shape == (1, 16, 16, 5)
    meta = json.loads((out / "model" / "metadata.json").read_text())
    assert meta["num_classes"] == 5 and meta["metrics"]["heldout_mean_iou"] == final["heldout_mean_iou"]


def test_folder_data_without_heldout_split(tmp_path):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "d" / "images" / f"{i}.png")
        Image.fromarray((np.arange(400).reshape(20, 20) % 2).astype(np.uint8)).save(tmp_path / "d" / "masks" / f"{i}.png")
    out = run(unet.RECIPE, [*COMMON, *TINY[unet], "--data", str(tmp_path / "d"),
                            "--class-weights", "1,2", "--out", str(tmp_path / "run")])
    final = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert "train_mean_iou" in final and len(final["train_per_class_iou"]) == 2


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "d" / "images" / "a.png")
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(tmp_path / "d" / "masks" / "a.png")
    cases = [
        (["--data", str(tmp_path / "d")], "masks/a.png is 20x10 but its image"),
        (["--class-weights", "1,2"], "--class-weights needs 5 non-negative numbers"),
        (["--num-classes", "3"], "--num-classes 3 does not match builtin:shapes"),
        (["--optimizer", "rmsprop"], "--optimizer must be sgd or adam"),
        (["--image-size", "24"], "multiple of 16"),
        (["--scale-range", "2,1"], "scale range must satisfy 0 < min <= max"),
        (["--scale-range", "1,2,3"], "--scale-range needs two numbers"),
    ]
    for flags, message in cases:
        assert main(deeplab.RECIPE, [*COMMON, *TINY[deeplab], *flags, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()
