"""Pickles a checkpoint reader must refuse: code execution gadgets and lying tensor sizes.

Each `write_*` function writes one file and returns what the refusal must name (the global as
it appears in the stream). Every gadget would create `marker` if it ever ran, so a test can
prove nothing was executed.
"""
from __future__ import annotations

import os
import pickle
import subprocess
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _body(obj: Any) -> bytes:
    """Opcodes of `obj` without the PROTO header and STOP, for splicing into a crafted stream."""
    data = pickle.dumps(obj, protocol=2)
    assert data[:2] == b"\x80\x02" and data[-1:] == b"."
    return data[2:-1]


def call_global(module: str, name: str, args: tuple) -> bytes:
    """A protocol-2 pickle that calls `module.name(*args)` (args: plain data) when loaded."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + _body(args) + b"R."


def _write(path: Any, data: bytes) -> None:
    Path(path).write_bytes(data)


# ---------------------------------------------------------------------------------------------
# Code-execution gadgets (must raise UnsafeCheckpointError naming the global)


def write_os_system(path: Any, marker: Any) -> str:
    _write(path, call_global("os", "system", (f"touch {marker}",)))
    return "os.system"


def write_builtins_exec(path: Any, marker: Any) -> str:
    _write(path, call_global("builtins", "exec", (f"open({str(marker)!r}, 'w').write('ran')",)))
    return "builtins.exec"


def write_builtins_eval(path: Any, marker: Any) -> str:
    _write(path, call_global("builtins", "eval", (f"__import__('os').system('touch {marker}')",)))
    return "builtins.eval"


def write_subprocess_popen(path: Any, marker: Any) -> str:
    _write(path, call_global("subprocess", "Popen", (["touch", str(marker)],)))
    return "subprocess.Popen"


class _SystemCall:
    """Pickles as a call to os.system, the way a malicious model file is usually made."""

    def __init__(self, marker: Any):
        self.command = f"touch {marker}"

    def __reduce__(self) -> Any:
        return (os.system, (self.command,))


class _PopenCall:
    def __init__(self, marker: Any):
        self.argv = ["touch", str(marker)]

    def __reduce__(self) -> Any:
        return (subprocess.Popen, (self.argv,))


def write_reduce_system(path: Any, marker: Any) -> str:
    """Plain `pickle.dump` of an object whose __reduce__ is os.system (names posix.system on Linux)."""
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _SystemCall(marker)}, f, protocol=4)
    return f"{os.system.__module__}.system"


def write_nested_in_official(path: Any, marker: Any, G: torch.nn.Module, init_kwargs: dict) -> str:
    """A valid official snapshot with a Popen gadget hidden in G_ema's module state."""
    from .official_pickle import write_official_pickle

    write_official_pickle(path, G, init_kwargs, "sg3", inject={"_extra_state": _PopenCall(marker)})
    return "subprocess.Popen"


def write_inner_blob_global(path: Any, marker: Any) -> str:
    """A tensor storage blob whose nested legacy pickle calls os.system."""
    blob = legacy_blob(1, data=b"\0" * 4, sys_info_pickle=call_global("os", "system", (f"touch {marker}",)))
    _write(path, _tensor_pickle(blob, 0, (1,), (1,)))
    return "os.system"


def write_outer_storage_class(path: Any, marker: Any) -> str:
    """A typed storage class outside a storage blob (would allocate whatever size it is given)."""
    _write(path, call_global("torch", "FloatStorage", (1 << 40,)))
    return "torch.FloatStorage"


def write_getattr_gadget(path: Any, marker: Any) -> str:
    """builtins.getattr, the usual first step of attribute-chain gadgets."""
    _write(path, call_global("builtins", "getattr", ("x", "upper")))
    return "builtins.getattr"


def write_object_array(path: Any, marker: Any) -> str:
    """A numpy object array (its elements could be anything); refused at its dtype."""
    with open(path, "wb") as f:
        pickle.dump({"arr": np.array([1, "two", None], dtype=object)}, f, protocol=3)
    return "numpy.dtype"


def write_container_gadget(path: Any, marker: Any) -> str:
    """A torch `Sequential`, pickled as a plain torch object like StyleNeRF's `adapter`, holding an
    os.system call among its sub-modules."""
    seq = torch.nn.Sequential.__new__(torch.nn.Sequential)
    seq.__dict__.update(training=False, _parameters=OrderedDict(), _buffers=OrderedDict(),
                        _modules=OrderedDict([("0", _SystemCall(marker))]))
    with open(path, "wb") as f:
        pickle.dump({"G_ema": seq}, f, protocol=4)
    return f"{os.system.__module__}.system"


CODE_GADGETS: dict[str, Callable[[Any, Any], str]] = {
    "os_system": write_os_system,
    "builtins_exec": write_builtins_exec,
    "builtins_eval": write_builtins_eval,
    "subprocess_popen": write_subprocess_popen,
    "reduce_system": write_reduce_system,
    "inner_blob_global": write_inner_blob_global,
    "outer_storage_class": write_outer_storage_class,
    "getattr": write_getattr_gadget,
    "object_array": write_object_array,
    "container_gadget": write_container_gadget,
}


# ---------------------------------------------------------------------------------------------
# Torch containers and defaultdicts misused (hand-written protocol-2 streams)

_SEQUENTIAL = b"\x80\x02ctorch.nn.modules.container\nSequential\n"
_DEFAULTDICT = b"\x80\x02ccollections\ndefaultdict\n"

# Each must raise CheckpointError (malformed data), never build anything.
CONTAINER_MISUSE: dict[str, bytes] = {
    "state_not_a_dict": _SEQUENTIAL + b")\x81K\x01b.",  # NEWOBJ(), BUILD with the int 1
    "newobj_arguments": _SEQUENTIAL + b"K\x01\x85\x81.",  # NEWOBJ with (1,)
    "called_with_arguments": _SEQUENTIAL + b"K\x01\x85R.",  # REDUCE: Sequential(1)
    "built_twice": _SEQUENTIAL + b")\x81}b}b.",  # a second BUILD replacing the state
    "class_patched": _SEQUENTIAL + b"}X\x03\x00\x00\x00badK\x01sb.",  # BUILD on the class itself
    "defaultdict_initial_items": _DEFAULTDICT + b"cbuiltins\ndict\n}\x86R.",  # defaultdict(dict, {})
}

# defaultdicts whose factory is an allowed global that is not a builtin type: refused, never called.
DEFAULTDICT_FACTORIES: dict[str, bytes] = {
    "easydict": _DEFAULTDICT + b"cdnnlib.util\nEasyDict\n\x85R.",
    "ordereddict": _DEFAULTDICT + b"ccollections\nOrderedDict\n\x85R.",
    "load_from_bytes": _DEFAULTDICT + b"ctorch.storage\n_load_from_bytes\n\x85R.",
}


# ---------------------------------------------------------------------------------------------
# Lying sizes (must raise CheckpointError before allocating)


class _StorageMarker:
    pass


_STORAGE = _StorageMarker()


class _BlobPickler(pickle.Pickler):
    def __init__(self, file: Any, pid: tuple):
        super().__init__(file, protocol=2)
        self.pid = pid

    def persistent_id(self, obj: Any) -> Optional[tuple]:
        return self.pid if obj is _STORAGE else None


def legacy_blob(numel: int, count: Optional[int] = None, data: bytes = b"", storage: Any = torch.FloatStorage,
                sys_info_pickle: Optional[bytes] = None) -> bytes:
    """A legacy `torch.save` storage blob (§1.4) whose declared sizes may lie about its data."""
    import io

    out = io.BytesIO()
    out.write(pickle.dumps(_LEGACY_MAGIC, protocol=2))
    out.write(pickle.dumps(1001, protocol=2))
    if sys_info_pickle is None:
        sys_info_pickle = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                                        "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    out.write(sys_info_pickle)
    _BlobPickler(out, ("storage", storage, "k0", "cpu", numel, None)).dump(_STORAGE)
    out.write(pickle.dumps(["k0"], protocol=2))
    out.write((numel if count is None else count).to_bytes(8, "little", signed=True))
    out.write(data)
    return out.getvalue()


class _Blob:
    def __init__(self, blob: bytes):
        self.blob = blob

    def __reduce__(self) -> Any:
        return (torch.storage._load_from_bytes, (self.blob,))


class _Tensor:
    def __init__(self, blob: bytes, offset: int, size: tuple, stride: tuple):
        self.args = (_Blob(blob), offset, size, stride, False, OrderedDict())

    def __reduce__(self) -> Any:
        return (torch._utils._rebuild_tensor_v2, self.args)


def _tensor_pickle(blob: bytes, offset: int, size: tuple, stride: tuple) -> bytes:
    return pickle.dumps({"weight": _Tensor(blob, offset, size, stride)}, protocol=3)


def write_tensor(path: Any, numel: int, offset: int, size: tuple, stride: tuple) -> None:
    """A float32 tensor on a storage of `numel` real elements with the given view geometry."""
    _write(path, _tensor_pickle(legacy_blob(numel, data=b"\0" * (4 * numel)), offset, size, stride))


def write_size_exceeds_storage(path: Any) -> None:
    write_tensor(path, 10, 0, (1000,), (1,))


def write_stride_outside_storage(path: Any) -> None:
    write_tensor(path, 10, 0, (5,), (3,))


def write_offset_outside_storage(path: Any) -> None:
    write_tensor(path, 10, 8, (4,), (1,))


def write_negative_offset(path: Any) -> None:
    write_tensor(path, 10, -1, (4,), (1,))


def write_negative_size(path: Any) -> None:
    write_tensor(path, 10, 0, (-4, 2), (1, 1))


def write_huge_blob(path: Any) -> None:
    """A storage declaring 2**40 float32 elements (4 TiB) with 16 bytes of data behind it."""
    _write(path, _tensor_pickle(legacy_blob(1 << 40, data=b"\0" * 16), 0, (4,), (1,)))


def write_overflowing_size(path: Any) -> None:
    """Sizes whose product overflows int64 on a storage of 4 elements (stride 0 keeps it 'inside')."""
    write_tensor(path, 4, 0, (1 << 62, 1 << 62), (0, 0))


SIZE_LIES: dict[str, Callable[[Any], None]] = {
    "size_exceeds_storage": write_size_exceeds_storage,
    "stride_outside_storage": write_stride_outside_storage,
    "offset_outside_storage": write_offset_outside_storage,
    "negative_offset": write_negative_offset,
    "negative_size": write_negative_size,
    "huge_blob": write_huge_blob,
    "overflowing_size": write_overflowing_size,
}


class SystemGadget:
    """An object whose unpickling would run `touch marker` through os.system (for torch.save files)."""

    def __init__(self, marker: Any):
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))
