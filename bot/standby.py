"""A standby that takes over: with a PostgreSQL database, `photobot run` serves a practice only while it
holds that practice's lease (`storage.lease`); a second process started beside it waits, and takes over
when the first dies.

In order, in `photobot run`: take the lease (waiting, and saying so once in the log, while another process
holds it), wait `TAKEOVER_GRACE_SECONDS`, and only then open the data directory, the database and nio's
store. So nio's SQLite crypto store (in the data directory, which both processes share) is only ever opened
by the holder. The grace covers the one case where a lease frees while its old holder still runs: its
session was ended from the server's side (an administrator, a server restart). The old holder finds that
out at its next confirmation, at most `CONFIRM_EVERY_SECONDS` later, and ends itself at once.

A holder that loses its lease (`lose_and_exit`) ends its process at once with `ExitCode.TEMPORARY`, from the
lease's own thread, whatever the event loop is doing: two processes never serve one practice at once. Its
service manager starts it again, and it becomes the standby.

With the default SQLite database there is no lease: one process per data directory, as the data directory
lock (`storage.data_dir_lock`) already ensures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable

from bot.exit_codes import ExitCode
from bot.settings import Settings
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.lease import CONFIRM_EVERY_SECONDS, Lease, lease_key

log = logging.getLogger(__name__)

TAKEOVER_GRACE_SECONDS = CONFIRM_EVERY_SECONDS + 0.5
DATA_DIR_RETRY_SECONDS = 0.5
WAITING = "standby: waiting for the lease held by another process"
TAKEN = "standby: the lease is taken"


def lease_url(settings: Settings) -> str | None:
    """The PostgreSQL database the lease lives in, or None when the database is SQLite (no lease)."""
    database = settings.database
    return database.url if database.engine == "postgresql" else None


def lose_and_exit(reason: str) -> None:
    """The lease is lost: end the process now, without clean-up (which could still write)."""
    log.critical("standby: the lease is lost (%s); stopping at once so that no two processes serve", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(ExitCode.TEMPORARY)


@contextlib.asynccontextmanager
async def held_lease(
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_lost: Callable[[str], None] = lose_and_exit,
    grace: float = TAKEOVER_GRACE_SECONDS,
) -> AsyncIterator[bool]:
    """True inside the block once this process holds the practice's lease (at once with SQLite, which has
    none), False if `stop` was set while waiting. The lease is given up at the end of the block."""
    url = lease_url(settings)
    if url is None:
        yield True
        return
    lease = Lease(url, lease_key(settings.user_id), on_lost=on_lost)
    started = time.monotonic()
    try:
        if not await lease.acquire(stop, on_busy=lambda: log.info("%s", WAITING)):
            log.info("standby: stopped while waiting for the lease")
            yield False
            return
        log.info(
            "%s (after %.1f s, %d tr%s); serving in %.1f s",
            TAKEN,
            time.monotonic() - started,
            lease.attempts,
            "y" if lease.attempts == 1 else "ies",
            grace,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=grace)
        yield not stop.is_set()
    finally:
        lease.release()


async def lock_data_dir(settings: Settings, holder: str, stop: asyncio.Event) -> DataDirLock | None:
    """The data directory's lock (`storage.data_dir_lock`), taken once the lease is held. With SQLite it is
    refused at once if busy, as before. With the lease held it is waited for instead: on a shared volume a
    dead holder's lock can outlive it for a while (NFS keeps a vanished client's locks until its lease on
    the server expires), and another process's `key rotate` or `restore` may still be finishing. None if
    `stop` was set first."""
    said = False
    while True:
        try:
            return DataDirLock.acquire(settings.data_dir, holder)
        except DataDirBusyError as busy:
            if lease_url(settings) is None:
                raise
            if not said:
                log.info("standby: waiting for the data directory: %s", busy)
                said = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=DATA_DIR_RETRY_SECONDS)
        if stop.is_set():
            return None
