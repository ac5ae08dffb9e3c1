"""Checks and repairs before the bot serves, and `photobot check`'s reading of every stored image.

At opening: the database opened (a lock held by another process, or a damaged file, said in plain words)
and SQLite's own check of every page. Before serving: destructions the database does not reflect carried
out again from the deletion ledger (a restored backup, a crash before the commit), then torn temporary
files and vault files whose row was never committed removed, then the bot's device signed with its
cross-signing identity if its key changed.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

from bot.clock import Clock
from bot.executor import CpuPool
from bot.matrix.gateway import MatrixGateway
from storage.account import AccountRepository
from storage.audit import AuditLog
from storage.database import SqliteDatabase, database_busy
from storage.deletion_ledger import DeletionLedger, DeletionReplay
from storage.image_inventory import ImageInventory
from storage.postings import PostingRepository
from storage.sql import Database, DatabaseBusyError, DatabaseError
from storage.submissions import SubmissionRepository
from storage.vault import ImageKeyUnavailableError, ImageMissingError, ImageUnreadableError, ImageVault

log = logging.getLogger(__name__)


def _damaged(path: Path | str, found: str) -> DatabaseError:
    return DatabaseError(
        f"The database {path} is damaged ({found[:200]}). The bot will not use it: keep the damaged file "
        "for investigation, and restore your latest backup (docs/operator.md)."
    )


async def open_sqlite_database(path: Path) -> Database:
    """The SQLite file, migrated; a lock held too long or a damaged file said in plain words."""
    try:
        return await SqliteDatabase.open(path)
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) and database_busy(error):
            raise DatabaseBusyError(
                f"The database {path} is locked by another process; try again later."
            ) from None
        if (error.sqlite_errorcode & 0xFF) not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise
        raise _damaged(path, str(error)) from None


async def check_database(database: Database) -> None:
    """SQLite's own check of every page (its quick check), at every start: a damaged page found now,
    in plain words, rather than a patient's reply failing later."""
    found = await database.integrity_check()
    if found != ["ok"]:
        raise _damaged(
            database.description,
            f"the database's own check found {len(found)} problem(s), the first: {found[0]}",
        )


async def ensure_device_signed(gateway: MatrixGateway, accounts: AccountRepository) -> None:
    """Sign our device with the self-signing key unless the device key now in use is the one last signed
    (first start, or the device changed). Used by `init` and at every start."""
    account = await accounts.load()
    if account is None or account.cross_signing is None:
        return
    if account.signed_device_key == gateway.device_ed25519():
        return
    signed = await gateway.sign_own_device(account.cross_signing)
    await accounts.save(replace(account, signed_device_key=signed))
    log.info("signed the bot's device with its cross-signing identity")


class StartupChecks:
    def __init__(
        self,
        *,
        database: Database,
        vault: ImageVault,
        pool: CpuPool,
        ledger: DeletionLedger,
        submissions: SubmissionRepository,
        postings: PostingRepository,
        audit: AuditLog,
        clock: Clock,
        accounts: AccountRepository,
        gateway: MatrixGateway,
    ) -> None:
        self._database = database
        self._vault = vault
        self._pool = pool
        self._ledger = ledger
        self._submissions = submissions
        self._postings = postings
        self._audit = audit
        self._clock = clock
        self._accounts = accounts
        self._gateway = gateway

    async def replay_deletion_ledger(self) -> None:
        """Destructions the database does not reflect (a restored backup, a crash before the commit): again."""
        report = await DeletionReplay(
            self._ledger,
            self._database,
            self._vault,
            submissions=self._submissions,
            postings=self._postings,
            audit=self._audit,
            clock=self._clock,
        ).run()
        if report.replayed or report.rejected:
            log.info(
                "deletion ledger: %d of %d entries carried out again (%d records changed, %d files removed);"
                " %d lines did not verify",
                report.replayed,
                report.entries,
                report.rows_changed,
                report.files_removed,
                report.rejected,
            )

    async def check_vault(self) -> None:
        """The vault can be written, read, listed and deleted (for S3: the bucket is reachable, the credentials
        work, versioning is off); raises `VaultError` saying what is wrong."""
        await self._pool.run(self._vault.check)

    async def clean_up_after_crash(self) -> None:
        """Torn temporary files and vault files whose row was never committed: remove them before serving."""
        torn = await self._pool.run(self._vault.clean_temporary_files)
        known = await ImageInventory(self._database).live_image_ids()
        orphans = await self._pool.run(self._vault.sweep_orphans, known)
        if torn or orphans:
            log.info("start-up clean-up removed %d torn and %d orphaned vault files", torn, len(orphans))

    async def sign_own_device(self) -> None:
        await ensure_device_signed(self._gateway, self._accounts)

    async def damaged_images(self) -> tuple[int, list[str]]:
        """Every stored image opened and checked (its AES-GCM tag binds it to its id): how many were checked,
        and one plain line per image that cannot be shown. For `photobot check`: it reads the whole vault."""
        inventory = ImageInventory(self._database)
        images: list[tuple[str, str, bytes]] = []
        for submission_id, reference in await inventory.kept_submissions():
            for photo in await self._submissions.photos(submission_id):
                images.append((f"{reference} photo {photo.number}", photo.image_id, photo.image_key))
                if photo.record_image_id and not photo.original_destroyed:
                    name = f"{reference} photo {photo.number} (the unedited original)"
                    images.append((name, photo.photo_id, photo.wrapped_key))
        for photo_id, wrapped_key in await inventory.unsent_photo_keys():
            images.append(("a photo in an unfinished conversation", photo_id, wrapped_key))
        damaged = []
        for name, image_id, key in images:
            try:
                await self._pool.run(self._vault.get, image_id, key)
            except ImageMissingError:
                damaged.append(f"{name}: its file is missing from the vault")
            except ImageKeyUnavailableError:
                damaged.append(f"{name}: its key was made under a master key this installation does not hold")
            except ImageUnreadableError:
                damaged.append(f"{name}: its file is damaged (or is another image's file)")
        return len(images), damaged
