"""`photobot key rotate`, `photobot backup DEST` and `photobot restore SRC`: the operator's maintenance commands.

Key rotation and restore take the data-directory lock (`storage.data_dir_lock`), so they refuse to run while
the bot runs, and the bot refuses to start while either is under way or was interrupted. A backup runs
alongside the bot. Each prints what it did, with counts and times; none prints a key, an NHS number or an
image id list longer than a few lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.backends import open_database, open_vault, s3_location
from bot.clock import Clock
from bot.faults import FaultInjector
from bot.key_rotation import KeyRotation
from bot.keyring import Keyring, load_master_key_file
from bot.settings import Settings
from bot.standby import lease_url, lose_and_exit
from storage.backup import DataPaths, make_backup, refuse_interrupted_restore, restore_backup
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.deletion_ledger import ledger_path
from storage.lease import Lease, lease_key

_SHOWN = 10
LEASE_WAIT_SECONDS = 2.0  # a lease released a moment ago (the bot just stopped) is taken within this


@asynccontextmanager
async def practice_lease(settings: Settings, command: str) -> AsyncIterator[None]:
    """On PostgreSQL: hold the practice's lease while `command` runs, so that neither the bot nor a standby
    (which waits for the lease, not for the data directory) serves the practice meanwhile. Refused at once
    (`DataDirBusyError`, exit 75) if a bot holds it. With SQLite there is no lease: the data directory's
    lock, which the command takes too, is enough."""
    url = lease_url(settings)
    if url is None:
        yield
        return
    lease = Lease(url, lease_key(settings.user_id), on_lost=lose_and_exit)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(LEASE_WAIT_SECONDS, stop.set)
    if not await lease.acquire(stop):
        raise DataDirBusyError(
            f"The practice is in use by the bot (it holds the practice's lease in the database): stop it, and "
            f"its standby, before `{command}`."
        )
    try:
        yield
    finally:
        lease.release()


def data_paths(settings: Settings) -> DataPaths:
    return DataPaths(
        data_dir=settings.data_dir,
        database=settings.database_path,
        vault=settings.vault_dir,
        nio_store=settings.store_dir,
        ledger=ledger_path(settings.data_dir),
        database_url=settings.database.url if settings.database.engine == "postgresql" else None,
        s3=s3_location(settings),
    )


async def rotate_key(settings: Settings, clock: Clock, say: Callable[[str], None]) -> int:
    """Run (or finish) a master-key rotation; raises `KeyRotationError` with the operator's next step."""
    with DataDirLock.acquire(settings.data_dir, "photobot key rotate"):
        refuse_interrupted_restore(settings.data_dir)
        database = await open_database(settings)
        try:
            faults = FaultInjector(
                settings.fault_points, enabled=settings.test_mode, fault_dir=settings.data_dir / "faults"
            )
            report = await KeyRotation(
                master_key_file=settings.master_key_file,
                database=database,
                vault_dir=settings.vault_dir,
                store_dir=settings.store_dir,
                ledger_file=ledger_path(settings.data_dir),
                clock=clock,
                faults=faults,
                say=say,
                open_vault=lambda keyring: open_vault(settings, keyring),
            ).run()
        finally:
            await database.close()
    say(f"Key rotation finished in {report.seconds:.1f} s.")
    return 0


async def backup(settings: Settings, destination: Path, clock: Clock, say: Callable[[str], None]) -> int:
    """A consistent backup while the bot may run; 1 if an image it names could not be read back."""
    keyring = Keyring(load_master_key_file(settings.master_key_file))
    report = await make_backup(data_paths(settings), destination, keyring, clock)
    say(
        f"Backed up to {report.destination}: {report.images} image(s), each read back, "
        f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s."
    )
    if report.replayed.replayed:
        say(f"{report.replayed.replayed} deletion(s) made during the backup are reflected in it.")
    say("The master key is not in the backup: keep your copy of it somewhere else.")
    if report.unreadable:
        shown = ", ".join(report.unreadable[:_SHOWN])
        say(
            f"WARNING: {len(report.unreadable)} image(s) named by the database could not be read (missing or "
            f"damaged files in the vault): {shown}. Run `photobot check`."
        )
        return 1
    return 0


async def restore(settings: Settings, source: Path, clock: Clock, say: Callable[[str], None]) -> int:
    """Restore a backup (the bot must be stopped); deletions made since it was taken are carried out again,
    and the run-time settings it rolls back are named."""
    keyring = Keyring(load_master_key_file(settings.master_key_file))
    async with practice_lease(settings, "photobot restore"):
        report = await restore_backup(data_paths(settings), source, keyring, clock)
    replayed = report.replayed
    say(
        f"Restored {report.images} image(s) from {report.source} in {report.seconds:.1f} s. The deletion "
        f"ledger was replayed: {replayed.replayed} deletion(s) made since the backup carried out again "
        f"({replayed.rows_changed} record(s) changed, {replayed.files_removed} file(s) removed)."
    )
    if replayed.rejected:
        say(f"{replayed.rejected} line(s) of the deletion ledger did not verify and were ignored.")
    if report.rolled_back is None:
        say(
            "The settings changed at run time before the restore could not be read (the database was missing or "
            "damaged): check them with `photobot admin config`."
        )
    elif report.rolled_back:
        say(
            "Rolled back to the backup's values (changed at run time after the backup was made): "
            f"{', '.join(report.rolled_back)}. Check them with `photobot admin config`."
        )
    else:
        say("No setting changed at run time was rolled back.")
    say(
        "At its next start the bot skips to the homeserver's present: commands and messages it handled after "
        f"the backup ({report.backup_made_at}) are not handled again; the admin room is told."
    )
    return 0
