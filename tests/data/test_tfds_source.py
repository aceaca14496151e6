"""kzoo.data.tfds_source: real tfds downloads up to the network, and their one-line errors.

Every `recipes/*.toml` whose data is `tfds:...` is run through its recipe's entry point
with an empty TFDS data folder, so tensorflow-datasets really builds, downloads and
would prepare the dataset: every module on its download path is imported. The network
is a proxy on 127.0.0.1 (tests/data/fake_internet.py) that speaks TLS for the
datasets' hosts and answers 404 (a closed proxy, 403 on CONNECT, would be retried by
tfds for about 3.5 minutes per URL; see kzoo/data/tfds_source.py).
"""

import json
import os
import re
import subprocess
import sys
import tomllib
import urllib.parse
from pathlib import Path

import pytest

from kzoo.data.tfds_source import failed_url, read_error
from kzoo.errors import KzooError
from tests.data.fake_internet import FakeInternet

REPO = Path(__file__).resolve().parents[2]
TFDS_PRESETS = sorted(p for p in (REPO / "recipes").glob("*.toml")
                      if str(tomllib.loads(p.read_text()).get("data", "")).startswith("tfds:"))
TIMEOUT = 300  # seconds for a child process: it cannot hang the suite


def _tfds_name(preset):
    return tomllib.loads(preset.read_text())["data"][5:].split(":")[0]


def _dataset_hosts():
    """Hosts of every URL tfds knows a checksum for, for the presets' datasets and all
    legacy ones (tensorflow_datasets/url_checksums/*.txt): the proxy's certificate names them."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums

    urls = set(checksums.get_all_url_infos())
    for preset in TFDS_PRESETS:
        urls |= set(tfds.builder(_tfds_name(preset)).url_infos or {})
    return {urllib.parse.urlparse(u).hostname for u in urls}


@pytest.fixture(scope="module")
def internet(tmp_path_factory):
    with FakeInternet(tmp_path_factory.mktemp("tls"), _dataset_hosts()) as net:
        yield net


def _child_env(net, tmp):
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env.update(net.env(), TFDS_DATA_DIR=str(tmp / "tfds"), HOME=str(tmp / "home"),
               KZOO_HOME=str(tmp / "kzoo"), PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _declared_closure():
    """Distributions a fresh `pip install .` brings: pyproject's dependencies, recursively
    through the installed distributions' metadata (extras and markers honoured)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    todo = [Requirement(r) for r in deps]
    seen = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        want = set(req.extras) | {""}
        if want <= seen.get(name, set()):
            continue
        extras = seen[name] = seen.get(name, set()) | want
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # declared, not installed here: the import would have failed
        for spec in requires:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return set(seen)


def _undeclared_modules():
    """Top-level modules installed here whose distributions pyproject.toml does not bring."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    declared = _declared_closure()
    return {module for module, dists in metadata.packages_distributions().items()
            if module.isidentifier() and not {canonicalize_name(d) for d in dists} & declared}


def test_every_tfds_preset_ends_at_the_network_in_one_line(internet, tmp_path):
    """Each preset's recipe downloads for real until the (fake) network says 404; it then
    exits 2 with one `error:` line naming the dataset and the URL, never a traceback or a
    missing module. Modules of distributions pyproject.toml does not declare are made
    unimportable in the child, as on a fresh `pip install .`: a module tfds needs but
    nobody declares fails this test (as importlib_resources and beautifulsoup4 did)."""
    assert {_tfds_name(p) for p in TFDS_PRESETS} >= {"cifar10", "celeb_a", "cycle_gan/horse2zebra", "div2k"}
    env = _child_env(internet, tmp_path)
    # srgan-div2k's VGG19 weights file is checked before its data (kzoo never downloads it):
    # a stand-in file at Keras' cache path lets the run reach the data download
    vgg = tmp_path / "home" / ".keras" / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    vgg.parent.mkdir(parents=True, exist_ok=True)
    vgg.write_bytes(b"stand-in: never loaded, the run stops at the download")
    blocked = _undeclared_modules() - {"tests", "kzoo"}  # kzoo: this checkout, on PYTHONPATH
    env["KZOO_TEST_BLOCKED_MODULES"] = ",".join(sorted(blocked))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.data.recipes_offline", str(tmp_path / "runs"),
         *map(str, TFDS_PRESETS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for preset in TFDS_PRESETS:
        got = report["results"][str(preset)]
        stderr = got["stderr"]
        assert "Traceback" not in stderr and "No module named" not in stderr, stderr[-3000:]
        assert got["rc"] == 2, stderr[-3000:]
        last = stderr.strip().splitlines()[-1]
        name = re.escape(_tfds_name(preset))
        m = re.fullmatch(rf"error: cannot download tfds:{name}(/\w+)? from (https://\S+): (.+)", last)
        assert m, last
        assert m.group(2) in internet.requests  # the URL tfds really asked the network for
        assert not (tmp_path / "runs" / preset.stem).exists()  # nothing written before the data
    # Nothing outside the temporary folders: the data went to TFDS_DATA_DIR only.
    assert (tmp_path / "tfds").is_dir()

    assert not set(report["modules"]) & blocked
    for module in ("importlib_resources", "bs4"):  # the download path did reach them
        assert module in report["modules"]


def _readme_commands():
    """The indented command lines of recipes/README.md that use a tfds preset."""
    commands = []
    for line in (REPO / "recipes" / "README.md").read_text().splitlines():
        text = line.split("  #")[0].strip()
        if line.startswith("    ") and text.startswith(("python -m kzoo", "kzoo ")) and "--preset recipes/" in text:
            commands.append(text)
    return commands


def test_recipes_readme_commands_end_at_the_network(internet, tmp_path):
    """recipes/README.md's commands, as written (run in a folder holding recipes/), offline:
    exit 2 and one final line naming the dataset's download, the first being issue 24's
    `python -m kzoo.recipes.dcgan --preset recipes/dcgan-cifar10.toml`."""
    import shlex

    commands = _readme_commands()
    assert commands[0] == "python -m kzoo.recipes.dcgan --preset recipes/dcgan-cifar10.toml"
    assert len(commands) >= 2
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    for command in commands:
        argv = shlex.split(command)
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, "-m", "kzoo.cli", *argv[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, env=_child_env(internet, tmp_path), capture_output=True,
                              text=True, timeout=TIMEOUT)
        assert proc.returncode == 2, (command, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr, command
        preset = REPO / argv[argv.index("--preset") + 1]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: cannot download tfds:{_tfds_name(preset)} from https://"), (command, last)
        if preset.stem == "dcgan-cifar10":  # the URL tfds registers (url_checksums/cifar10.txt)
            assert last == ("error: cannot download tfds:cifar10 from "
                            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz: the server answered HTTP 404")
    assert not (tmp_path / "runs").exists()  # the default run folder: nothing written before the data


# --- the translation of tfds' errors, on the exceptions it raises ---------------------

def test_missing_module_is_named():
    err = read_error("cifar10", "train", ModuleNotFoundError("No module named 'x_y'", name="x_y"))
    assert isinstance(err, KzooError)
    assert str(err) == ("cannot prepare tfds:cifar10: tensorflow-datasets needs the Python module 'x_y', "
                        "which is not installed (pip install x_y)")
    # as tfds' lazy importer re-raises it (utils.reraise: same type, longer text, no .name)
    lazy = ModuleNotFoundError("No module named 'bs4'\n\nFailed importing bs4. This likely means ...")
    assert "needs the Python module 'bs4', which is not installed (pip install bs4)" in str(
        read_error("celeb_a", "train", lazy))


def test_closed_network_names_url_and_proxy_complaint():
    """What requests raises when the proxy refuses (the text measured with a 403 proxy)."""
    import requests

    req = requests.Request("GET", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz").prepare()
    e = requests.exceptions.ProxyError(
        "HTTPSConnectionPool(host='www.cs.toronto.edu', port=443): Max retries exceeded with url: "
        "/~kriz/cifar-10-binary.tar.gz (Caused by ProxyError('Unable to connect to proxy', "
        "OSError('Tunnel connection failed: 403 Forbidden')))", request=req)
    assert str(read_error("cifar10", "train", e)) == (
        "cannot download tfds:cifar10 from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz: "
        "the network is unreachable (Unable to connect to proxy; Tunnel connection failed: 403 Forbidden)")


def test_no_dns_names_url_and_host():
    """What requests raises on a machine without DNS (measured here: after tfds' 10 retries,
    204 s; `python -m kzoo.recipes.dcgan --preset recipes/dcgan-cifar10.toml` took 271 s)."""
    import requests

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    e = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='www.cs.toronto.edu', port=443): Max retries exceeded with url: "
        "/~kriz/cifar-10-binary.tar.gz (Caused by NameResolutionError(\"HTTPSConnection(host='www.cs.toronto.edu', "
        "port=443): Failed to resolve 'www.cs.toronto.edu' ([Errno -2] Name or service not known)\"))",
        request=requests.Request("GET", url).prepare())
    assert str(read_error("cifar10", "train", e)) == (
        f"cannot download tfds:cifar10 from {url}: the network is unreachable "
        "(Failed to resolve 'www.cs.toronto.edu' ([Errno -2] Name or service not known))")


def test_checksum_mismatch_and_other_errors():
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    e = NonMatchingChecksumError("Artifact https://h.example/a.zip, downloaded to /x/a.zip, has wrong checksum:\n* ...")
    assert failed_url(e) == "https://h.example/a.zip"
    assert "does not have the checksum" in str(read_error("div2k", "train", e))
    other = read_error("mnist", "train[:5]", RuntimeError("disk on fire\nsecond line"))
    assert str(other) == "cannot read tfds:mnist split 'train[:5]': disk on fire"


# --- tiny archives in the datasets' own formats, through tfds' whole download path ---------

@pytest.fixture
def tiny_internet(internet, tmp_path, monkeypatch):
    """The proxy for this process, an empty TFDS data folder, and `serve(url, body)`, which
    also makes tfds expect that body's size and sha256 for `url` (in place of the real
    archive's, from its registered checksums): download, checksum check, extraction and
    preparation then run as for the real file."""
    import hashlib

    from tensorflow_datasets.core import utils
    from tensorflow_datasets.core.download import checksums
    from tensorflow_datasets.core.download.download_manager import DownloadManager

    for k, v in internet.env().items():
        monkeypatch.setenv(k, v)
    from tensorflow_datasets.core import constants

    # tfds reads TFDS_DATA_DIR once, at import (core/constants.py, DATA_DIR): set both
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "tfds"))
    ours = {}
    init = DownloadManager.__init__

    def patched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._url_infos.update(ours)

    monkeypatch.setattr(DownloadManager, "__init__", patched_init)

    def serve(url, body, filename=None):
        internet.serve(url, body, filename)
        ours[url] = checksums.UrlInfo(size=utils.Size(len(body)), checksum=hashlib.sha256(body).hexdigest(),
                                      filename=filename or url.rsplit("/", 1)[-1])

    serve.internet = internet
    del internet.requests[:]
    yield serve
    internet.files.clear()
    assert (tmp_path / "tfds" / "downloads").is_dir()  # the data went to the temporary folder


def _archive(kind, files):
    """A .tar.gz or .zip (bytes) holding `files` {path: bytes}."""
    import io
    import tarfile
    import zipfile

    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _png(array):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _preset_config(stem):
    from kzoo.recipes.config import resolve_config
    from kzoo.recipes.registry import get_recipe

    path = REPO / "recipes" / f"{stem}.toml"
    recipe = get_recipe(tomllib.loads(path.read_text())["recipe"])
    cfg = resolve_config(recipe, ["--preset", str(path)])[0]
    return recipe, cfg


def test_cifar10_tiny_archive_loads_through_the_dcgan_preset(tiny_internet):
    """cifar-10-binary.tar.gz as Krizhevsky distributes it (one label byte, then 3072 bytes
    of the image, channels first: tensorflow_datasets/image_classification/cifar.py,
    `_load_data`), served at its URL: the dcgan preset's data are exactly those images."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8) % 10

    def batch(idx):
        return b"".join(bytes([labels[i]]) + images[i].transpose(2, 0, 1).tobytes() for i in idx)

    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    files = {f"cifar-10-batches-bin/data_batch_{k}.bin": batch([k - 1]) for k in range(1, 6)}
    files["cifar-10-batches-bin/test_batch.bin"] = batch([5, 6])
    files["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(names) + "\n").encode()
    tiny_internet("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", _archive("tar", files))

    recipe, cfg = _preset_config("dcgan-cifar10")
    data, _ = recipe.load_data(cfg)
    assert (data.num_examples, data.image_size, data.channels) == (5, 32, 3)
    got = np.stack(list(data.dataset.as_numpy_iterator()))
    want = images[:5].astype(np.float32) / 127.5 - 1.0
    # tfds writes examples in its own (hashed) order: compare as sets of images
    order = lambda x: x[np.lexsort(x.reshape(len(x), -1).T[:8])]  # noqa: E731
    np.testing.assert_allclose(order(got), order(want), atol=1e-5)


def test_horse2zebra_tiny_archive_loads_through_the_cyclegan_preset(tiny_internet):
    """horse2zebra.zip as the CycleGAN authors distribute it (horse2zebra/trainA, trainB,
    testA, testB of JPEGs: tensorflow_datasets/image_classification/cycle_gan.py)."""
    import io

    import numpy as np
    from PIL import Image

    def jpeg(value):
        buf = io.BytesIO()
        Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(buf, format="JPEG", quality=95)
        return buf.getvalue()

    files = {f"horse2zebra/{split}/{i}.jpg": jpeg(value + 10 * i)
             for split, value, n in (("trainA", 40, 3), ("trainB", 200, 2), ("testA", 60, 1), ("testB", 180, 1))
             for i in range(n)}
    tiny_internet("https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip", _archive("zip", files))

    recipe, cfg = _preset_config("cyclegan-horse2zebra")
    train, test = recipe.load_data(cfg)
    assert (train.num_a, train.num_b, test.num_a, test.num_b, train.image_size) == (3, 2, 1, 1, 256)
    a, b = train.arrays()
    # flat images: the mean survives JPEG and resizing
    assert sorted(np.round((a.mean(axis=(1, 2, 3)) + 1) * 127.5)) == pytest.approx([40, 50, 60], abs=2)
    assert sorted(np.round((b.mean(axis=(1, 2, 3)) + 1) * 127.5)) == pytest.approx([200, 210], abs=2)


def test_div2k_tiny_archives_load_through_the_srresnet_preset(tiny_internet):
    """DIV2K's HR and bicubic x2 LR zips (DIV2K_train_HR/0001.png, ...x2.png: the layout
    tensorflow_datasets/datasets/div2k/div2k_dataset_builder.py reads)."""
    import numpy as np

    rng = np.random.default_rng(1)
    hr = {i: rng.integers(0, 256, (100, 120, 3), dtype=np.uint8) for i in (1, 2, 801)}
    base = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
    for split, ids in (("train", (1, 2)), ("valid", (801,))):
        tiny_internet(f"{base}DIV2K_{split}_HR.zip",
                      _archive("zip", {f"DIV2K_{split}_HR/{i:04d}.png": _png(hr[i]) for i in ids}))
        tiny_internet(f"{base}DIV2K_{split}_LR_bicubic_X2.zip",
                      _archive("zip", {f"DIV2K_{split}_LR_bicubic/X2/{i:04d}x2.png": _png(hr[i][::2, ::2])
                                       for i in ids}))

    recipe, cfg = _preset_config("srresnet-div2k")
    data, heldout = recipe.load_data(cfg)
    lr, hr_patch = next(data.dataset.as_numpy_iterator())
    assert lr.shape == (24, 24, 3) and hr_patch.shape == (96, 96, 3)
    patch = np.round((hr_patch + 1) * 127.5).astype(np.uint8)
    # the patch is a crop of one of the two training images
    def is_crop(img):
        return any((img[y:y + 96, x:x + 96] == patch).all() for y in range(5) for x in range(25))
    assert is_crop(hr[1]) or is_crop(hr[2])


def test_celeb_a_tiny_files_load_through_the_vae_preset(tiny_internet):
    """CelebA's five Google Drive files (tensorflow_datasets/datasets/celeb_a/
    celeb_a_dataset_builder.py: the aligned JPEGs' zip and four text lists; their file
    names as tfds registers them in that folder's checksums.tsv)."""
    import io

    import numpy as np
    import tensorflow_datasets as tfds
    from PIL import Image
    from tensorflow_datasets.datasets.celeb_a import celeb_a_dataset_builder as celeb

    names = [f"{i:06d}.jpg" for i in range(1, 5)]
    partition = {names[0]: 0, names[1]: 0, names[2]: 1, names[3]: 2}  # train, train, validation, test

    def jpeg(value):
        buf = io.BytesIO()
        Image.fromarray(np.full((218, 178, 3), value, np.uint8)).save(buf, format="JPEG", quality=95)
        return buf.getvalue()

    def table(headings, width):
        rows = [f"{n} " + " ".join(["1"] * width) for n in names]
        return (f"{len(names)}\n" + " ".join(headings) + "\n" + "\n".join(rows) + "\n").encode()

    bodies = {
        celeb.IMG_ALIGNED_DATA: _archive("zip", {f"img_align_celeba/{n}": jpeg(30 * (i + 1)) for i, n in enumerate(names)}),
        celeb.EVAL_LIST: "".join(f"{n} {p}\n" for n, p in partition.items()).encode(),
        celeb.ATTR_DATA: table(celeb.ATTR_HEADINGS, len(celeb.ATTR_HEADINGS)),
        celeb.LANDMARKS_DATA: table(celeb.LANDMARK_HEADINGS, len(celeb.LANDMARK_HEADINGS)),
        celeb.IDENTITY_DATA: "".join(f"{n} {7 + i}\n" for i, n in enumerate(names)).encode(),
    }
    registered = tfds.builder("celeb_a").url_infos
    for url, body in bodies.items():
        tiny_internet(url, body, registered[url].filename)
    # Google Drive answers a large file's URL with a confirmation form instead of the file;
    # tfds follows the form (downloader.py, `_process_gdrive_confirmation`, with bs4).
    file_id = "0B7EVK8r0v71pZjFTYXZWM3FlRnM"
    assert celeb.IMG_ALIGNED_DATA.endswith(file_id)
    form = (f'<html><body><form id="download-form" action="/uc" method="get">'
            f'<input type="hidden" name="id" value="{file_id}"><input type="hidden" name="export" value="download">'
            f'<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u1">'
            f'<input type="submit" value="Download anyway"></form></body></html>').encode()
    tiny_internet.internet.serve(celeb.IMG_ALIGNED_DATA, form, attachment=False)
    tiny_internet.internet.serve(f"https://drive.google.com/uc?uuid=u1&export=download&id={file_id}&confirm=t",
                                 bodies[celeb.IMG_ALIGNED_DATA], "img_align_celeba.zip")

    recipe, cfg = _preset_config("vae-celeb_a")
    train, test = recipe.load_data(cfg)
    assert f"https://drive.google.com/uc?uuid=u1&export=download&id={file_id}&confirm=t" in tiny_internet.internet.requests
    assert (train.num_examples, test.num_examples, train.image_size, train.channels) == (2, 1, 64, 3)
    means = sorted(np.round((x.mean() + 1) * 127.5) for x in train.dataset.as_numpy_iterator())
    assert means == pytest.approx([30, 60], abs=2)
    assert np.round((next(test.dataset.as_numpy_iterator()).mean() + 1) * 127.5) == pytest.approx(120, abs=2)
