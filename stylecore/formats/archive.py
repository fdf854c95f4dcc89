"""Zip-archive checks run before anything in an uploaded or downloaded archive is decompressed:
member names must stay inside the archive, and the expanded size must be plausible (zip bombs)."""
from __future__ import annotations

import os
import zipfile
from pathlib import PurePosixPath, PureWindowsPath
from typing import Union


def check_zip_members(path: Union[str, "os.PathLike[str]"], max_expanded: int) -> None:
    """Raise ValueError when a member name is absolute or climbs out ('..'), or when the members
    would expand to more than `max_expanded` bytes. Not a zip file: nothing to check."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        total = 0
        for info in archive.infolist():
            name = info.filename
            posix, windows = PurePosixPath(name), PureWindowsPath(name)
            if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts \
                    or ".." in windows.parts:
                raise ValueError(f"archive member {name[:80]!r} points outside the archive")
            total += info.file_size
            if total > max_expanded:
                raise ValueError(f"archive members expand to more than {max_expanded:,} bytes "
                                 f"(the file is {os.path.getsize(path):,} bytes): refused as a possible zip bomb")
