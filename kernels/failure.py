"""Turn a failed build's output into the one line a user sees."""
from __future__ import annotations

import re
from pathlib import PurePath

MAX_REASON_CHARS = 300

_DIRS = re.compile(r"(?<![\w.])/(?:[^\s/:()'\"]+/)+")  # directory part of an absolute path
_ERROR = re.compile(r"\berror\b", re.IGNORECASE)
_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception)\b.*?: ")
_NINJA_NOISE = ("ninja: ", "Error building extension", "subcommand failed")


def failure_reason(output: str) -> str:
    """'<tool> failed: <first error line>' for a failed compile step, else the exception that ended
    the build (no compiler, no nvcc, no ninja, import error), else the last line of output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("FAILED:"):
            return _shorten(_compile_step_failure(lines[i + 1:]))
    for line in reversed(lines):
        if _EXCEPTION.match(line):
            return _shorten(line)
    return _shorten(lines[-1] if lines else "the build stopped without any output")


def _compile_step_failure(after_failed: list[str]) -> str:
    command = after_failed[0] if after_failed else ""
    tool = PurePath(command.split()[0]).name if command.split() else "compiler"
    if tool != "nvcc" and " -shared" in command:
        tool = "linker"
    messages = [line for line in after_failed[1:] if not any(noise in line for noise in _NINJA_NOISE)]
    errors = [line for line in messages if _ERROR.search(line)]
    if errors:
        return f"{tool} failed: {errors[0]}"
    if messages:
        return f"{tool} failed: {messages[0]}"
    return f"{tool} failed without a message"


def one_line(text: str) -> str:
    """The first line of `text`, without directories and cut to a readable length."""
    lines = text.strip().splitlines()
    return _shorten(lines[0] if lines else "")


def _shorten(line: str) -> str:
    line = _DIRS.sub("", line)
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."
