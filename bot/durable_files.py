"""Files that survive a crash: whole writes, synced files, synced directories.

A file's data is durable only after `os.fsync` on the file, and its name (creation, rename, removal) only
after `os.fsync` on the directory that holds it. Every module that must not lose or half-write a file (the
master key file, the image vault, the deletion ledger, backups) uses these helpers rather than its own.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to `fd` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_directory(directory: Path) -> None:
    """Sync `directory` itself, so that a file created, renamed or removed in it stays so after a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Sync the data of the file at `path`, written earlier by any means."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` (never an existing file, never through a symbolic link; mode 0600), write all of `data`
    and sync it. The directory is not synced: a caller writing several files syncs it once."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(root: Path) -> None:
    """Sync every file and directory under `root`, `root` included."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_file(Path(directory) / name)
        fsync_directory(Path(directory))
