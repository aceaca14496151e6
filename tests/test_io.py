import errno
import json
import re
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kzoo.errors import KzooError
from kzoo.io import (atomic_path, check_free_space, make_dirs, remove_stale_dirs, remove_stale_temps,
                     save_png, write_bytes, write_json)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "config.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_save_png_round_trip(tmp_path):
    img = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)
    save_png(tmp_path / "a" / "x.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a" / "x.png")), img)
    save_png(tmp_path / "g.png", img[..., :1])
    assert np.asarray(Image.open(tmp_path / "g.png")).shape == (4, 4)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("write", [
    lambda p: write_json(p, {"a": 1}),
    lambda p: write_bytes(p, b"x" * 100),
    lambda p: save_png(p, np.zeros((4, 4), np.uint8)),
], ids=["json", "bytes", "png"])
def test_disk_full_is_one_error_naming_the_path_and_leaves_no_temp(tmp_path, monkeypatch, write):
    target = tmp_path / "out" / "file.json"
    target.parent.mkdir()
    monkeypatch.setattr(os, "fsync", _enospc)  # the data reaches the disk at fsync
    with pytest.raises(KzooError, match=r"cannot write .*file.json: No space left on device \(ENOSPC\)"):
        write(target)
    assert _files(tmp_path / "out") == []


def test_disk_full_inside_a_writer_is_one_error(tmp_path):
    target = tmp_path / "model.keras"

    def keras_like_save(path):
        with open(path, "wb") as f:
            f.write(b"PK")
            _enospc()

    with pytest.raises(KzooError, match="cannot write .*model.keras: No space left"):
        with atomic_path(target) as tmp:
            keras_like_save(tmp)
    assert _files(tmp_path) == []


def test_errors_of_a_source_are_not_disguised_as_write_errors(tmp_path):
    with pytest.raises(ConnectionResetError):
        with atomic_path(tmp_path / "download.bin"):
            raise ConnectionResetError(errno.ECONNRESET, "reset by peer")
    assert _files(tmp_path) == []


def test_parent_is_a_file_or_target_is_a_folder(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(KzooError, match="cannot write .*plain.*(Not a directory|File exists)"):
        write_json(tmp_path / "plain" / "run" / "config.json", {})
    with pytest.raises(KzooError, match="cannot write .*plain: Not a directory"):
        make_dirs(tmp_path / "plain")
    (tmp_path / "folder").mkdir()
    with pytest.raises(KzooError, match="cannot write .*folder: it is a directory"):
        write_json(tmp_path / "folder", {})
    assert _files(tmp_path) == ["folder", "plain"]


def test_read_only_places(tmp_path, monkeypatch):
    # root ignores chmod, so a read-only disk is simulated where the kernel would say so
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if str(dir).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(KzooError, match="cannot write .*ro/a.json: Read-only file system"):
        write_json(tmp_path / "ro" / "a.json", {})
    with pytest.raises(KzooError, match="cannot write /proc/kzoo-test/a.json"):
        write_json("/proc/kzoo-test/a.json", {})


def test_free_space_is_checked_before_large_writes(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=3 << 20))
    with pytest.raises(KzooError, match=r"needs 22,020,096 bytes free \(5,242,880 to write \+ "
                       r"16,777,216 kept free\) but only 3,145,728 bytes are free on that disk \(ENOSPC\)$"):
        write_bytes(tmp_path / "big.bin", b"\0" * (5 << 20))
    with pytest.raises(KzooError, match=r"needs 36,777,216 bytes free \(20,000,000 to write"):
        check_free_space(tmp_path / "not" / "yet" / "there", 20_000_000)
    write_bytes(tmp_path / "small.bin", b"\0" * 1000)  # small writes are not checked
    assert _files(tmp_path) == ["small.bin"]


def test_remove_stale_temps_of_killed_writes(tmp_path):
    stale = [".model.keras.a1b2c3d4.keras", ".training_metadata.json.zz_9x8y7.json",
             "weights.h5.tmp.weights.h5", "checkpoint.tmp"]
    keep = ["model.keras", ".gitignore", "training_metadata.json", "notes.tmp.txt.bak~"]
    for name in stale + keep:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert _files(tmp_path) == sorted(keep)
    (tmp_path / ".a.json.q1w2e3r4.json").write_text("x")
    assert remove_stale_temps(tmp_path, older_than=3600) == []  # a live writer's file stays
    assert remove_stale_temps(tmp_path / "missing") == []


def test_check_writable_dir_answers_before_any_work(tmp_path):
    from kzoo.io import check_writable_dir

    assert check_writable_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists() and not list(tmp_path.iterdir())  # the probe is gone
    (tmp_path / "file").write_text("x")
    for bad, reason in [(tmp_path / "file", "is not a directory (ENOTDIR)"),
                        (tmp_path / "file" / "run", "is not a directory (ENOTDIR)"),
                        ("/proc/kzoo-run", "(ENOENT)")]:
        with pytest.raises(KzooError, match=re.escape(f"cannot write {bad}: ") + ".*" + re.escape(reason)):
            check_writable_dir(bad)


def test_input_image_pixel_budget(monkeypatch):
    from kzoo.io import MAX_IMAGE_PIXELS, check_image_pixels

    check_image_pixels("a.png", 8192, 8192)
    assert MAX_IMAGE_PIXELS == 8192 * 8192
    with pytest.raises(KzooError, match=r"a.png is 8193x8192 \(67 Mpixel\), over the 67 Mpixel limit"):
        check_image_pixels("a.png", 8193, 8192)
    monkeypatch.setenv("KZOO_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(KzooError, match="over the 0 Mpixel limit"):
        check_image_pixels("a.png", 11, 10)


def test_variables_nbytes_counts_each_variable_once():
    import keras

    from kzoo.io import variables_nbytes

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert variables_nbytes(model) == (3 * 2 + 2) * 4
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    with_adam = variables_nbytes(model)  # weights, Adam's m and v, its step counter
    assert with_adam == variables_nbytes(model, model) and with_adam >= 3 * (3 * 2 + 2) * 4 + 8


def test_output_errors_reported_in_a_message_only():
    """TensorFlow's file-system errors are not OSErrors: their message tells a full disk."""
    from kzoo.io import as_output_error

    class ResourceExhaustedError(Exception):
        pass

    disk = as_output_error(ResourceExhaustedError("/x/variables.index.tempstate1; No space left on device"))
    assert isinstance(disk, OSError) and disk.errno == errno.ENOSPC
    assert as_output_error(RuntimeError("Read-only file system")).errno == errno.EROFS
    assert as_output_error(OSError(errno.ENOSPC, "full")).errno == errno.ENOSPC
    assert as_output_error(OSError(errno.ECONNRESET, "reset")) is None  # a source's error
    assert as_output_error(ValueError("width must be a power of two")) is None


def test_temp_dirs_of_killed_processes_are_swept_live_ones_stay(tmp_path):
    from kzoo.io import STALE_SECONDS, temp_dir

    from tests.helpers import dead_pid, leftovers

    dead, live = dead_pid(), os.getpid()
    gone = leftovers(tmp_path, f".out.kzoo-{dead}-abcd1234", f".other.kzoo-{dead}-zz_9y8x7")
    gone += leftovers(tmp_path, ".out.q1w2e3r4", age=STALE_SECONDS + 60)  # no pid (older kzoo), old
    kept = leftovers(tmp_path, f".out.kzoo-{live}-abcd1234",  # a concurrent run's
                     ".out.a1b2c3d4",  # no pid, recent: may still be written
                     ".other.q1w2e3r4", ".config.abcdefgh", "out")  # not ours to judge
    kept += leftovers(tmp_path, ".cache.abcdefgh", age=STALE_SECONDS + 60)
    new = temp_dir(tmp_path, "out")
    assert new.name.startswith(f".out.kzoo-{live}-")
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept)
    assert remove_stale_dirs(tmp_path) == [] and new.exists()  # its own pid is alive
    assert remove_stale_dirs(tmp_path / "missing") == []


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                                  (0o002, 0o775, 0o664)])
def test_published_folders_take_the_umask_not_mkdtemps_0700(tmp_path, umask, folder, file):
    from kzoo.io import publish_dir, temp_dir

    from tests.helpers import modes

    old = os.umask(umask)
    try:
        tmp = temp_dir(tmp_path, "out")
        inner = Path(tempfile.mkdtemp(dir=tmp))  # 0700, as archive extraction makes them
        fd, name = tempfile.mkstemp(dir=inner)  # 0600
        os.close(fd)
        (tmp / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(tmp / "run.sh", 0o700)
        write_bytes(tmp / "a.bin", b"a")  # atomic_path: 0666 & ~umask already
        publish_dir(tmp, tmp_path / "out")
    finally:
        os.umask(old)
    got = modes(tmp_path / "out")
    assert got.pop("run.sh") == 0o777 & ~umask
    assert got == {
        ".": folder, inner.name: folder, f"{inner.name}/{Path(name).name}": file, "a.bin": file}


def test_failed_allocations_are_one_line(monkeypatch):
    """What no bound foresaw still ends in one line: TensorFlow's OOM (its text says which
    tensor) and numpy's MemoryError; other errors stay tracebacks (bugs)."""
    from kzoo.io import check_memory, error_line, memory_bytes

    class ResourceExhaustedError(Exception):  # tf.errors.ResourceExhaustedError's name and text
        pass

    monkeypatch.setattr("kzoo.io.memory_bytes", lambda: 24_000_000_000)
    oom = ResourceExhaustedError("{{function_node __wrapped__StatelessRandomNormalV2_device_/job:localhost/"
                                 "replica:0/task:0/device:CPU:0}} OOM when allocating tensor with "
                                 "shape[4,4,128,1000000000] and type float on /job:localhost/replica:0/"
                                 "task:0/device:CPU:0 by allocator cpu [Op:StatelessRandomNormalV2]")
    assert error_line(oom) == ("error: out of memory (OOM when allocating tensor with shape[4,4,128,"
                               "1000000000] and type float); this machine has 24,000,000,000 bytes: use "
                               "smaller sizes or batches")
    assert error_line(MemoryError("Unable to allocate 2.0 TiB")).startswith(
        "error: out of memory (Unable to allocate 2.0 TiB); this machine has 24,000,000,000 bytes")
    assert error_line(ResourceExhaustedError("too many open sessions")) is None
    assert error_line(ValueError("a bug")) is None
    with pytest.raises(KzooError, match=r"^a batch needs at least 24,000,000,001 bytes of memory, more than "
                                        r"the 24,000,000,000 bytes this machine has; make it smaller$"):
        check_memory(24_000_000_001, "a batch", "make it smaller")
    check_memory(24_000_000_000, "a batch")
    monkeypatch.undo()
    assert 0 < memory_bytes() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
