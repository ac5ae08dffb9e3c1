"""A copy of the database made before a deletion, put back, forgets the deleted submission again: on each
engine, the deletion ledger's replay destroys its keys, its patient details and its vault files.

The copy is what an operator's backup would hold: for SQLite the file, for PostgreSQL a database cloned from
the live one (`CREATE DATABASE ... TEMPLATE`, as a restored base backup would be). The deletion itself is
only in the ledger, as after a restore.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bot.keyring import Sealer
from devtools.postgres import PostgresServer
from storage.audit import AuditLog
from storage.database import SqliteDatabase
from storage.deletion_ledger import DeletionReplay, LedgerKind
from storage.postgres import PostgresDatabase
from storage.postings import PostingRepository
from storage.sql import Database
from storage.submissions import Status, SubmissionRepository
from tests.storage.installation import Installation, build_installation


@pytest.fixture(params=["sqlite", "postgresql"])
async def installation(tmp_path: Path, request: pytest.FixtureRequest) -> Installation:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    return await build_installation(tmp_path, submissions=2, photos_each=2, database_url=url)


@pytest.fixture
async def copy_from_before(
    installation: Installation, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Database]:
    """The backup, taken now (the installation's database is closed), opened later as the restored one."""
    if installation.settings.database.engine == "sqlite":
        copy = tmp_path / "backup.sqlite3"
        shutil.copyfile(installation.settings.database_path, copy)
        yield await _after_the_deletion(installation, lambda: SqliteDatabase.open(copy))
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    live = installation.settings.database.url.rsplit("/", 1)[1]
    name = "photobot_backup_" + secrets.token_hex(4)
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(live))
        )
    try:
        yield await _after_the_deletion(installation, lambda: PostgresDatabase.open(server.url(name)))
    finally:
        server.drop_database(name)


async def _after_the_deletion(
    installation: Installation, restore: Callable[[], Awaitable[Database]]
) -> Database:
    """Delete the first submission on the live database (recorded in the ledger), then open the copy."""
    victim = next(iter(installation.submissions))
    live = await installation.open()
    try:
        async with live.transaction() as db:
            await installation.ledger().record(
                db, LedgerKind.SUBMISSION_DELETED, installation.clock.now(), submission_id=victim
            )
    finally:
        await live.close()
    return await restore()


async def test_a_restored_copy_forgets_a_submission_deleted_after_it_was_made(
    installation: Installation, copy_from_before: Database
) -> None:
    database = copy_from_before
    keyring = installation.keyring()
    sealer = Sealer(keyring)
    victim, survivor = list(installation.submissions)
    submissions = SubmissionRepository(database, sealer)
    vault = installation.vault(keyring)
    images = [image for photo in await submissions.photos(victim) for image in photo.image_ids]
    assert images and all(vault.exists(image) for image in images), "the copy still shows the photos"

    replay = DeletionReplay(
        installation.ledger(keyring),
        database,
        vault,
        submissions=submissions,
        postings=PostingRepository(database, sealer, installation.clock),
        audit=AuditLog(database, keyring, installation.clock),
        clock=installation.clock,
    )
    try:
        report = await replay.run()
        assert (report.replayed, report.files_removed) == (1, len(images))
        deleted = await submissions.by_id(victim)
        assert deleted is not None and deleted.status is Status.DELETED
        assert not any(vault.exists(image) for image in images)
        assert all(photo.image_ids == () for photo in await submissions.photos(victim))
        kept = await submissions.photos(survivor)
        assert all(vault.get(photo.photo_id, photo.wrapped_key) for photo in kept), "a survivor was lost"
        assert (await replay.run()).replayed == 0, "the replay is not idempotent"
        assert (await AuditLog(database, keyring, installation.clock).verify()).ok
    finally:
        await database.close()
