import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from kzoo.errors import KzooError
from kzoo.recipes import dcgan
from kzoo.recipes.config import recipe_options, resolve_config
from kzoo.recipes.registry import get_recipe, list_recipes

TINY = ["--image-size", "16", "--width", "8", "--latent-dim", "8", "--batch-size", "8",
        "--eval-samples", "64", "--no-jit-compile"]


@pytest.mark.parametrize("name", list_recipes())
def test_every_registered_recipe_trains_and_writes_its_run_dir(smoke_run, name):
    """One step at the recipe's tiny sizes (`Recipe.tiny`): a complete run directory."""
    recipe = get_recipe(name)
    out = smoke_run(name)
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == name and config["model_name"] == recipe.model
    assert set(config["config"]["model"]) == set(recipe_options(recipe))
    assert config["config"]["steps_per_epoch"] == 1 and config["changed_from_paper"]["steps_per_epoch"] == 1
    assert [p.name for p in (out / "samples").iterdir()] == ["epoch_001.png"]
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["final"] and [l["epoch"] for l in lines if "time" in l] == [1]
    meta = json.loads((out / "model" / "metadata.json").read_text())
    assert meta["recipe"] == name and meta["config"]["model"] == config["config"]["model"]
    inference = keras.saving.load_model(out / "model" / "inference.keras")
    full = keras.saving.load_model(out / "model" / "model.keras")
    assert meta["model_class"] == type(full).__name__ and inference.inputs


def test_eval_samples_0_skips_the_evaluation(tmp_path):
    from kzoo.recipes.runner import run

    recipe = get_recipe("vae")
    out = run(recipe, ["--preset", "quick", *recipe.tiny, "--epochs", "1", "--steps-per-epoch", "1",
                       "--no-jit-compile", "--eval-samples", "0", "--out", str(tmp_path / "run")])
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(final) == {"final", "train_seconds"}


@pytest.mark.parametrize("argv,message", [
    (["--preset", "nope"], "unknown preset 'nope' for dcgan"),
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
    (["--data", "/no/such/folder"], "does not exist"),
    (["--data", "tfds:no_such_dataset_xyz"], "unknown tfds dataset"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, argv, message):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "kzoo.recipes.dcgan", "--out", str(out), *argv],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_refuses_to_overwrite_existing_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "kzoo.recipes.dcgan", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "already exists; pass --resume" in proc.stderr
    assert (out / "config.json").read_text() == "{}"


def _epochs(path):
    return [json.loads(l)["epoch"] for l in path.read_text().splitlines()
            if "epoch" in json.loads(l) and "time" in json.loads(l)]


def test_resume_after_kill_9_loses_at_most_the_last_epoch(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kzoo.recipes.dcgan", "--out", str(out), "--preset", "quick",
           *TINY, "--epochs", "8", "--steps-per-epoch", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = out / "checkpoints" / "training_metadata.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(meta.read_text())["epoch"]
    assert 2 <= done < 8, "the run was not interrupted mid-way"
    assert not (out / "model" / "model.keras").exists()
    resumed = subprocess.run([sys.executable, "-m", "kzoo.recipes.dcgan", "--resume", "--out", str(out),
                              "--epochs", "9", "--width", "8"],  # a schedule change; the run's width
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stdout
    assert _epochs(out / "metrics.jsonl") == list(range(1, 10))
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines if "untrained" in l and "final" not in l] == [0]  # baseline once
    assert (out / "model" / "model.keras").exists()
    assert len(list((out / "samples").glob("epoch_*.png"))) == 9
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["epochs"] == 9 and config["argv"][-2:] == ["--steps-per-epoch", "4"]
    assert [r["changed"] for r in config["resumes"]] == [{"epochs": [8, 9]}]


def test_resume_needs_an_existing_run(tmp_path):
    with pytest.raises(KzooError, match="cannot resume"):
        resolve_config(dcgan.RECIPE, ["--resume", "--out", str(tmp_path / "none")])


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multiworker_two_local_workers(tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG: two processes on 127.0.0.1; the chief writes."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "run"
    procs = []
    for index in range(2):
        env = {k: v for k, v in os.environ.items() if k != "KZOO_LOGICAL_CPUS"}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kzoo.recipes.dcgan", "--out", str(out), "--strategy", "multiworker",
             *TINY, "--preset", "quick", "--epochs", "2", "--steps-per-epoch", "2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert json.loads((out / "config.json").read_text())["replicas"] == 2
    assert _epochs(out / "metrics.jsonl") == [1, 2]
    assert (out / "model" / "inference.keras").exists()
