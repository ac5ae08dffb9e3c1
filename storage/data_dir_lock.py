"""One process at a time owns the data directory: the bot (`photobot run`), a key rotation or a restore.

An advisory `flock` on ``<data dir>/photobot.lock``. The kernel releases it when its holder ends, even by
SIGKILL or a power cut, so a crash never leaves a stale lock for an operator to delete by hand. The file
holds a line naming the holder and its process id, only so that a refused command can say who holds it.

Not everything takes it: `photobot backup` copies a consistent snapshot while the bot runs, and
`photobot admin` / `audit verify` work alongside the bot (SQLite serialises their writes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_FILE_NAME = "photobot.lock"


class DataDirBusyError(Exception):
    """Another process holds the data directory; the message says which and what to do."""


class DataDirLock:
    """Held from `acquire` until `release` (or the end of a `with` block, or the process)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path, holder: str) -> DataDirLock:
        """Take the lock without waiting, or raise `DataDirBusyError` naming the process that has it."""
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise DataDirBusyError(
                f"The data directory {data_dir} is in use by {owner}. Stop it first (or wait for it to "
                "finish): the bot, a key rotation and a restore never run at the same time."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder} (pid {os.getpid()})\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another photobot process"
