"""`photobot backup DEST` and `photobot restore SRC`: a consistent copy while the bot runs, and its return.

A backup is a directory (mode 0700)::

    manifest.json        format, time, the master key id it needs, schema version, counts
    photobot.sqlite3     the database, copied with SQLite's online backup API: one consistent snapshot
    vault/<id>.enc       every image file the copied database names (ciphertext; keys are in the database)
    nio-store/           matrix-nio's store (the bot's device keys), its databases copied the same way

Not in it, on purpose: the master key (keep its backup apart: a backup holding both protects nothing), the
deletion ledger (so that no restore can roll it back; see `storage.deletion_ledger`), the lock file.

Consistency while the bot runs. The database is copied first, in one read transaction (the bot goes on
writing: WAL readers do not block writers); then exactly the vault files that copy names. Copying files
first would miss an image stored between the file copy and the snapshot, whose row the snapshot holds.
Files stored after the snapshot are not named by it and belong to the next backup. A file destroyed after
the snapshot may be gone before it is copied; its destruction is in the deletion ledger (written before the
destruction commits, so before the file is removed), and the ledger is replayed onto the copy after the
files are copied: the copy then reflects that destruction too (its row and any copied file removed). Every
image the copy still names is then read back (unwrap, decrypt, tag check); one that cannot be is listed in
the manifest and reported (`photobot backup` then exits with status 1). The backup is built in ``.<DEST>.partial-<random>`` and
renamed to DEST at the end, so a DEST that exists is complete.

Restore refuses while the bot (or a key rotation) holds the data directory, and refuses a backup made under
another master key (after a rotation, older backups cannot be read: their keys were destroyed). It writes
a marker file first (the bot refuses to start while it exists), copies the backup into a staging directory,
swaps the database and the vault for it, adds nio-store files the data directory lacks (never replacing the
live device keys, which are newer than any backup), replays the deletion ledger (so an image deleted after
the backup was made stays deleted) and removes the marker. Run again after a crash, it starts over.

Exceptions::

    BackupError                   the backup or restore cannot be made; the message says why and what to do
    └── RestoreInterruptedError   a restore was interrupted: the bot must not start until it is re-run
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from bot.clock import Clock, iso
from bot.durable_files import fsync_directory, fsync_file, sync_tree, write_new_file
from bot.keyring import CryptoError, Keyring, Sealer
from storage.audit import AuditLog
from storage.data_dir_lock import DataDirLock
from storage.database import Database
from storage.deletion_ledger import DeletionLedger, DeletionReplay, ReplayReport
from storage.image_inventory import ImageInventory
from storage.key_rotations import KeyRotations
from storage.migrations import MIGRATIONS
from storage.postgres import PostgresDatabase
from storage.postgres_copy import copy_postgres_to_sqlite, read_sqlite_rows, replace_postgres_contents
from storage.postings import PostingRepository
from storage.practice_config import ConfigRepository
from storage.restores import record_restore
from storage.s3_vault import S3Location, S3Vault
from storage.sql import Database as SqlDatabase
from storage.submissions import SubmissionRepository
from storage.vault import FILE_SUFFIX, IMAGE_ID_PATTERN, ImageUnreadableError, ImageVault, Vault

MANIFEST_NAME = "manifest.json"
DATABASE_NAME = "photobot.sqlite3"
VAULT_NAME = "vault"
NIO_STORE_NAME = "nio-store"
BACKUP_FORMAT = "photobot-backup"
BACKUP_VERSION = 1
RESTORE_MARKER = "restore-in-progress"
_STAGING = ".restore-staging"
_REPLACED_VAULT = ".restore-replaced-vault"
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")

# Every vault image a database names, with the wrapped key that opens it.
_REFERENCED_IMAGES = (
    "SELECT photo_id AS image_id, wrapped_key AS wrapped FROM photos"
    " WHERE original_destroyed_at IS NULL AND length(wrapped_key) > 0"
    " UNION ALL SELECT record_image_id, record_wrapped_key FROM photos WHERE record_image_id IS NOT NULL"
    " ORDER BY 1"
)


class BackupError(Exception):
    """The backup or restore cannot be made; the message is what the operator reads."""


class RestoreInterruptedError(BackupError):
    """A restore was interrupted; the bot must not start on a half-restored data directory."""


@dataclass(frozen=True)
class DataPaths:
    """Where one installation keeps its data (from the settings)."""

    data_dir: Path
    database: Path
    vault: Path
    nio_store: Path
    ledger: Path
    database_url: str | None = None  # PostgreSQL (PHOTOBOT_DATABASE_URL); None: the SQLite file `database`
    database_schema: str | None = None  # the practice's schema on PostgreSQL; None: the URL's, or public
    s3: S3Location | None = None  # the vault's bucket and prefix (PHOTOBOT_VAULT_URL=s3://); None: `vault`

    @property
    def on_postgres(self) -> bool:
        return self.database_url is not None


@dataclass(frozen=True)
class BackupReport:
    destination: Path
    images: int  # image files in the backup, each read back
    unreadable: tuple[str, ...]  # image ids the copied database names but that cannot be read
    replayed: ReplayReport  # destructions made while the backup was taken, carried out on the copy
    bytes: int
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    source: Path
    images: int
    replayed: ReplayReport  # destructions made after the backup, carried out again
    seconds: float
    backup_made_at: str = ""
    rolled_back: tuple[str, ...] | None = ()  # run-time settings the restore rolled back; None: not known


def refuse_interrupted_restore(data_dir: Path) -> None:
    """Raise `RestoreInterruptedError` if a restore into `data_dir` was started and not finished."""
    marker = data_dir / RESTORE_MARKER
    if marker.exists():
        source = marker.read_text(encoding="utf-8", errors="replace").strip()
        raise RestoreInterruptedError(
            f"A restore from {source} into {data_dir} was interrupted. Run `photobot restore {source}` "
            "again to finish it before starting the bot."
        )


async def _open_live(paths: DataPaths) -> SqlDatabase:
    """The installation's own database: the SQLite file, or the PostgreSQL schema."""
    if paths.database_url is not None:
        return await PostgresDatabase.open(paths.database_url, schema=paths.database_schema)
    return await Database.open(paths.database)


def _live_vault(paths: DataPaths, keyring: Keyring) -> ImageVault:
    """The installation's own image vault: the directory, or the bucket."""
    if paths.s3 is not None:
        return S3Vault(paths.s3, keyring)
    return Vault(paths.vault, keyring)


def _replay(
    ledger_file: Path, database: SqlDatabase, vault: ImageVault, keyring: Keyring, clock: Clock
) -> DeletionReplay:
    sealer = Sealer(keyring)
    return DeletionReplay(
        DeletionLedger(ledger_file, keyring),
        database,
        vault,
        submissions=SubmissionRepository(database, sealer),
        postings=PostingRepository(database, sealer, clock),
        audit=AuditLog(database, keyring, clock),
        clock=clock,
    )


# ---- backup -----------------------------------------------------------------------------------------------


async def make_backup(
    paths: DataPaths,
    destination: Path,
    keyring: Keyring,
    clock: Clock,
    *,
    after_snapshot: Callable[[], Awaitable[None]] | None = None,
) -> BackupReport:
    """Copy the installation to `destination` (a new directory) while the bot may be running.

    `after_snapshot` runs between the database snapshot and the file copy: a test's seam for the bot
    writing and deleting at exactly the worst moment.
    """
    started = time.monotonic()
    refuse_interrupted_restore(paths.data_dir)
    destination = destination.absolute()
    if destination.exists() or destination.is_symlink():
        raise BackupError(f"{destination} already exists; give the backup a new directory name.")
    if not destination.parent.is_dir():
        raise BackupError(f"The directory {destination.parent} does not exist; create it first.")
    if not paths.on_postgres and not paths.database.exists():
        raise BackupError(f"There is no database at {paths.database} to back up.")
    partial = destination.with_name(f".{destination.name}.partial-{secrets.token_hex(6)}")
    partial.mkdir(mode=0o700)
    try:
        report = await _fill_backup(paths, partial, keyring, clock, after_snapshot)
        await asyncio.to_thread(sync_tree, partial)
        partial.rename(destination)
        fsync_directory(destination.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return replace(
        report, destination=destination, bytes=_tree_size(destination), seconds=time.monotonic() - started
    )


async def _fill_backup(
    paths: DataPaths,
    partial: Path,
    keyring: Keyring,
    clock: Clock,
    after_snapshot: Callable[[], Awaitable[None]] | None,
) -> BackupReport:
    database_copy = partial / DATABASE_NAME
    if paths.database_url is not None:
        await _snapshot_postgres(paths.database_url, paths.database_schema, database_copy)
    else:
        await asyncio.to_thread(_snapshot_sqlite, paths.database, database_copy)
    if after_snapshot is not None:
        await after_snapshot()
    copy = await Database.open(database_copy)
    try:
        await _refuse_snapshot(copy, keyring)
        referenced = await _referenced(copy)
        vault_copy = partial / VAULT_NAME
        await asyncio.to_thread(_fetch_images, paths, keyring, vault_copy, [image for image, _ in referenced])
        # Destructions committed after the snapshot, whose files may already be gone: carried out on the copy.
        vault = Vault(vault_copy, keyring)
        replayed = await _replay(paths.ledger, copy, vault, keyring, clock).run()
        referenced = await _referenced(copy)
        unreadable = await asyncio.to_thread(_unreadable, vault, referenced)
        schema = await copy.schema_version()
        await copy.shred_checkpoint()
    finally:
        await copy.close()
    await asyncio.to_thread(_single_file, database_copy)
    await asyncio.to_thread(_copy_nio_store, paths.nio_store, partial / NIO_STORE_NAME)
    manifest = {
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "created_at": iso(clock.now()),
        "master_key_id": keyring.current_key_id,
        "schema_version": schema,
        "images": len(referenced),
        "unreadable_images": list(unreadable),
    }
    write_new_file(partial / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    # make_backup fills in the final destination, the size and the time
    return BackupReport(partial, len(referenced), unreadable, replayed, bytes=0, seconds=0.0)


async def _snapshot_postgres(url: str, schema: str | None, target: Path) -> None:
    """The PostgreSQL database's rows, read in one snapshot, in a freshly migrated SQLite file `target`."""
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    fresh = await Database.open(target)
    await fresh.close()
    try:
        await asyncio.to_thread(copy_postgres_to_sqlite, url, schema, target)
    except psycopg.Error as error:
        raise BackupError(f"The database could not be read for the backup ({_first_line(error)}).") from None
    for suffix in _SQLITE_SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            target.with_name(target.name + suffix).unlink()
    await asyncio.to_thread(_single_file, target)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


async def _refuse_snapshot(copy: Database, keyring: Keyring) -> None:
    async with copy.connection.execute("PRAGMA integrity_check") as cursor:
        rows = [str(row[0]) for row in await cursor.fetchall()]
    if rows != ["ok"]:
        raise BackupError(f"The database failed its integrity check ({'; '.join(rows[:3])}); not backed up.")
    async with copy.connection.execute(
        "SELECT COUNT(*) FROM key_rotations WHERE finished_at IS NULL"
    ) as cursor:
        row = await cursor.fetchone()
    if row is not None and row[0]:
        raise BackupError(
            "A master-key rotation is unfinished; finish it (`photobot key rotate`), then back up."
        )
    async with copy.connection.execute("SELECT access_token FROM bot_account") as cursor:
        account = await cursor.fetchone()
    if account is not None and Keyring.key_id_of(bytes(account[0])) != keyring.current_key_id:
        raise BackupError("The master key changed while the backup was being made; run the backup again.")


async def _referenced(database: Database) -> list[tuple[str, bytes]]:
    async with database.connection.execute(_REFERENCED_IMAGES) as cursor:
        return [(str(row[0]), bytes(row[1] or b"")) for row in await cursor.fetchall()]


def _unreadable(vault: Vault, referenced: list[tuple[str, bytes]]) -> tuple[str, ...]:
    bad = []
    for image_id, wrapped in referenced:
        try:
            vault.get(image_id, wrapped)
        except (ImageUnreadableError, CryptoError):
            bad.append(image_id)
    return tuple(bad)


# ---- restore ----------------------------------------------------------------------------------------------


async def restore_backup(paths: DataPaths, source: Path, keyring: Keyring, clock: Clock) -> RestoreReport:
    """Replace the installation's database and vault by the backup at `source`, then replay the ledger."""
    if paths.on_postgres:
        return await _restore_into_postgres(paths, source.absolute(), keyring, clock)
    started = time.monotonic()
    source = source.absolute()
    with DataDirLock.acquire(paths.data_dir, "photobot restore"):
        _refuse_unfinished_rotation(paths.database)
        images = await asyncio.to_thread(_check_backup, source, keyring)
        made_at = _backup_made_at(source)
        before = await _run_time_settings(paths.database, keyring, clock)
        marker = paths.data_dir / RESTORE_MARKER
        _write_file(marker, f"{source}\n".encode())
        staging = paths.data_dir / _STAGING
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        await asyncio.to_thread(_stage, source, staging, [] if paths.s3 else images)
        if paths.s3 is not None:  # the images go back into the bucket before the rows that name them
            await asyncio.to_thread(_put_images, source / VAULT_NAME, paths, keyring, images)
        await asyncio.to_thread(_swap_in, paths, staging)
        await asyncio.to_thread(_add_missing_nio_files, source / NIO_STORE_NAME, paths.nio_store)
        database = await Database.open(paths.database)
        try:
            if paths.s3 is not None:  # objects stored after the backup: no restored row names them
                known = await ImageInventory(database).live_image_ids()
                await asyncio.to_thread(_live_vault(paths, keyring).sweep_orphans, known)
            replayed, rolled_back = await _after_swap(
                paths, database, keyring, clock, made_at=made_at, before=before
            )
        finally:
            await database.close()
        shutil.rmtree(staging, ignore_errors=True)
        marker.unlink()
        fsync_directory(paths.data_dir)
    return RestoreReport(source, len(images), replayed, time.monotonic() - started, made_at, rolled_back)


async def _after_swap(
    paths: DataPaths,
    database: SqlDatabase,
    keyring: Keyring,
    clock: Clock,
    *,
    made_at: str,
    before: dict[str, object] | None,
) -> tuple[ReplayReport, tuple[str, ...] | None]:
    """With the backup's rows and images in place: the deletions made since carried out again (rows, keys,
    images), the restore recorded (the bot then skips to the homeserver's present), the old bytes shredded."""
    replayed = await _replay(paths.ledger, database, _live_vault(paths, keyring), keyring, clock).run()
    after = await ConfigRepository(database, Sealer(keyring), clock).overrides()
    rolled_back = _differing(before, after)
    async with database.transaction() as db:
        await record_restore(db, clock.now(), made_at, rolled_back or ())
    await database.shred_checkpoint()
    return replayed, rolled_back


async def _restore_into_postgres(
    paths: DataPaths, source: Path, keyring: Keyring, clock: Clock
) -> RestoreReport:
    """`restore_backup` on PostgreSQL: the backup's rows replace the schema's in one transaction.

    The order, and why: the marker first (the bot refuses to start until it is gone, so a kill anywhere
    leaves a restore to re-run, which starts over); the backup's images into the vault before its rows
    (a row is never committed naming an image that is not there); the rows; then every image no restored
    row names removed (stored after the backup); then the deletion ledger replayed, so everything deleted
    after the backup was made (its rows, keys and images) is deleted again.
    """
    started = time.monotonic()
    with DataDirLock.acquire(paths.data_dir, "photobot restore"):
        database = await _open_live(paths)
        try:
            if await KeyRotations(database).unfinished() is not None:
                raise BackupError(
                    "A master-key rotation is unfinished; finish it (`photobot key rotate`) before a restore."
                )
            images = await asyncio.to_thread(_check_backup, source, keyring)
            made_at = _backup_made_at(source)
            before = await _settings_of(database, keyring, clock)
            marker = paths.data_dir / RESTORE_MARKER
            _write_file(marker, f"{source}\n".encode())
            staging = paths.data_dir / _STAGING
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700)
            await asyncio.to_thread(_snapshot_sqlite, source / DATABASE_NAME, staging / DATABASE_NAME)
            migrated = await Database.open(staging / DATABASE_NAME)  # a backup of an older schema: brought up
            await migrated.close()
            rows = await asyncio.to_thread(read_sqlite_rows, staging / DATABASE_NAME)
            await asyncio.to_thread(_put_images, source / VAULT_NAME, paths, keyring, images)
            assert isinstance(database, PostgresDatabase)
            await replace_postgres_contents(database, rows)
            del rows
            known = await ImageInventory(database).live_image_ids()
            await asyncio.to_thread(_live_vault(paths, keyring).sweep_orphans, known)
            await asyncio.to_thread(_add_missing_nio_files, source / NIO_STORE_NAME, paths.nio_store)
            replayed, rolled_back = await _after_swap(
                paths, database, keyring, clock, made_at=made_at, before=before
            )
        finally:
            await database.close()
        shutil.rmtree(staging, ignore_errors=True)
        marker.unlink()
        fsync_directory(paths.data_dir)
    return RestoreReport(source, len(images), replayed, time.monotonic() - started, made_at, rolled_back)


async def _settings_of(database: SqlDatabase, keyring: Keyring, clock: Clock) -> dict[str, object] | None:
    try:
        return await ConfigRepository(database, Sealer(keyring), clock).overrides()
    except (CryptoError, ValueError):
        return None


def _put_images(source: Path, paths: DataPaths, keyring: Keyring, image_ids: list[str]) -> None:
    """The backup's image files (ciphertext, as they are) into the live vault, each replacing any of its id."""
    ids = [image_id for image_id in image_ids if IMAGE_ID_PATTERN.fullmatch(image_id)]
    if paths.s3 is not None:
        bucket = S3Vault(paths.s3, keyring)
        for image_id in ids:
            bucket.write_object(image_id, (source / (image_id + FILE_SUFFIX)).read_bytes())
        return
    paths.vault.mkdir(mode=0o700, exist_ok=True)
    for image_id in ids:
        target = paths.vault / (image_id + FILE_SUFFIX)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        write_new_file(target, (source / (image_id + FILE_SUFFIX)).read_bytes())
    fsync_directory(paths.vault)


def _fetch_images(paths: DataPaths, keyring: Keyring, target: Path, image_ids: list[str]) -> None:
    """Each named image's stored bytes into `target`; one that is not there (destroyed meanwhile) is skipped."""
    if paths.s3 is None:
        _copy_images(paths.vault, target, image_ids)
        return
    bucket = S3Vault(paths.s3, keyring)
    target.mkdir(mode=0o700, exist_ok=True)
    for image_id in image_ids:
        if not IMAGE_ID_PATTERN.fullmatch(image_id):
            continue
        content = bucket.read_object(image_id)
        if content is not None:
            write_new_file(target / (image_id + FILE_SUFFIX), content)
    fsync_directory(target)


def _backup_made_at(source: Path) -> str:
    manifest = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
    return str(manifest.get("created_at", "an unknown time"))


async def _run_time_settings(database: Path, keyring: Keyring, clock: Clock) -> dict[str, object] | None:
    """The run-time settings in the database about to be replaced; None if it cannot be read (missing,
    damaged: a restore is often the answer to exactly that)."""
    if not database.exists():
        return None
    try:
        opened = await Database.open(database)
    except (sqlite3.DatabaseError, OSError):
        return None
    try:
        return await ConfigRepository(opened, Sealer(keyring), clock).overrides()
    except (sqlite3.DatabaseError, CryptoError, ValueError):
        return None
    finally:
        await opened.close()


def _differing(before: dict[str, object] | None, after: dict[str, object]) -> tuple[str, ...] | None:
    """The names of the settings whose run-time value the restore changed (set, changed or removed)."""
    if before is None:
        return None
    return tuple(sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key)))


def _refuse_unfinished_rotation(database: Path) -> None:
    if not database.exists():
        return
    connection = sqlite3.connect(database, timeout=10)
    try:
        tables = {
            str(row[0]) for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "key_rotations" not in tables:
            return
        (unfinished,) = connection.execute(
            "SELECT COUNT(*) FROM key_rotations WHERE finished_at IS NULL"
        ).fetchone()
    finally:
        connection.close()
    if unfinished:
        raise BackupError(
            "A master-key rotation is unfinished; finish it (`photobot key rotate`) before a restore."
        )


def _check_backup(source: Path, keyring: Keyring) -> list[str]:
    """The image ids of a complete, readable backup made under the current key; `BackupError` otherwise."""
    try:
        manifest = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BackupError(f"{source} is not a photobot backup (no readable {MANIFEST_NAME}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{source} is not a photobot backup.")
    if manifest.get("version") != BACKUP_VERSION:
        raise BackupError(f"{source} is a backup format this version does not read; upgrade photobot.")
    key_id = manifest.get("master_key_id")
    if key_id != keyring.current_key_id:
        raise BackupError(
            f"{source} was made under master key {key_id}; the configured key is {keyring.current_key_id}. "
            "A backup made before a key rotation cannot be read after it (the old key was destroyed)."
        )
    schema = manifest.get("schema_version")
    if not isinstance(schema, int) or schema > MIGRATIONS[-1].version:
        raise BackupError(f"{source} was made by a newer version of photobot; upgrade before restoring it.")
    connection = sqlite3.connect(f"file:{source / DATABASE_NAME}?mode=ro", uri=True)
    try:
        check = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
        referenced = [(str(row[0]), bytes(row[1] or b"")) for row in connection.execute(_REFERENCED_IMAGES)]
    except sqlite3.DatabaseError as error:
        raise BackupError(f"The backup's database cannot be read ({error}).") from None
    finally:
        connection.close()
    if check != ["ok"]:
        raise BackupError(f"The backup's database failed its integrity check ({'; '.join(check[:3])}).")
    unreadable = _unreadable(Vault(source / VAULT_NAME, keyring), referenced)
    if unreadable:
        raise BackupError(
            f"{len(unreadable)} image(s) the backup names cannot be read from it (missing or damaged files); "
            "not restored. Use another backup."
        )
    return [image for image, _ in referenced]


def _stage(source: Path, staging: Path, images: list[str]) -> None:
    _snapshot_sqlite(source / DATABASE_NAME, staging / DATABASE_NAME)
    _copy_images(source / VAULT_NAME, staging / VAULT_NAME, images)
    sync_tree(staging)


def _swap_in(paths: DataPaths, staging: Path) -> None:
    """The staged database and vault take the place of the installation's (the marker guards the gap)."""
    for suffix in _SQLITE_SIDECARS:  # a stale WAL would be applied to the restored file: never keep it
        with contextlib.suppress(FileNotFoundError):
            paths.database.with_name(paths.database.name + suffix).unlink()
    (staging / DATABASE_NAME).replace(paths.database)
    if paths.s3 is not None:  # the vault is a bucket: its objects were put back already
        fsync_directory(paths.data_dir)
        return
    replaced = paths.data_dir / _REPLACED_VAULT
    shutil.rmtree(replaced, ignore_errors=True)
    if paths.vault.exists():
        paths.vault.replace(replaced)
    (staging / VAULT_NAME).replace(paths.vault)
    fsync_directory(paths.data_dir)
    shutil.rmtree(replaced, ignore_errors=True)


def _add_missing_nio_files(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.is_symlink() and not (target / path.name).exists():
            shutil.copyfile(path, target / path.name)
            (target / path.name).chmod(0o600)
    fsync_directory(target)


# ---- files ------------------------------------------------------------------------------------------------


def _snapshot_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a (possibly live) SQLite database, as one self-contained file of mode 0600.

    The backup API with pages=-1 copies every page in one step, inside one read transaction: a snapshot.
    The source is opened read-write (a read-only connection cannot always open a WAL database) but only read.
    """
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    origin = sqlite3.connect(source, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            origin.backup(copy)
        finally:
            copy.close()
    finally:
        origin.close()
    _single_file(target)


def _single_file(path: Path) -> None:
    """Leave the database at `path` in rollback-journal mode, so that it is one file, and synced."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
    finally:
        connection.close()
    fsync_file(path)


def _copy_images(source: Path, target: Path, image_ids: list[str]) -> None:
    """Copy each named image file; one that is not there (destroyed meanwhile) is skipped."""
    target.mkdir(mode=0o700, exist_ok=True)
    for image_id in image_ids:
        if not IMAGE_ID_PATTERN.fullmatch(image_id):
            continue
        name = image_id + FILE_SUFFIX
        try:
            fd = os.open(source / name, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        with os.fdopen(fd, "rb") as origin:
            write_new_file(target / name, origin.read())
    fsync_directory(target)


def _copy_nio_store(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    target.mkdir(mode=0o700)
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.is_symlink() or path.name.endswith(_SQLITE_SIDECARS):
            continue
        if path.suffix == ".db":
            _snapshot_sqlite(path, target / path.name)
        else:
            write_new_file(target / path.name, path.read_bytes())
    fsync_directory(target)


def _write_file(path: Path, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    write_new_file(path, data)
    fsync_directory(path.parent)


def _tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
