"""Restricted unpickling of network pickles: tensors and plain containers come out, code never runs.

Official StyleGAN pickles embed the source of their network classes and normally `exec` it on load.
Here every global the stream asks for goes through an allow-list of inert stand-ins (see
reference/stylegan_formats.md §1.4-1.5); anything else raises `UnsafeCheckpointError`. Sizes the
file declares are checked against the bytes actually present before anything is allocated.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Optional, Union

import numpy as np
import torch

from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError

__all__ = [
    "ConfigStandIn",
    "EasyDict",
    "PersistentRecord",
    "TFNetworkStub",
    "TorchContainerRecord",
    "safe_load_pickle",
]

_MAX_DIMS = 32
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Refused(Exception):
    """Raised inside the unpickler; turned into UnsafeCheckpointError once the file name is known."""

    def __init__(self, global_name: str, reason: Optional[str] = None):
        super().__init__(global_name)
        self.global_name = global_name
        self.reason = reason


class _Malformed(ValueError):
    """Raised inside the unpickler for structurally invalid data; becomes CheckpointError."""


# ----------------------------------------------------------------------------------------------
# Inert stand-ins for the allowed globals


class _FrozenClass(type):
    """Metaclass refusing attribute assignment, so a BUILD on the class object cannot patch it."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise _Refused(f"{cls.__module__}.{cls.__qualname__}", "a pickle may not modify an allowed class")

    def __delattr__(cls, name: str) -> None:
        raise _Refused(f"{cls.__module__}.{cls.__qualname__}", "a pickle may not modify an allowed class")


class EasyDict(dict, metaclass=_FrozenClass):
    """Stand-in for `dnnlib.util.EasyDict`: a dict with attribute access, holding nested kwargs."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:
        # Python writes an empty (or no) BUILD for dict subclasses; accept a dict, nothing else.
        if state is None:
            return
        if not isinstance(state, dict):
            raise _Malformed(f"EasyDict state must be a dict, got {type(state).__name__}")
        self.update(state)


class TFNetworkStub(EasyDict):
    """Stand-in for `dnnlib.tflib.network.Network` of legacy TF pickles.

    BUILD fills the items with the stored state (`version`, `name`, `static_kwargs`, `components`,
    `build_module_src`, `build_func_name`, `variables`); keys are also readable as attributes.
    The stored TF source is kept as a string and never executed.
    """


class _Marker(metaclass=_FrozenClass):
    """An inert token for a class that may only appear as an argument (numpy.ndarray, torch.Tensor)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refused(self.name, "a pickle may not modify an allowed global")

    def __setstate__(self, state: Any) -> None:
        raise _Refused(self.name, "a pickle may not modify an allowed global")

    def __repr__(self) -> str:
        return f"<allowed {self.name}>"


class _Allowed(metaclass=_FrozenClass):
    """An allowed callable: calls a local, checked implementation; refuses BUILD on itself."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[..., Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refused(self._name, "a pickle may not modify an allowed global")

    def __setstate__(self, state: Any) -> None:
        raise _Refused(self._name, "a pickle may not modify an allowed global")

    def __repr__(self) -> str:
        return f"<allowed {self._name}>"


class ConfigStandIn(metaclass=_FrozenClass):
    """Stand-in for an allowed configuration class (OmegaConf containers, nodes and their metadata,
    as StyleNeRF pickles hold them): the pickled `__dict__` is kept as `state`, nothing is run.

    One subclass per allowed global (`global_name` says which); readers turn them into plain values.
    """

    global_name = ""

    def __init__(self, *args: Any) -> None:
        if args:
            raise _Malformed(f"{self.global_name} takes no constructor arguments in a checkpoint")

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Refused(self.global_name, "a pickle may not set attributes of a configuration object")

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict) or "state" in self.__dict__:
            raise _Malformed(f"{self.global_name} state must be one dict")
        self.__dict__["state"] = state

    @property
    def fields(self) -> dict:
        return self.__dict__.get("state", {})

    def __repr__(self) -> str:
        return f"<{self.global_name} stand-in>"


def _config_class(global_name: str) -> type:
    return _FrozenClass(global_name.rsplit(".", 1)[1], (ConfigStandIn,), {"global_name": global_name})


@dataclass
class PersistentRecord:
    """One `torch_utils.persistence` object, kept as data: its class name, source identity and state.

    The embedded module source is never executed; only its hash and docstring are kept, which
    is enough to tell the code bases apart (§1.5).
    """

    class_name: str
    module_sha256: str
    module_doc: str
    module_has_bom: bool
    state: dict = field(repr=False)

    @property
    def modules(self) -> dict:
        """Child records by name (insertion order = registration order)."""
        mods = self.state.get("_modules") or {}
        return mods if isinstance(mods, dict) else {}

    def attr(self, name: str, default: Any = None) -> Any:
        """A plain attribute the class's __init__ stored (resolved configuration)."""
        return self.state.get(name, default)


class TorchContainerRecord(PersistentRecord, metaclass=_FrozenClass):
    """A torch container (`Sequential`, `ModuleList`, `ModuleDict`) kept as data, like a persistence record.

    Real files pickle these as plain objects (NEWOBJ of the class, then BUILD with the module's
    `__dict__`), not through `torch_utils.persistence`; this stand-in takes that `__dict__` as its
    `state`, so its `_modules` / `_parameters` / `_buffers` are walked exactly like a record's.
    No torch module is built. One subclass per allowed global; `global_name` says which.
    """

    global_name = ""

    def __new__(cls, *args: Any) -> "TorchContainerRecord":
        if args:  # NEWOBJ passes its arguments here and never calls __init__
            raise _Malformed(f"{cls.global_name} takes no constructor arguments in a checkpoint")
        return super().__new__(cls)

    def __init__(self) -> None:
        """Fields arrive by BUILD (the dataclass constructor of PersistentRecord does not apply)."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or "state" in self.__dict__:
            raise _Malformed(f"{self.global_name} state must be one dict (the module's __dict__)")
        self.__dict__.update(class_name=self.global_name.rsplit(".", 1)[1], module_sha256="", module_doc="",
                             module_has_bom=False, state=state)


def _container_class(global_name: str) -> type:
    return _FrozenClass(global_name.rsplit(".", 1)[1], (TorchContainerRecord,), {"global_name": global_name})


# ----------------------------------------------------------------------------------------------
# Tensors and storages


class _Storage(metaclass=_FrozenClass):
    """A storage parsed from a legacy blob: a flat tensor of its element type."""

    __slots__ = ("data",)

    def __init__(self, data: torch.Tensor):
        object.__setattr__(self, "data", data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _Malformed("a pickle may not modify a storage")

    def __setstate__(self, state: Any) -> None:
        raise _Malformed("a pickle may not modify a storage")


_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _StorageType(_Marker):
    __slots__ = ("dtype",)

    def __init__(self, name: str, dtype: torch.dtype):
        super().__init__(name)
        object.__setattr__(self, "dtype", dtype)


_STORAGE_TYPES = {name: _StorageType(f"torch.{name}", dtype) for name, dtype in _STORAGE_DTYPES.items()}


def _check_int(value: Any, what: str) -> int:
    if type(value) is not int:  # bool and int subclasses are not sizes
        raise _Malformed(f"{what} must be an int, got {type(value).__name__}")
    return value


def _check_shape(values: Any, what: str) -> tuple[int, ...]:
    if isinstance(values, torch.Size):
        values = tuple(values)
    if not isinstance(values, (tuple, list)) or len(values) > _MAX_DIMS:
        raise _Malformed(f"{what} must be a tuple of at most {_MAX_DIMS} ints")
    out = tuple(_check_int(v, what) for v in values)
    if any(v < 0 for v in out):
        raise _Malformed(f"{what} {out} has negative entries")
    return out


class _InnerUnpickler(pickle.Unpickler):
    """Unpickler for the nested legacy `torch.save` blob: only typed-storage classes, one storage id."""

    def __init__(self, file: BinaryIO, declared: dict[str, tuple[torch.dtype, int]]):
        super().__init__(file)
        self._declared = declared

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise _Malformed("unexpected persistent id in a tensor storage blob")
        storage_type, key, location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise _Malformed("storage blob names no typed storage class")
        if not isinstance(key, str) or not isinstance(location, str):
            raise _Malformed("storage key and location must be strings")
        if view is not None:
            raise _Malformed("storage views are not supported in tensor blobs")
        numel = _check_int(numel, "storage element count")
        if numel < 0:
            raise _Malformed(f"negative storage element count {numel}")
        self._declared[key] = (storage_type.dtype, numel)
        return key


def _load_one(stream: io.BytesIO, declared: dict[str, tuple[torch.dtype, int]]) -> Any:
    return _InnerUnpickler(stream, declared).load()


def _load_from_bytes(blob: Any) -> _Storage:
    """Parse the legacy (non-zip) `torch.save` blob of one storage (§1.4) without torch.load."""
    if not isinstance(blob, (bytes, bytearray)):
        raise _Malformed("tensor storage blob must be bytes")
    stream = io.BytesIO(blob)
    declared: dict[str, tuple[torch.dtype, int]] = {}
    if _load_one(stream, declared) != _LEGACY_MAGIC:
        raise _Malformed("tensor storage blob has a wrong magic number")
    if _load_one(stream, declared) != _LEGACY_PROTOCOL:
        raise _Malformed("tensor storage blob has an unsupported protocol version")
    sys_info = _load_one(stream, declared)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise _Malformed("tensor storage blob is not little-endian")
    root_key = _load_one(stream, declared)
    keys = _load_one(stream, declared)
    if not isinstance(keys, list) or keys != [root_key] or root_key not in declared:
        raise _Malformed("tensor storage blob must hold exactly one storage")
    dtype, numel = declared[root_key]
    header = stream.read(8)
    if len(header) != 8:
        raise _Malformed("tensor storage blob is truncated")
    count = int.from_bytes(header, "little", signed=True)
    if count != numel:
        raise _Malformed(f"tensor storage declares {numel} elements but its data header says {count}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    nbytes = count * itemsize
    start = stream.tell()
    present = len(blob) - start
    if nbytes > present:
        raise _Malformed(f"tensor storage declares {count} elements ({nbytes} bytes) but only {present} bytes are present")
    if nbytes == 0:
        return _Storage(torch.empty(0, dtype=dtype))
    data = torch.frombuffer(bytearray(memoryview(blob)[start:start + nbytes]), dtype=dtype)
    return _Storage(data)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """Assemble a tensor view after checking that every element it reaches lies inside the storage."""
    if not isinstance(storage, _Storage):
        raise _Malformed("tensor is not backed by a storage blob")
    offset = _check_int(storage_offset, "tensor storage offset")
    size_t = _check_shape(size, "tensor size")
    stride_t = _check_shape(stride, "tensor stride")
    if len(size_t) != len(stride_t):
        raise _Malformed(f"tensor size {size_t} and stride {stride_t} differ in length")
    if offset < 0:
        raise _Malformed(f"negative tensor storage offset {offset}")
    available = storage.data.numel()
    numel = math.prod(size_t)
    if numel > available:
        raise _Malformed(f"tensor declares {numel} elements {size_t} but its storage holds {available}")
    if numel > 0:
        last = offset + sum((s - 1) * st for s, st in zip(size_t, stride_t))
        if last >= available:
            raise _Malformed(f"tensor of size {size_t}, stride {stride_t}, offset {offset} reaches outside its storage of {available} elements")
    elif offset > available:
        raise _Malformed(f"tensor storage offset {offset} lies outside its storage of {available} elements")
    return storage.data.as_strided(size_t, stride_t, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *state: Any) -> torch.Tensor:
    """Parameters come back as plain tensors; the network decides what is a parameter."""
    if not isinstance(data, torch.Tensor):
        raise _Malformed("parameter data is not a tensor")
    return data


_TENSOR_TYPES = {
    ("torch._tensor", "Tensor"): _Marker("torch._tensor.Tensor"),
    ("torch", "Tensor"): _Marker("torch.Tensor"),
    ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.parameter.Parameter"),
}


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any = None) -> torch.Tensor:
    if not isinstance(func, _Allowed) or func._fn not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise _Malformed("tensor rebuild names an unexpected function")
    if new_type not in _TENSOR_TYPES.values():
        raise _Malformed("tensor rebuild names an unexpected tensor type")
    if not isinstance(args, tuple):
        raise _Malformed("tensor rebuild arguments must be a tuple")
    return func(*args)


# ----------------------------------------------------------------------------------------------
# numpy


_NDARRAY = _Marker("numpy.ndarray")


def _refuse_object_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise _Refused("numpy.dtype", "numpy object arrays can hold arbitrary objects; only numeric arrays are allowed")


def _np_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """numpy.dtype for plain type codes; always a private copy so BUILD cannot patch a shared one."""
    if not isinstance(obj, str):
        raise _Malformed("numpy dtype must be given by a type string")
    dtype = np.dtype(obj, align=bool(align), copy=True)
    _refuse_object_dtype(dtype)
    return dtype


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype):
        raise _Malformed("numpy scalar without a dtype")
    _refuse_object_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Malformed("numpy scalar data does not match its dtype")
    return np.frombuffer(data, dtype=dtype)[0].copy()


class _GuardedArray(np.ndarray):
    """ndarray whose unpickling state is validated (numeric dtype, data length matching the shape)."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Malformed("invalid numpy array state")
        shape, dtype, _fortran, raw = state[-4:]
        shape = _check_shape(shape, "numpy array shape")
        if not isinstance(dtype, np.dtype):
            raise _Malformed("numpy array without a dtype")
        _refuse_object_dtype(dtype)
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != math.prod(shape) * dtype.itemsize:
            raise _Malformed("numpy array data does not match its shape")
        super().__setstate__(state)


def _np_reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> np.ndarray:
    if cls is not _NDARRAY:
        raise _Malformed("numpy array of an unexpected class")
    return np.ndarray.__new__(_GuardedArray, (0,), np.int8)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """Protocol-5 arrays: `_frombuffer(buffer, dtype, shape, order)`, checked like the others."""
    if isinstance(buf, pickle.PickleBuffer):
        buf = bytes(buf.raw())
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or order not in ("C", "F"):
        raise _Malformed("invalid numpy array buffer")
    _refuse_object_dtype(dtype)
    shape = _check_shape(shape, "numpy array shape")
    if len(buf) != math.prod(shape) * dtype.itemsize:
        raise _Malformed("numpy array data does not match its shape")
    return np.frombuffer(bytearray(buf), dtype=dtype).reshape(shape, order=order)


# OmegaConf metadata names types as values (object_type=dict, key_type=int, ...): inert markers.
_BUILTIN_TYPES = {t: _Marker(f"builtins.{t}") for t in ("dict", "list", "str", "int", "float", "bool")}


def _defaultdict(default_factory: Any = None) -> dict:
    """`collections.defaultdict(factory)` (OmegaConf's `Metadata.resolver_cache`) read as a plain dict.

    The factory is never called; it may only be one of the inert builtin-type markers (or None).
    """
    if default_factory is not None and not any(default_factory is m for m in _BUILTIN_TYPES.values()):
        raise _Refused("collections.defaultdict", "a defaultdict's factory may only be a builtin type")
    return {}


def _codecs_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode", "only latin-1 encoding of text (protocol-2 bytes) is allowed")
    return obj.encode("latin-1")


# ----------------------------------------------------------------------------------------------
# Persistence records


def _module_doc(src: str, max_lines: int = 20) -> str:
    """First paragraph of the module docstring, found textually (the source is never parsed or run)."""
    lines = src.lstrip("\ufeff").splitlines()
    for idx, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        s = s.lstrip("rRuU")
        quote = s[:3]
        if quote not in ('"""', "'''"):
            return ""
        body = [s[3:]]
        for extra in lines[idx + 1: idx + max_lines]:
            if quote in body[-1]:
                break
            body.append(extra.strip())
        text = " ".join(body).split(quote)[0]
        return " ".join(text.split())[:300]
    return ""


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stand-in for the persistence hook: keep the record as data, never exec its source."""
    if not isinstance(meta, dict):
        raise _Malformed("persistent object metadata is not a dict")
    if meta.get("type") != "class":
        raise _Malformed(f"persistent object of type {meta.get('type')!r}; only 'class' records are supported")
    if meta.get("version") != 6:
        raise _Malformed(f"persistence format version {meta.get('version')!r}; only version 6 is supported")
    class_name, src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(src, str) or not isinstance(state, dict):
        raise _Malformed("persistent object record lacks class_name, module_src or state")
    return PersistentRecord(
        class_name=class_name,
        module_sha256=hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest(),
        module_doc=_module_doc(src),
        module_has_bom=src.startswith("\ufeff"),
        state=state,
    )


# ----------------------------------------------------------------------------------------------
# The allow-list


def _allow(name: str, fn: Callable[..., Any]) -> _Allowed:
    return _Allowed(name, fn)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"):
        _allow("torch_utils.persistence._reconstruct_persistent_obj", _reconstruct_persistent_obj),
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
    ("torch._utils", "_rebuild_tensor_v2"): _allow("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _allow("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"):
        _allow("torch._utils._rebuild_parameter_with_state", _rebuild_parameter),
    ("torch._tensor", "_rebuild_from_type_v2"): _allow("torch._tensor._rebuild_from_type_v2", _rebuild_from_type_v2),
    ("torch.storage", "_load_from_bytes"): _allow("torch.storage._load_from_bytes", _load_from_bytes),
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("collections", "defaultdict"): _allow("collections.defaultdict", _defaultdict),
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol-2 pickles written by Python 3 use Python 2 names
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _allow("_codecs.encode", _codecs_encode),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _allow("numpy.dtype", _np_dtype),
    **_TENSOR_TYPES,
}
for _np_mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_np_mod, "scalar")] = _allow(f"{_np_mod}.scalar", _np_scalar)
    _ALLOWED[(_np_mod, "_reconstruct")] = _allow(f"{_np_mod}._reconstruct", _np_reconstruct)
    _ALLOWED[(_np_mod, "ndarray")] = _NDARRAY
    _ALLOWED[(_np_mod, "dtype")] = _ALLOWED[("numpy", "dtype")]
for _np_mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_np_mod, "_frombuffer")] = _allow(f"{_np_mod}._frombuffer", _np_frombuffer)
# StyleNeRF's configuration objects (reference/encoders_clip_nerf.md C.1): inert stand-ins.
for _cfg in ("omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.nodes.AnyNode",
             "omegaconf.nodes.StringNode", "omegaconf.nodes.IntegerNode", "omegaconf.nodes.FloatNode",
             "omegaconf.nodes.BooleanNode", "omegaconf.base.Metadata", "omegaconf.base.ContainerMetadata"):
    _ALLOWED[tuple(_cfg.rsplit(".", 1))] = _config_class(_cfg)
_ALLOWED[("typing", "Any")] = _Marker("typing.Any")
# Torch containers inside network records (StyleNeRF's upsampler `adapter`, its NeRF `blocks`).
for _container in ("Sequential", "ModuleList", "ModuleDict"):
    _ALLOWED[("torch.nn.modules.container", _container)] = _container_class(f"torch.nn.modules.container.{_container}")
for _type, _marker in _BUILTIN_TYPES.items():
    _ALLOWED[("builtins", _type)] = _marker


class _SafeUnpickler(pickle.Unpickler):
    """The outer unpickler: globals resolve only through the allow-list; no persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found


def _load(file: BinaryIO, name: str) -> Any:
    try:
        return _SafeUnpickler(file).load()
    except _Refused as exc:
        raise UnsafeCheckpointError(name, exc.global_name, exc.reason) from None
    except _Malformed as exc:
        raise CheckpointError(name, f"invalid checkpoint data: {exc}") from None
    except CheckpointError:
        raise
    except EOFError:
        raise CheckpointError(name, "the pickle ends early: the file is truncated or empty") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError, RecursionError, UnicodeError, RuntimeError, OSError) as exc:
        raise CheckpointError(name, f"not a readable pickle, or corrupt ({type(exc).__name__}: {exc})") from None


def safe_load_pickle(path_or_fileobj: Union[str, "os.PathLike[str]", BinaryIO]) -> Any:
    """Unpickle a checkpoint as data only; refuse any global outside the allow-list.

    Persistence records come back as `PersistentRecord` (torch containers as its subclass
    `TorchContainerRecord`), EasyDicts as `EasyDict`, TF networks as
    `TFNetworkStub`, tensors as CPU tensors, numpy values as numpy values.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        name = os.fspath(path_or_fileobj)
        try:
            with open(name, "rb") as file:
                return _load(file, name)
        except OSError as exc:
            raise CheckpointError(name, f"cannot read the file ({exc.strerror or exc})") from None
    name = str(getattr(path_or_fileobj, "name", "<stream>"))
    return _load(path_or_fileobj, name)
