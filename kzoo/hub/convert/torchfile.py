"""Read PyTorch `.pth` / `.pt` state dicts and `.safetensors` files as NumPy arrays.

No PyTorch is needed and no code from the file runs. A `.pth` is a pickle; the
`_TensorUnpickler` resolves only the names a saved state dict uses -- the tensor
rebuild functions (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`), the
storage types (`torch.FloatStorage`, ...) and `collections.OrderedDict` -- to small
NumPy implementations here. Any other global (`os.system`, `builtins.eval`, a
module class) is refused when the pickle names it, before anything is called.

Both layouts `torch.save` writes are read:

- the zip archive of torch >= 1.6 (`<root>/data.pkl`, storages in `<root>/data/<key>`);
- the legacy stream of torch 0.4-1.5 (magic number, protocol, system info, the
  pickle, its storage keys, then each storage as an int64 element count and its
  raw bytes), which is what checkpoints published before 2020 use.

The older tar layout of torch < 0.4 is not supported (refused with a clear line).

A training checkpoint also pickles the run's options: `argparse.Namespace` is the one
other name allowed, resolved to `Namespace` here (a fresh object that keeps the saved
attributes; nothing is called). `load_state_dict` reads only the storages of the state
dict it picks (a checkpoint's optimiser states and other networks are never read: a zip
member is not opened, a legacy stream's bytes are skipped).
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# storage class name -> NumPy dtype (little-endian, as torch writes on every platform kzoo runs on)
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "BFloat16Storage": "bfloat16",
}


class _Frozen:
    """An allowed global: the pickle may call it but never change it (BUILD refused)."""

    __slots__ = ()

    def __setstate__(self, state):
        raise KzooError("refusing a pickle that modifies an allowed global")

    def __setattr__(self, name, value):
        raise KzooError("refusing a pickle that modifies an allowed global")


class _StorageType(_Frozen):
    """Stands for a `torch.<X>Storage` class in the pickle: only its dtype is used."""

    __slots__ = ("name",)

    def __init__(self, name):
        object.__setattr__(self, "name", name)

    @property
    def dtype(self):
        return _dtype(self.name)


class _Rebuild(_Frozen):
    """Stands for an allowed `torch._utils` function."""

    __slots__ = ("func",)

    def __init__(self, func):
        object.__setattr__(self, "func", func)

    def __call__(self, *args):
        return self.func(*args)


def _dtype(storage_name):
    code = STORAGE_DTYPES[storage_name]
    if code == "bfloat16":
        import ml_dtypes  # ships with TensorFlow and JAX

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(code)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """`torch._utils._rebuild_tensor_v2`: a view of `storage`, copied into its own array
    (a legacy file's storage bytes follow the pickle: then the rebuild waits for them)."""
    if isinstance(storage, _LazyStorage):
        return _LazyTensor(storage, (storage_offset, size, stride))
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or storage_offset < 0:
        raise KzooError(f"a tensor has an invalid layout (size {size}, stride {stride})")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    from kzoo.hub.archive import max_preset_bytes

    if math.prod(size) * storage.itemsize > max_preset_bytes():  # e.g. stride-0 broadcasts
        raise KzooError(f"a tensor of shape {size} exceeds the cap of {max_preset_bytes():,} "
                        "bytes (KZOO_MAX_PRESET_BYTES)")
    last = storage_offset + sum((n - 1) * st for n, st in zip(size, stride))
    if last >= storage.size:
        raise KzooError(f"a tensor reaches element {last} of a storage of {storage.size} "
                        "(the file is damaged)")
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=tuple(st * storage.itemsize for st in stride),
                                           writeable=False)
    return np.array(view)


def _rebuild_parameter(data, *_ignored):
    """`torch._utils._rebuild_parameter[_with_state]`: a parameter is its data."""
    return data


class Namespace:
    """Stands for `argparse.Namespace` (a training script's options saved beside its
    weights, e.g. rosinality's stylegan2-pytorch `train.py` checkpoints): the pickle may
    create one and give it its attributes once (BUILD with a dict); nothing else runs."""

    __slots__ = ("options",)

    def __setstate__(self, state):
        if not isinstance(state, dict) or any(not isinstance(k, str) for k in state) or \
                hasattr(self, "options"):
            raise KzooError("refusing a pickle that builds an argparse.Namespace oddly")
        object.__setattr__(self, "options", dict(state))

    def __getattr__(self, name):
        options = object.__getattribute__(self, "options") if name != "options" else {}
        if name in options:
            return options[name]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        raise KzooError("refusing a pickle that modifies an argparse.Namespace")

    def __repr__(self):
        return f"Namespace({', '.join(f'{k}={v!r}' for k, v in getattr(self, 'options', {}).items())})"


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): Namespace,
    ("torch._utils", "_rebuild_tensor_v2"): _Rebuild(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Rebuild(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Rebuild(_rebuild_parameter),
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _TensorUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` globals; a storage comes from `load_storage(key, dtype, numel)`."""

    def __init__(self, stream, where: str, load_storage=None):
        super().__init__(stream)
        self.where = where
        self.load_storage = load_storage
        self.storages = {}

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise KzooError(f"refusing to load {self.where}: its pickle calls {module}.{name} "
                            "(only tensor data is allowed)")
        return found

    def persistent_load(self, pid):
        if self.load_storage is None or not isinstance(pid, tuple) or len(pid) < 5 \
                or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise KzooError(f"refusing to load {self.where}: unexpected persistent id "
                            f"{str(pid)[:80]}")
        key, numel = str(pid[2]), int(pid[4])
        if key not in self.storages:
            self.storages[key] = self.load_storage(key, pid[1].dtype, numel)
        storage = self.storages[key]
        view = pid[5] if len(pid) > 5 else None
        if view:  # legacy: (view key, element offset, element count) of a shared storage
            _, offset, count = view
            return storage[int(offset):int(offset) + int(count)]
        return storage


def _unpickle(stream, where, load_storage=None):
    try:
        return _TensorUnpickler(stream, where, load_storage).load()
    except KzooError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error) as e:
        raise KzooError(f"{where} is not a readable PyTorch file ({type(e).__name__}: "
                        f"{str(e)[:120]})") from None


def _from_bytes(raw: bytes, dtype, numel, where):
    if len(raw) != numel * dtype.itemsize:
        raise KzooError(f"{where}: a storage holds {len(raw)} bytes, its header says "
                        f"{numel * dtype.itemsize} (the file is damaged)")
    return np.frombuffer(raw, dtype=dtype)


def _read_zip(path: Path, budget: int, pick=None):
    """The object of a torch zip archive; `pick(obj)` chooses the part whose storages are
    read (the others' archive members are never opened)."""
    where = path.name
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise KzooError(f"{where}: a torch zip archive holds one <root>/data.pkl, found "
                            f"{len(pickles)}")
        root = pickles[0].split("/")[0]
        total = sum(info.file_size for info in zf.infolist())
        if total > budget:
            raise KzooError(f"{where} unpacks to {total:,} bytes, more than the cap of {budget:,} "
                            "(KZOO_MAX_PRESET_BYTES)")
        found = {}

        def load_storage(key, dtype, numel):
            if f"{root}/data/{key}" not in names:
                raise KzooError(f"{where}: storage {key} is missing from the archive")
            found[key] = (dtype, numel)
            return _LazyStorage(key, dtype, numel)

        obj = _unpickle(io.BytesIO(zf.read(pickles[0])), where, load_storage)
        obj = pick(obj) if pick else obj
        arrays = {key: _from_bytes(zf.read(f"{root}/data/{key}"), *found[key], where)
                  for key in _storage_keys(obj)}
        return _resolve(obj, arrays, where)


class _LazyStorage:
    """A legacy storage: its bytes follow the pickle, so tensors are rebuilt afterwards."""

    def __init__(self, key, dtype, numel, offset=0):
        self.key, self.dtype, self.numel, self.offset = key, dtype, numel, offset

    def __getitem__(self, view: slice):  # a legacy view into a shared storage
        return _LazyStorage(self.key, self.dtype, self.numel, self.offset + view.start)


class _LazyTensor:
    def __init__(self, storage, args):
        self.storage, self.args = storage, args


def _storage_keys(obj) -> set:
    """The storages the lazy tensors in `obj` use."""
    if isinstance(obj, _LazyTensor):
        return {obj.storage.key}
    if isinstance(obj, dict):
        return set().union(*map(_storage_keys, obj.values()))
    if isinstance(obj, (list, tuple)):
        return set().union(*map(_storage_keys, obj))
    return set()


def _read_legacy(data: bytes, where: str, pick=None):
    stream = io.BytesIO(data)
    try:
        magic = _unpickle(stream, where)
        protocol = _unpickle(stream, where)
        _unpickle(stream, where)  # system info: byte order, type sizes
    except KzooError as e:
        if str(e).startswith("refusing"):
            raise
        raise KzooError(f"{where} is neither a PyTorch zip archive nor a torch.save stream of "
                        "torch 0.4-1.5 (the tar files of torch < 0.4 are not supported)") from None
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise KzooError(f"{where} is not a PyTorch file (bad magic number or protocol)")
    found = {}

    def load_storage(key, dtype, numel):
        found[key] = (dtype, numel)
        return _LazyStorage(key, dtype, numel)

    obj = _unpickle(stream, where, load_storage)
    keys = _unpickle(stream, where)
    if not isinstance(keys, list):
        raise KzooError(f"{where}: the storage key list is missing (the file is damaged)")
    obj = pick(obj) if pick else obj
    needed = _storage_keys(obj)
    arrays = {}
    for key in map(str, keys):
        if key not in found:
            raise KzooError(f"{where}: storage {key} is listed but no tensor uses it")
        dtype, numel = found[key]
        head = stream.read(8)
        count = struct.unpack("<q", head)[0] if len(head) == 8 else -1
        if count != numel:
            raise KzooError(f"{where}: storage {key} has {count} elements, its tensors say {numel} "
                            "(the file is damaged)")
        if key in needed:
            arrays[key] = _from_bytes(stream.read(count * dtype.itemsize), dtype, count, where)
        else:  # a storage of a part not picked: skipped unread
            stream.seek(count * dtype.itemsize, io.SEEK_CUR)
    if stream.tell() > len(data):
        raise KzooError(f"{where}: the file ends inside a storage (the file is damaged)")
    return _resolve(obj, arrays, where)


def _resolve(obj, arrays, where):
    if isinstance(obj, _LazyTensor):
        s = obj.storage
        if s.key not in arrays:
            raise KzooError(f"{where}: storage {s.key} is never stored (the file is damaged)")
        return _rebuild_tensor(arrays[s.key][s.offset:], *obj.args)
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v, arrays, where)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, arrays, where) for v in obj)
    return obj


# --- entry points ----------------------------------------------------------------

def _check_size(path: Path) -> int:
    from kzoo.hub.archive import max_preset_bytes

    budget = max_preset_bytes()
    if not path.is_file():
        raise KzooError(f"{path}: no such file")
    size = path.stat().st_size
    if size > budget:
        raise KzooError(f"{path.name}: {size:,} bytes, more than the cap of {budget:,} "
                        "(set KZOO_MAX_PRESET_BYTES to allow more)")
    return budget


def load_torch(path, pick=None) -> dict:
    """The object a `torch.save` file holds (a state dict: names -> NumPy arrays).

    Args:
        path: a `.pth` / `.pt` / `.bin` file written by `torch.save`.
        pick: None, or a function of the unpickled object (its tensors not yet read)
            returning the part to read and return (e.g. `lambda ckpt: ckpt["g_ema"]`):
            the storages of the rest are never read.

    Returns:
        The unpickled object with every tensor as a NumPy array (a state dict is
        an `OrderedDict` of name -> array).

    Raises:
        KzooError: the file is larger than `KZOO_MAX_PRESET_BYTES`, not a torch
            file, damaged, or its pickle names anything but tensor rebuilding.

    Example::

        state = load_torch("latest_net_G.pth")
        state["model.1.weight"].shape
        # (64, 3, 7, 7)
    """
    return _load(path, pick)


def _load(path, pick=None):
    path = Path(path)
    budget = _check_size(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path, budget, pick)
    return _read_legacy(path.read_bytes(), path.name, pick)


def load_safetensors(path) -> dict:
    """The tensors of a `.safetensors` file as NumPy arrays (the `safetensors` NumPy API)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    _check_size(path)
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as e:
        raise KzooError(f"{path.name} is not a readable safetensors file ({str(e)[:120]})") from None


# What a checkpoint wraps its state dict in (the first found is read): "state_dict",
# "model"; Real-ESRGAN's "params_ema" before "params" (RealESRGANer, realesrgan/utils.py);
# rosinality's stylegan2-pytorch "g_ema", the EMA generator its generate.py loads
# (generate.py:76), beside "g", "d", optimiser states and "args" (train.py:318-329).
WRAPPERS = ("state_dict", "model", "params_ema", "params", "g_ema")


def _pick_state_dict(state):
    for wrapper in WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict) and \
                not all(isinstance(v, (np.ndarray, _LazyTensor)) for v in state.values()):
            state = state[wrapper]
    return state


def load_state_dict(path) -> dict[str, np.ndarray]:
    """A flat `{name: array}` state dict from a `.safetensors` or `torch.save` file.

    A checkpoint that wraps its state dict (`{"state_dict": {...}}`, `{"model": ...}`,
    `WRAPPERS`; a dict whose values are not all tensors) is unwrapped -- only the storages
    of the state dict read are loaded --
    and a `module.` prefix (a model saved inside `DataParallel`) dropped.
    """
    path = Path(path)
    state = load_safetensors(path) if path.suffix == ".safetensors" else \
        _load(path, _pick_state_dict)
    state = _pick_state_dict(state)
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
        raise KzooError(f"{path.name} holds no state dict (a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def shape_mismatches(expected, state, what) -> list[str]:
    """Every difference between `state` and `expected` ({name: shape}, in reference order):
    missing parameters and wrong shapes in that order, then names `what` (e.g. "rrdbnet",
    "the generator") does not have."""
    problems = []
    for name, shape in expected.items():
        if name not in state:
            problems.append(f"{name} {shape} is missing")
        elif tuple(state[name].shape) != shape:
            problems.append(f"{name} is {tuple(state[name].shape)}, {what} has {shape}")
    return problems + [f"{name} is not a parameter of {what}" for name in state if name not in expected]


def mismatch_error(arch, problems, close, n) -> KzooError:
    """The one-line error of a state dict that does not fit architecture `arch`: its first
    mismatch, how many there are, and the closest architecture `close` (`n` mismatches;
    0: the state dict is that architecture exactly). Every converter's `check` raises it."""

    def count(k):
        return f"{k} mismatch" + ("" if k == 1 else "es")

    hint = (f"; it is a {close} state dict (--arch {close})" if n == 0 else
            f"; the closest architecture is {close} ({count(n)})")
    return KzooError(f"the state dict does not match --arch {arch}: {problems[0]} "
                     f"({count(len(problems))} in all){hint}")
