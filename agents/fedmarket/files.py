"""Atomic file writes, for every file fedmarket keeps (address books, salts, cursors, caches, reports).

A reader never sees a half-written file: the bytes go to a temporary file in the same directory,
which is then renamed over the target (os.replace is atomic on one file system). With
`durable=True` the data and the rename are fsynced, so the file survives a power cut as soon as
the call returns: for what cannot be rebuilt from the chain (a trainer's commit salt, a keystore).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes | str, *, durable: bool = False, mode: int | None = None) -> Path:
    """Write `data` to `path` atomically (parents created); `mode` sets the file's permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def atomic_write_json(path: Path, value: Any, *, durable: bool = False, mode: int | None = None, indent: int | None = 2) -> Path:
    """`value` as JSON (sorted keys, trailing newline), written atomically."""
    text = json.dumps(value, indent=indent, sort_keys=True) + "\n"
    return atomic_write(path, text, durable=durable, mode=mode)


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
