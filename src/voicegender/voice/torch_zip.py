"""Read a ``torch.save`` state dict (PyTorch's zip format) into numpy arrays, without torch.

A ``torch.save`` file of PyTorch >= 1.6 is a zip archive::

    <root>/data.pkl     the pickled object (here: a dict or OrderedDict of name -> tensor)
    <root>/data/<key>   the raw bytes of each storage, no header
    <root>/byteorder    "little" or "big"; absent in older files, which are little-endian
    <root>/version      the format version

In ``data.pkl`` each tensor is a call ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
requires_grad, backward_hooks[, metadata])`` whose ``storage`` is a *persistent id* ``("storage", torch.XxxStorage,
key, location, numel)``. The unpickler here resolves only the globals a plain state dict needs (``OrderedDict``, the
storage classes, the two rebuild functions) and maps them onto numpy; any other global is refused before anything
runs, so a hostile pickle cannot execute code. Tensors are read lazily: :class:`StateDictFile` lists them from the
pickle, and each array is read from its storage when asked for (the speaker encoder copies one tensor at a time into
its weights buffer instead of holding the whole checkpoint twice); :func:`read_state_dict` reads them all.
"""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

# torch's storage class names (what data.pkl refers to) -> numpy dtype, byte order left to the file's
STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "ComplexFloatStorage": "c8", "ComplexDoubleStorage": "c16",
}  # BFloat16Storage is left out on purpose: numpy has no bfloat16, and raw bit patterns would pass as numbers


@dataclass(frozen=True)
class _Storage:
    member: str  # zip member holding the storage's bytes
    dtype: np.dtype  # with the file's byte order
    numel: int


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's values lie: a view (offset, shape, strides in elements, as in torch) of a storage."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype.newbyteorder("=")


class _StorageType:
    """Stands for a ``torch.XxxStorage`` class in the pickle: only its element type matters here."""

    def __init__(self, name: str) -> None:
        self.name, self.code = name, STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage: _Storage, storage_offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                       backward_hooks: Any = None, metadata: Any = None) -> TensorInfo:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    shape, strides = tuple(int(n) for n in size), tuple(int(s) for s in stride)
    if len(shape) != len(strides) or storage_offset < 0 or any(n < 0 for n in shape) or any(s < 0 for s in strides):
        raise pickle.UnpicklingError(f"a tensor view with size {shape}, stride {strides}, offset {storage_offset}")
    if all(n > 0 for n in shape):  # an empty tensor reads nothing; any other view must stay inside its storage
        last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        if last >= storage.numel:
            raise pickle.UnpicklingError(f"a tensor view reaches element {last} of a storage of {storage.numel}")
    return TensorInfo(storage, int(storage_offset), shape, strides)


def _rebuild_parameter(data: TensorInfo, requires_grad: bool = False, backward_hooks: Any = None,
                       state: Any = None) -> TensorInfo:
    return data  # an nn.Parameter is its data here


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, root: str, sizes: dict[str, int], byteorder: str) -> None:
        super().__init__(file)
        self.root, self.sizes = root, sizes
        self.endian = "<" if byteorder == "little" else ">"

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a state dict")
        return _ALLOWED[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:80]}")
        _, kind, key, _location, numel = pid
        member = f"{self.root}/data/{key}"
        dtype = np.dtype(self.endian + kind.code)
        if self.sizes.get(member) != int(numel) * dtype.itemsize:  # checked before any byte is read
            raise pickle.UnpicklingError(f"storage {key}: {self.sizes.get(member)} bytes in the file, "
                                         f"{numel} x {dtype.itemsize} expected")
        return _Storage(member, dtype, int(numel))


class StateDictFile:
    """An open ``torch.save`` state dict: ``names()``, ``info(name)``, ``read(name)`` (a numpy array), ``items()``.

    Use as a context manager (it holds the zip file open). Raises :class:`~voicegender.errors.ModelError` naming the
    file for anything that is not a plain state dict of dense tensors.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise ModelError(f"{self.path}: not a torch checkpoint ({e})") from e
        try:
            self._tensors = self._read_pickle()
        except BaseException:
            self._zip.close()
            raise
        self._cache: tuple[str, np.ndarray] | None = None  # the last storage read (views of one storage follow)

    def _read_pickle(self) -> collections.OrderedDict[str, TensorInfo]:
        sizes = {info.filename: info.file_size for info in self._zip.infolist()}
        pickles = [name for name in sizes if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ModelError(f"{self.path}: not a torch checkpoint (no single <root>/data.pkl in the zip)")
        root = pickles[0].split("/")[0]
        byteorder = "little"
        if f"{root}/byteorder" in sizes:
            byteorder = self._zip.read(f"{root}/byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ModelError(f"{self.path}: unknown byte order {byteorder[:20]!r}")
        try:
            with self._zip.open(pickles[0]) as f:
                obj = _Unpickler(f, root, sizes, byteorder).load()
        except Exception as e:  # a damaged or hostile pickle fails in many ways; each is "not a state dict"
            raise ModelError(f"{self.path}: not a plain state dict of tensors ({e})") from e
        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, TensorInfo)
                                                for k, v in obj.items()):
            raise ModelError(f"{self.path}: holds a {type(obj).__name__}, not a dict of name -> tensor")
        return collections.OrderedDict(obj)

    def __enter__(self) -> StateDictFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._cache = None
        self._zip.close()

    def names(self) -> list[str]:
        return list(self._tensors)

    def info(self, name: str) -> TensorInfo:
        return self._tensors[name]

    def _storage(self, storage: _Storage) -> np.ndarray:
        if self._cache is None or self._cache[0] != storage.member:
            flat = np.empty(storage.numel, storage.dtype)
            try:
                with self._zip.open(storage.member) as f:
                    got = f.readinto(memoryview(flat).cast("B"))  # straight into the array: no second copy
            except (OSError, EOFError, zipfile.BadZipFile) as e:  # a damaged member (bad CRC, cut deflate stream)
                raise ModelError(f"{self.path}: cannot read {storage.member} ({e})") from e
            if got != flat.nbytes:
                raise ModelError(f"{self.path}: {storage.member} is truncated")
            if not storage.dtype.isnative:
                flat = flat.astype(storage.dtype.newbyteorder("="))
            self._cache = (storage.member, flat)
        return self._cache[1]

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a C-contiguous numpy array of its own (native byte order)."""
        info = self._tensors[name]
        if 0 in info.shape:
            return np.empty(info.shape, info.dtype)
        flat = self._storage(info.storage)
        if not info.shape:  # a 0-d tensor (BatchNorm's num_batches_tracked)
            return np.array(flat[info.offset])
        contiguous = tuple(math.prod(info.shape[i + 1:]) for i in range(len(info.shape)))
        if info.stride == contiguous and info.offset == 0 and math.prod(info.shape) == flat.size:
            self._cache = None  # the tensor is its whole storage (the usual case): hand the array over, no copy
            return flat.reshape(info.shape)
        view = np.lib.stride_tricks.as_strided(flat[info.offset:], info.shape,
                                               tuple(s * flat.itemsize for s in info.stride), writeable=False)
        return np.array(view, order="C")  # a copy: the storage may hold other tensors too

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self._tensors:
            yield name, self.read(name)


def read_state_dict(path: str | Path) -> collections.OrderedDict[str, np.ndarray]:
    """Every tensor of a ``torch.save`` state dict as name -> numpy array, in the file's order, without torch.

    The values and dtypes equal ``torch.load(path, weights_only=True)``'s byte for byte. Raises
    :class:`~voicegender.errors.ModelError` naming the file when it is not a zip checkpoint, holds anything but a dict
    of dense tensors (another global in the pickle is refused, not run), or a storage is short.
    """
    with StateDictFile(path) as f:
        return collections.OrderedDict(f.items())
