"""Reading TensorFlow Datasets (`tfds:NAME[/CONFIG]`) with one-line errors.

`load_split` is the one place where kzoo calls `tfds.builder`/`tfds.load`; the
loaders of `kzoo.data` (images, paired, segmentation, sr) go through it, so a
dataset that cannot be had ends the same way everywhere: one `KzooError` line
that names the dataset and, when the download failed, the URL and why.

On first use tfds downloads and prepares the dataset in its data folder
(`TFDS_DATA_DIR`, default `~/tensorflow_datasets`), with `requests`, which
honours `HTTPS_PROXY`/`HTTP_PROXY`/`REQUESTS_CA_BUNDLE`
(tensorflow_datasets/core/download/downloader.py, `_Downloader._sync_download`).
When the network is closed, tfds's downloader retries each URL 10 times with
exponential back-off (`MAX_RETRIES = 10`, `backoff_factor=0.2` in
`_open_with_requests`), and urllib3 logs each retry: measured with
tensorflow-datasets 4.9.10 on a machine without DNS, 204 s of retries before
the error line (271 s for `python -m kzoo.recipes.dcgan --preset
recipes/dcgan-cifar10.toml` in all), with ten urllib3 "Retrying" warnings. While
kzoo downloads through tfds it lowers that count to `DOWNLOAD_RETRIES` (tfds
reads the module constant each time it opens a URL) and keeps urllib3's retry
warnings out of the user's terminal (they remain at DEBUG), so an offline user gets
the error line in seconds; a server error (HTTP 5xx) is still retried that often.
"""

from __future__ import annotations

import contextlib
import logging

from kzoo.errors import KzooError

DOWNLOAD_RETRIES = 3


@contextlib.contextmanager
def _short_retries():
    """tfds's downloader with `DOWNLOAD_RETRIES` retries a URL and urllib3's retry
    warnings hidden, restored afterwards (see the module docstring)."""
    from tensorflow_datasets.core.download import downloader

    pool_log = logging.getLogger("urllib3.connectionpool")
    saved = (getattr(downloader, "MAX_RETRIES", None), pool_log.level)
    if saved[0] is not None:
        downloader.MAX_RETRIES = min(saved[0], DOWNLOAD_RETRIES)
    pool_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        if saved[0] is not None:
            downloader.MAX_RETRIES = saved[0]
        pool_log.setLevel(saved[1])


def get_builder(name: str):
    """The tfds `DatasetBuilder` of `name` (`NAME[/CONFIG]`); nothing is downloaded.

    Raises:
        KzooError: an empty or unknown name.
    """
    import tensorflow_datasets as tfds

    if not name:
        raise KzooError("tfds: needs a dataset name, e.g. tfds:mnist")
    try:
        return tfds.builder(name)
    except Exception as e:  # DatasetNotFoundError and friends
        raise KzooError(f"unknown tfds dataset {name!r}: {first_line(e)}") from None


def load_split(name: str, split: str, *, shuffle_files: bool = False):
    """`(tf.data.Dataset, number of examples)` of split `split` of tfds dataset `name`.

    Downloads and prepares the dataset first if tfds has not yet (see the module
    docstring).

    Args:
        name: the tfds name, with an optional config (`cycle_gan/horse2zebra`).
        split: a tfds split (`train`, `trainA`, `validation`, `train[:10%]`, ...).
        shuffle_files: passed to `tfds.load`.

    Raises:
        KzooError: one line: an unknown dataset; a download that failed (naming the
            URL and why); a Python module tfds needs that is missing; any other
            failure to read the split.

    Example::

        ds, n = load_split("cifar10", "train")   # downloads on first use
    """
    import tensorflow_datasets as tfds

    builder = get_builder(name)
    try:
        with _short_retries():
            ds = tfds.load(name, split=split, shuffle_files=shuffle_files)
        n = int(ds.cardinality())
        if n < 0:
            n = int(builder.info.splits[split].num_examples)
    except Exception as e:
        raise read_error(name, split, e) from None
    return ds, n


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_error(name: str, split: str, error: BaseException) -> KzooError:
    """The one-line `KzooError` for `error`, raised while tfds read `name` split `split`."""
    what = f"tfds:{name}"
    if isinstance(error, ModuleNotFoundError):
        import re

        # tfds' lazy imports re-raise it with a longer message and no `.name`
        # (tensorflow_datasets/core/lazy_imports_lib.py, `_try_import`).
        m = re.search(r"No module named '([^']+)'", str(error))
        module = (error.name or (m.group(1) if m else "?")).split(".")[0]
        return KzooError(f"cannot prepare {what}: tensorflow-datasets needs the Python module "
                         f"{module!r}, which is not installed (pip install {module})")
    url = failed_url(error)
    if url is not None:
        return KzooError(f"cannot download {what} from {url}: {_download_reason(error)}")
    return KzooError(f"cannot read {what} split {split!r}: {first_line(error)}")


def failed_url(error: BaseException) -> str | None:
    """The URL a download error is about, or None if `error` is not a download error.

    Recognised: requests' errors (`.request.url`), tfds' `DownloadError`
    ("Failed to get url URL. HTTP code: N.", downloader.py `_assert_status`),
    `NonMatchingChecksumError` ("Artifact URL, downloaded to ..."), and the
    Google Drive confirmation-page `ValueError` ("... for GDrive URL URL.").
    """
    import re

    seen = set()
    while error is not None and id(error) not in seen:  # also look through causes
        seen.add(id(error))
        request = getattr(error, "request", None)
        if getattr(request, "url", None) and _is_requests_error(error):
            return request.url
        text = str(error)
        for pattern in (r"Failed to get url (\S+?)\.? HTTP code", r"^Artifact (\S+), downloaded to",
                        r"for GDrive URL (\S+?)\.?$"):
            m = re.search(pattern, text, re.M)
            if m:
                return m.group(1)
        error = error.__cause__ or error.__context__
    return None


def _is_requests_error(error):
    try:
        import requests
    except ImportError:  # pragma: no cover - tfds depends on requests
        return False
    return isinstance(error, requests.RequestException)


def _download_reason(error: BaseException) -> str:
    """A short why: the HTTP status, the proxy's or connection's complaint, the checksum."""
    import re

    text = str(error)
    m = re.search(r"HTTP code: (\d+)", text)
    if m:
        return f"the server answered HTTP {m.group(1)}"
    if text.startswith("Artifact "):
        return "the downloaded file does not have the checksum tensorflow-datasets expects"
    if "GDrive" in text:
        return "Google Drive did not hand out the file (no download confirmation page)"
    m = re.search(r"\(Caused by (.*)$", text)
    if m:  # requests: "...Max retries exceeded with url: /x (Caused by ProxyError('...', OSError('...')))"
        # urllib3 prefixes the connection: "<...HTTPSConnection object at 0x..>: " or
        # "HTTPSConnection(host='h', port=443): "
        inner = [re.sub(r"^(<[^>]*>|\w*Connection\([^)]*\)): ", "", said)
                 for _, said in re.findall(r"\w+\((['\"])(.*?)\1[,)]", m.group(1))]
        if inner:
            return "the network is unreachable (" + "; ".join(inner) + ")"
    return first_line(error)
