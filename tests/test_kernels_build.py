"""The kernel build machinery with real builds of a tiny C++ module (no GPU needed, about a second each).

A minimal torch extension takes ~18 s to compile on two cores, so these tests build a plain
Python C-API module through the same path (torch's ninja builder in a child, the cache, the lock).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kernels import fingerprint, settings
from kernels.build import ensure_built, load_extension
from kernels.cache import CacheEntry
from kernels.failure import failure_reason
from kernels.spec import ExtensionSpec

REPO_ROOT = Path(__file__).resolve().parent.parent

TINY_SOURCE = """
#include <Python.h>
static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "The answer."}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef module = {PyModuleDef_HEAD_INIT, "NAME", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_NAME() { return PyModule_Create(&module); }
"""

# Loads a tiny spec (name, source) in a fresh process and prints what happened as json.
LOAD_IN_CHILD = """
import json, sys
from pathlib import Path
from kernels.build import ensure_built
from kernels.spec import ExtensionSpec
result = ensure_built(ExtensionSpec(sys.argv[1], (Path(sys.argv[2]),)))
answer = result.module.answer() if result.module else None
print(json.dumps({"status": result.status, "reason": result.reason, "answer": answer}))
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty kernel cache, kernels on, quiet, default lock timeout."""
    root = tmp_path / "kernel-cache"
    monkeypatch.setenv("STYLECORE_KERNELS_CACHE", str(root))
    for name in ("STYLECORE_KERNELS", "STYLECORE_KERNELS_VERBOSE", "STYLECORE_KERNELS_LOCK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def tiny(tmp_path: Path, request: pytest.FixtureRequest) -> ExtensionSpec:
    """A tiny module named after the test, so no two tests share a cache key or a notice."""
    name = "tiny_" + request.node.name.removeprefix("test_").replace("[", "_").replace("]", "")
    source = tmp_path / "src" / f"{name}.cpp"
    source.parent.mkdir(exist_ok=True)
    source.write_text(TINY_SOURCE.replace("NAME", name))
    return ExtensionSpec(name, (source,))


def entry_of(spec: ExtensionSpec) -> CacheEntry:
    return CacheEntry(settings.cache_root(), spec, fingerprint.digest(fingerprint.build_inputs(spec, None)))


def within(seconds: float, fn: Callable, *args):
    """fn(*args), failing the test instead of hanging when it runs longer than `seconds`."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as error:  # re-raised in the test's thread
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{fn.__name__} still running after {seconds} s: it hangs")
    if "error" in box:
        raise box["error"]
    return box["value"]


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.update(overrides)
    return env


def load_in_child(spec: ExtensionSpec, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LOAD_IN_CHILD, spec.name, str(spec.sources[0])],
                            env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hold_lock(path: Path, then_exit: bool = False) -> subprocess.Popen:
    """Another process holding the build lock (flock), sleeping, or exiting right after taking it."""
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); " + ("" if then_exit else "time.sleep(120)"))
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def cache_contents(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir()) if root.exists() else []


def test_build_then_later_process_imports_from_cache(cache: Path, tiny: ExtensionSpec):
    result = within(120, ensure_built, tiny)
    assert result.status == "built", result.reason
    assert result.module.answer() == 42
    entry = entry_of(tiny)
    assert result.path == entry.path
    assert cache_contents(entry.path) == sorted([tiny.library_name, "manifest.json"])
    assert cache_contents(cache) == sorted([entry.path.name, entry.lock_path.name])  # no temp folder left
    built = entry.library.stat()

    # A later process: no compiler and no ninja on PATH, so anything but a cache hit would fail.
    child = load_in_child(tiny, PATH="")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert json.loads(out) == {"status": "cached", "reason": "", "answer": 42}
    again = entry.library.stat()
    assert (again.st_mtime_ns, again.st_ino) == (built.st_mtime_ns, built.st_ino)


def test_lock_held_by_live_process_times_out_and_builds_privately(cache: Path, tiny: ExtensionSpec,
                                                                 monkeypatch: pytest.MonkeyPatch):
    entry = entry_of(tiny)
    cache.mkdir(parents=True)
    holder = hold_lock(entry.lock_path)
    try:
        monkeypatch.setenv("STYLECORE_KERNELS_LOCK_TIMEOUT", "1")
        started = time.monotonic()
        result = within(120, ensure_built, tiny)
        assert time.monotonic() - started >= 1.0  # it did wait for the holder first
        assert result.status == "built", result.reason
        assert result.module.answer() == 42
        assert holder.poll() is None  # still holding the lock: the build went ahead without it
    finally:
        holder.kill()
        holder.wait()
    assert entry.complete()


def test_lock_of_dead_process_does_not_block(cache: Path, tiny: ExtensionSpec):
    entry = entry_of(tiny)
    cache.mkdir(parents=True)
    holder = hold_lock(entry.lock_path, then_exit=True)
    assert holder.wait(timeout=30) == 0
    assert entry.lock_path.exists()  # the file stays; the lock died with its process
    started = time.monotonic()
    result = within(120, ensure_built, tiny)  # default timeout (600 s): must not wait at all
    assert result.status == "built", result.reason
    assert time.monotonic() - started < 60


def test_stale_torch_baton_in_cache_folder_does_not_hang(cache: Path, tiny: ExtensionSpec):
    entry = entry_of(tiny)
    entry.path.mkdir(parents=True)
    (entry.path / "lock").write_text("")  # what torch's FileBaton leaves behind after a crash
    result = within(120, ensure_built, tiny)
    assert result.status == "built", result.reason
    assert result.module.answer() == 42
    assert cache_contents(entry.path) == sorted([tiny.library_name, "manifest.json"])


def test_concurrent_builders_end_with_one_folder(cache: Path, tiny: ExtensionSpec):
    # Lock timeout 0: both compile privately and race to rename; the loser uses the winner's folder.
    children = [load_in_child(tiny, STYLECORE_KERNELS_LOCK_TIMEOUT="0") for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert all(r["answer"] == 42 and r["status"] in ("built", "cached") for r in results), results
    entry = entry_of(tiny)
    assert cache_contents(cache) == sorted([entry.path.name, entry.lock_path.name])
    assert cache_contents(entry.path) == sorted([tiny.library_name, "manifest.json"])


def test_compile_error_prints_one_line_and_leaves_nothing(cache: Path, tiny: ExtensionSpec,
                                                          capfd: pytest.CaptureFixture):
    source = tiny.sources[0]
    source.write_text(source.read_text().replace("return PyLong_FromLong(42);", "return PyLong_FromLong(42)"))
    assert within(120, load_extension, tiny) is None
    assert load_extension(tiny) is None  # the second call neither rebuilds nor repeats the notice
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"stylecore: fast C++ kernels unavailable ({tiny.name}: c++ failed: ")
    assert "error" in lines[0] and lines[0].endswith("; using the torch ops")
    assert not [p for p in cache.iterdir() if p.is_dir()]  # no half-written folder


def test_missing_compiler_prints_one_line(cache: Path, tiny: ExtensionSpec, monkeypatch: pytest.MonkeyPatch,
                                          capfd: pytest.CaptureFixture):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert within(120, load_extension, tiny) is None
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"({tiny.name}: " in lines[0], lines
    assert "c++" in lines[0] and "not found" in lines[0]
    assert not [p for p in cache.iterdir() if p.is_dir()]


def test_disabled_returns_none_silently(cache: Path, tiny: ExtensionSpec, monkeypatch: pytest.MonkeyPatch,
                                        capfd: pytest.CaptureFixture):
    monkeypatch.setenv("STYLECORE_KERNELS", "0")
    assert not settings.enabled()
    assert load_extension(tiny) is None
    assert capfd.readouterr().err == ""
    assert not cache.exists()


def test_cli_build_reports_failure_per_extension(tmp_path: Path):
    env = child_env(STYLECORE_KERNELS_CACHE=str(tmp_path / "cli-cache"), CXX="/nonexistent/c++",
                    CUDA_HOME="/nonexistent/cuda")
    done = subprocess.run([sys.executable, "-m", "kernels", "build", "bias_act", "--arch", "9.0"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("bias_act: failed: ") and "not found" in lines[0], done.stdout
    assert lines[-1] == f"cache: {tmp_path / 'cli-cache'}"
    assert done.stderr == ""  # the command reports on stdout; no fallback notice


def test_cli_build_when_disabled(tmp_path: Path):
    env = child_env(STYLECORE_KERNELS="0", STYLECORE_KERNELS_CACHE=str(tmp_path / "cli-cache"))
    done = subprocess.run([sys.executable, "-m", "kernels", "build"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stdout.splitlines()[:3] == [f"{name}: disabled: STYLECORE_KERNELS=0"
                                            for name in ("bias_act", "filtered_lrelu", "upfirdn2d")]
    assert not (tmp_path / "cli-cache").exists()


NINJA_NVCC_FAILURE = """\
Traceback (most recent call last):
RuntimeError: Error building extension 'upfirdn2d': [1/3] /usr/local/cuda/bin/nvcc -c /src/upfirdn2d.cu -o u.cuda.o
FAILED: upfirdn2d.cuda.o
/usr/local/cuda/bin/nvcc -MD -MF upfirdn2d.cuda.o.d -c /work/main/kernels/csrc/upfirdn2d.cu -o upfirdn2d.cuda.o
In file included from /torch/include/ATen/cuda/CUDAContext.h:4,
/torch/include/ATen/cuda/CUDAContextLight.h:10:10: fatal error: cusparse.h: No such file or directory
compilation terminated.
[2/3] c++ -MMD -MF upfirdn2d.o.d -c /work/main/kernels/csrc/upfirdn2d.cpp -o upfirdn2d.o
ninja: build stopped: subcommand failed.
"""


@pytest.mark.parametrize("output, reason", [
    (NINJA_NVCC_FAILURE, "nvcc failed: CUDAContextLight.h:10:10: fatal error: cusparse.h: No such file or directory"),
    ("Traceback (most recent call last):\n  File 'x.py'\nOSError: CUDA_HOME environment variable is not set.\n",
     "OSError: CUDA_HOME environment variable is not set."),
    ("FAILED: tiny.o\n/bin/false -c tiny.cpp -o tiny.o\nninja: build stopped: subcommand failed.\n",
     "false failed without a message"),
    ("", "the build stopped without any output"),
])
def test_failure_reason_is_one_readable_line(output: str, reason: str):
    assert failure_reason(output) == reason
