"""kzoo.hub.convert.torchfile: PyTorch files read without torch and without running pickle code."""

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.hub.convert.torchfile import load_safetensors, load_state_dict, load_torch

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "reference"


def test_zip_and_legacy_formats_hold_the_same_tensors():
    modern = load_state_dict(FIXTURES / "resnet_batch.pth")  # torch >= 1.6 zip archive
    legacy = load_state_dict(FIXTURES / "junyanz_legacy.pth")  # torch 0.4-1.5 stream
    assert zipfile.is_zipfile(FIXTURES / "resnet_batch.pth")
    assert not zipfile.is_zipfile(FIXTURES / "junyanz_legacy.pth")
    assert list(modern) == list(legacy)
    assert modern["model.1.weight"].shape == (4, 3, 7, 7)
    assert modern["model.1.weight"].dtype == np.float32
    assert modern["model.2.num_batches_tracked"].dtype == np.int64
    assert int(modern["model.2.num_batches_tracked"]) == 100
    for key in modern:
        np.testing.assert_array_equal(modern[key], legacy[key])


def test_safetensors_through_the_numpy_api(tmp_path):
    from safetensors.numpy import save_file

    state = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.ones(2, np.float16)}
    save_file(state, str(tmp_path / "m.safetensors"))
    got = load_state_dict(tmp_path / "m.safetensors")
    assert set(got) == set(state)
    np.testing.assert_array_equal(got["a.weight"], state["a.weight"])
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(KzooError, match="not a readable safetensors"):
        load_safetensors(tmp_path / "bad.safetensors")


class _Call:
    """Pickles as `func(*args)`: what a malicious .pth does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class NotAllowed:  # a class outside the allow-list
    pass


def _torch_zip(path, obj):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/version", "3\n")


@pytest.mark.parametrize("make", [
    lambda marker: _Call(__import__("os").system, f"touch {marker}"),
    lambda marker: _Call(eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: {"x": NotAllowed()},
], ids=["os.system", "builtins.eval", "class"])
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_pickle_naming_anything_but_tensor_rebuilding_is_refused_unrun(tmp_path, make, layout):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"model.weight": make(marker)}
    if layout == "zip":
        _torch_zip(path, payload)
    else:
        from kzoo.hub.convert.torchfile import LEGACY_MAGIC, LEGACY_PROTOCOL

        buf = io.BytesIO()
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}, payload, []):
            pickle.dump(part, buf, protocol=2)
        path.write_bytes(buf.getvalue())
    with pytest.raises(KzooError, match=r"^refusing to load evil.pth: its pickle calls "
                                        r"(posix\.system|(__builtin__|builtins)\.eval|.*NotAllowed) "
                                        r"\(only tensor data is allowed\)$"):
        load_torch(path)
    assert not marker.exists()


def test_damaged_and_oversized_files_are_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(KzooError, match="neither a PyTorch zip archive nor"):
        load_torch(tmp_path / "junk.pth")
    monkeypatch.setenv("KZOO_MAX_PRESET_BYTES", "1000")
    with pytest.raises(KzooError, match="more than the cap of 1,000"):
        load_torch(FIXTURES / "resnet_batch.pth")
    monkeypatch.delenv("KZOO_MAX_PRESET_BYTES")
    # a storage shorter than its tensor claims: refused, never read out of bounds
    src, bad = FIXTURES / "resnet_batch.pth", tmp_path / "short.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, data[:8] if info.filename.endswith("/data/0") else data)
    with pytest.raises(KzooError, match="damaged"):
        load_torch(bad)


def test_a_file_without_a_state_dict_is_refused(tmp_path):
    _torch_zip(tmp_path / "list.pth", [1, 2, 3])
    with pytest.raises(KzooError, match="holds no state dict"):
        load_state_dict(tmp_path / "list.pth")


def test_a_pickle_cannot_modify_the_allowed_globals_or_inflate_a_tensor(tmp_path):
    from kzoo.hub.convert import torchfile

    # protocol-2 opcodes: GLOBAL torch.FloatStorage, EMPTY_DICT, "name" -> "LongStorage"
    # (SETITEM), BUILD: would retarget the allowed global for every later load
    evil = (b"\x80\x02ctorch\nFloatStorage\n}X\x04\x00\x00\x00name"
            b"X\x0b\x00\x00\x00LongStoragesb.")
    with zipfile.ZipFile(tmp_path / "build.pth", "w") as zf:
        zf.writestr("archive/data.pkl", evil)
    with pytest.raises(KzooError, match="modifies an allowed global"):
        load_torch(tmp_path / "build.pth")
    assert torchfile._ALLOWED[("torch", "FloatStorage")].dtype == np.float32
    # a stride-0 tensor of 10**12 elements over a 1-element storage: refused, not allocated
    storage = np.zeros(1, np.float32)
    with pytest.raises(KzooError, match="exceeds the cap"):
        torchfile._rebuild_tensor(storage, 0, (10 ** 6, 10 ** 6), (0, 0))


SG2 = FIXTURES / "stylegan2"


def test_a_training_checkpoint_reads_its_namespace_and_only_the_state_dict_it_picks(tmp_path):
    """rosinality's train.py checkpoint (g, d, g_ema, optimiser states, args: an
    argparse.Namespace): load_state_dict reads g_ema's storages only -- damaging every
    other storage in the archive leaves it readable, while load_torch reads them all."""
    from kzoo.hub.convert import torchfile

    full = load_torch(SG2 / "cm1_64.pt")
    assert set(full) == {"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p"}
    assert isinstance(full["args"], torchfile.Namespace)
    assert (full["args"].size, full["args"].channel_multiplier, full["args"].arch) == (64, 1, "stylegan2")
    assert full["g_optim"]["state"][0]["exp_avg"].dtype == np.float32
    state = load_state_dict(SG2 / "cm1_64.pt")
    assert set(state) == set(full["g_ema"])
    assert not np.array_equal(state["conv1.conv.weight"], full["g"]["conv1.conv.weight"])
    np.testing.assert_array_equal(state["conv1.conv.weight"], full["g_ema"]["conv1.conv.weight"])
    keys = {}

    def record(ckpt):
        keys["ema"] = torchfile._storage_keys(ckpt["g_ema"])
        keys["all"] = torchfile._storage_keys(ckpt)

    load_torch(SG2 / "cm1_64.pt", pick=record)
    others = keys["all"] - keys["ema"]
    assert len(others) > len(keys["ema"])  # g, d and the optimiser states
    bad = tmp_path / "damaged.pt"
    with zipfile.ZipFile(SG2 / "cm1_64.pt") as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, data[:4] if info.filename.rsplit("/", 1)[-1] in others else data)
    for key, value in load_state_dict(bad).items():
        np.testing.assert_array_equal(value, state[key])
    with pytest.raises(KzooError, match="damaged"):
        load_torch(bad)
    # the legacy stream (convert_weight.py's {"g_ema", "latent_avg"}): the other part skipped
    legacy = SG2 / "cm2_128.pt"
    assert not zipfile.is_zipfile(legacy)
    assert load_torch(legacy, pick=lambda ckpt: ckpt["latent_avg"]).shape == (8,)
    assert "latent_avg" not in load_state_dict(legacy)


def test_the_namespace_is_the_one_other_name_and_cannot_be_misused(tmp_path):
    """argparse.Namespace resolves to a stand-in that only takes its attributes once;
    argparse's other names stay refused."""
    import argparse

    _torch_zip(tmp_path / "ns.pth", {"args": argparse.Namespace(size=256, lr=0.002)})
    args = load_torch(tmp_path / "ns.pth")["args"]
    assert (args.size, args.lr) == (256, 0.002)
    assert not hasattr(args, "missing")
    with pytest.raises(KzooError, match="modifies an argparse.Namespace"):
        args.size = 1
    _torch_zip(tmp_path / "parser.pth", {"p": _Call(argparse.ArgumentParser)})
    with pytest.raises(KzooError, match=r"calls argparse\.ArgumentParser \(only tensor data"):
        load_torch(tmp_path / "parser.pth")
    # BUILD on the allowed class itself, or a second BUILD on an instance: refused
    cls_build = b"\x80\x02cargparse\nNamespace\n}X\x01\x00\x00\x00aK\x01sb."
    twice = b"\x80\x02cargparse\nNamespace\n)\x81}X\x01\x00\x00\x00aK\x01sb}X\x01\x00\x00\x00aK\x02sb."
    for name, evil in (("cls", cls_build), ("twice", twice)):
        with zipfile.ZipFile(tmp_path / f"{name}.pth", "w") as zf:
            zf.writestr("archive/data.pkl", evil)
        with pytest.raises(KzooError):
            load_torch(tmp_path / f"{name}.pth")
    from kzoo.hub.convert import torchfile

    assert not hasattr(torchfile.Namespace, "a") and torchfile.Namespace.__slots__ == ("options",)
