"""`photobot backup` and `photobot restore` with the practice's state in PostgreSQL (and its images in an S3
bucket): the backup is the same SQLite file and vault folder as on the embedded default, taken from one
snapshot while the bot writes; a restore of a backup taken before a deletion brings no deleted photo back
(the deletion ledger is replayed into PostgreSQL and the bucket); a photo stored after the backup leaves the
bucket with its row; the audit chain stays valid and append-only.

Real components: the suite's PostgreSQL; deletions are made as the clinician desk makes them (the ledger
entry, the rows and keys in one transaction, the images afterwards).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from bot.app import open_app
from bot.keyring import Keyring, Sealer
from bot.maintenance_cli import backup, data_paths, restore
from bot.settings import DatabaseUrl
from storage.audit import AuditLog
from storage.backup import RESTORE_MARKER, RestoreInterruptedError, make_backup, restore_backup
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.lease import Lease, lease_key
from storage.outbox import Outbox
from storage.postgres import PostgresDatabase
from storage.postgres_copy import read_sqlite_rows, replace_postgres_contents
from storage.s3_vault import S3Vault
from storage.vault import ImageUnreadableError, ImageVault, Vault
from tests.storage.installation import Installation, build_installation
from tests.storage.test_backup import delete_submission, destroy_original, store_photo
from tests.support.servers import Bucket

if TYPE_CHECKING:
    from devtools.object_store import ObjectStore
    from devtools.postgres import PostgresServer


@pytest.fixture(scope="module")
def backup_bucket(object_store: ObjectStore) -> Bucket:
    """One bucket for the module, a prefix per test (a bucket per test would use up SeaweedFS's volumes)."""
    return Bucket(object_store, object_store.create_bucket("photobot-backup-" + secrets.token_hex(4)))


@pytest.fixture(params=["postgres+s3", "postgres+files", "sqlite+s3"])
async def installation(tmp_path: Path, request: pytest.FixtureRequest) -> Installation:
    """The practice's rows in PostgreSQL or SQLite, its images in a bucket (a prefix of its own) or a folder."""
    database, vault = str(request.param).split("+")
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    environment = None
    if vault == "s3":
        environment = request.getfixturevalue("backup_bucket").environment("p" + secrets.token_hex(6))
    return await build_installation(tmp_path / "practice", database_url=url, vault_environment=environment)


def on_postgres(installation: Installation) -> bool:
    return installation.settings.database.engine == "postgresql"


def put_back(installation: Installation, image_id: str, content: bytes) -> None:
    """An image's stored bytes put back into the practice's vault by hand (file or object)."""
    vault = installation.vault()
    if isinstance(vault, S3Vault):
        vault.write_object(image_id, content)
    else:
        (installation.settings.vault_dir / f"{image_id}.enc").write_bytes(content)


async def live_keys(installation: Installation) -> dict[str, bytes]:
    """Image id -> wrapped key, for every image the practice's PostgreSQL database names."""
    database = await installation.open()
    try:
        async with database.connection.execute(
            "SELECT photo_id, wrapped_key, original_destroyed_at, record_image_id, record_wrapped_key FROM photos"
        ) as cursor:
            rows = list(await cursor.fetchall())
    finally:
        await database.close()
    keys = {str(row[0]): bytes(row[1]) for row in rows if row[2] is None and row[1]}
    keys |= {str(row[3]): bytes(row[4]) for row in rows if row[3]}
    return keys


def backup_keys(database_file: Path) -> dict[str, bytes]:
    connection = sqlite3.connect(f"file:{database_file}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT photo_id, wrapped_key, original_destroyed_at, record_image_id, record_wrapped_key FROM photos"
        ).fetchall()
    finally:
        connection.close()
    keys = {str(row[0]): bytes(row[1]) for row in rows if row[2] is None and row[1]}
    keys |= {str(row[3]): bytes(row[4]) for row in rows if row[3]}
    return keys


def readable(vault: ImageVault, keys: dict[str, bytes], images: dict[str, bytes]) -> list[str]:
    found = []
    for image_id, wrapped in keys.items():
        try:
            if vault.get(image_id, wrapped) == images[image_id]:
                found.append(image_id)
        except ImageUnreadableError:
            pass
    return sorted(found)


async def resurrected(installation: Installation, destroyed: list[str]) -> list[str]:
    """Destroyed images that are readable again, or whose ciphertext is back in the vault."""
    keys = await live_keys(installation)
    vault = installation.vault()
    alive = {image: keys[image] for image in destroyed if image in keys}
    stored = [image for image in destroyed if vault.exists(image)]
    return sorted(set(readable(vault, alive, installation.images)) | set(stored))


async def status_of(installation: Installation, submission_id: str) -> tuple[str, int]:
    database = await installation.open()
    try:
        async with database.connection.execute(
            "SELECT status, length(nhs_number) FROM submissions WHERE submission_id = ?", (submission_id,)
        ) as cursor:
            row = await cursor.fetchone()
    finally:
        await database.close()
    assert row is not None
    return str(row[0]), int(row[1])


async def audit_problems(installation: Installation) -> list[str]:
    database = await installation.open()
    try:
        return (await AuditLog(database, installation.keyring(), installation.clock).verify()).problems
    finally:
        await database.close()


# ---- backup ---------------------------------------------------------------------------------------------


async def test_a_backup_of_postgresql_is_one_snapshot_in_the_same_format(
    installation: Installation, tmp_path: Path
) -> None:
    """Taken while a submission is deleted and a photo arrives just after the snapshot, the backup is a
    SQLite file that passes its integrity check, names exactly the images it holds, each of which reads back
    byte for byte, holds no deleted photo (the ledger replayed onto it) and no later one."""
    first, second, *_ = list(installation.submissions)
    deleted: list[str] = []
    arrived: list[str] = []

    async def meanwhile() -> None:
        deleted.extend(await delete_submission(installation, first))
        arrived.append(await store_photo(installation, second, 1))

    report = await make_backup(
        data_paths(installation.settings),
        tmp_path / "backup",
        installation.keyring(),
        installation.clock,
        after_snapshot=meanwhile,
    )
    backup_dir = tmp_path / "backup"
    connection = sqlite3.connect(backup_dir / "photobot.sqlite3")
    assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    submissions = connection.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    audit = connection.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    connection.close()
    keys = backup_keys(backup_dir / "photobot.sqlite3")
    vault = Vault(backup_dir / "vault", installation.keyring())
    assert readable(vault, keys, installation.images) == sorted(keys)
    assert sorted(path.stem for path in (backup_dir / "vault").iterdir()) == sorted(keys)
    assert report.unreadable == () and report.replayed.replayed == 1
    assert not set(deleted) & set(keys) and not set(arrived) & set(keys)
    assert len(keys) == len(installation.images) - len(deleted) - len(arrived)
    assert submissions == len(installation.submissions) and audit >= len(installation.submissions)
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["master_key_id"] == installation.keyring().current_key_id
    assert sorted(path.name for path in backup_dir.iterdir()) == [
        "manifest.json",
        "nio-store",
        "photobot.sqlite3",
        "vault",
    ]


# ---- restore --------------------------------------------------------------------------------------------


async def test_restoring_into_postgresql_a_backup_taken_before_a_delete_resurrects_nothing(
    installation: Installation, tmp_path: Path
) -> None:
    """Backup; then a clinician deletes a submission, an edited photo's original is destroyed and a new photo
    arrives. After the restore: 0 destroyed images readable or stored, the later photo's row and image gone,
    every other image reads as before, the submission deleted with its NHS number erased, the audit chain
    valid and still append-only, and the bot's next insert gets a fresh id."""
    first, second, third = list(installation.submissions)
    keyring = installation.keyring()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    destroyed = await delete_submission(installation, first)
    destroyed += await destroy_original(installation, second, f"{second}-0")
    later = await store_photo(installation, third, 7)
    assert await resurrected(installation, destroyed) == []

    report = await restore_backup(
        data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock
    )

    assert await resurrected(installation, destroyed) == []
    assert report.replayed.replayed == 2
    survivors = await live_keys(installation)
    assert later not in survivors and not installation.vault().exists(later), "stored after the backup"
    assert sorted(survivors) == sorted(set(installation.images) - set(destroyed) - {later})
    assert readable(installation.vault(), survivors, installation.images) == sorted(survivors)
    assert installation.vault().image_ids() == sorted(survivors), "nothing else left in the vault"
    assert await status_of(installation, first) == ("deleted", 0)
    assert await audit_problems(installation) == []
    assert not (installation.settings.data_dir / RESTORE_MARKER).exists()

    if on_postgres(installation):
        await _audit_log_stays_append_only(installation.settings.database.url)
    database = await installation.open()
    try:
        outbox = Outbox(database, Sealer(keyring), installation.clock)
        queued = len(await outbox.pending())
        async with database.transaction() as db:  # the restored bot's first writes get fresh ids
            await AuditLog(database, keyring, installation.clock).append(
                db, actor="bot", action="view", subject="after the restore"
            )
            await outbox.add(db, next(iter(installation.members)), "txn-after", "message", {"text": "hi"})
        assert len(await outbox.pending()) == queued + 1, "a reply queued after the restore was lost"
    finally:
        await database.close()
    assert await audit_problems(installation) == []


async def _audit_log_stays_append_only(url: str) -> None:
    with psycopg.connect(url) as connection:
        actions = connection.execute("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 2").fetchall()
        assert {row[0] for row in actions} == {"delete", "images_destroyed"}
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            connection.execute("DELETE FROM audit_log")
        connection.rollback()
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            connection.execute("UPDATE audit_log SET actor = 'someone else'")
        connection.rollback()
        restore_id = connection.execute("SELECT MAX(restore_id) FROM restores").fetchone()
    assert restore_id is not None and restore_id[0] is not None


async def test_copied_back_rows_are_corrected_by_the_bots_start_up(
    installation: Installation, tmp_path: Path
) -> None:
    """An operator who puts a backup's rows and images back by hand (the database's own restore tools, not
    `photobot restore`) still gets no deleted photo back: the bot's start-up replays the deletion ledger
    into PostgreSQL and the vault before it serves."""
    first = next(iter(installation.submissions))
    keyring = installation.keyring()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    destroyed = await delete_submission(installation, first)

    if not on_postgres(installation):
        pytest.skip("on SQLite: test_backup.py copies the file back by hand")
    database = await installation.open()
    assert isinstance(database, PostgresDatabase)
    try:
        await replace_postgres_contents(database, read_sqlite_rows(tmp_path / "backup" / "photobot.sqlite3"))
    finally:
        await database.close()
    vault = installation.vault()
    for image in destroyed:
        put_back(installation, image, (tmp_path / "backup" / "vault" / f"{image}.enc").read_bytes())
    assert await resurrected(installation, destroyed) == sorted(destroyed), "put back by hand: readable"

    app = await open_app(installation.settings, installation.clock)
    try:
        await app.checks.replay_deletion_ledger()
    finally:
        await app.close()
    assert await resurrected(installation, destroyed) == []
    assert not any(vault.exists(image) for image in destroyed)
    assert await status_of(installation, first) == ("deleted", 0)


async def test_restore_into_postgresql_refuses_while_the_bot_runs(
    installation: Installation, tmp_path: Path
) -> None:
    """With the bot holding the data directory, restore refuses and PostgreSQL keeps its newer rows."""
    keyring = installation.keyring()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    photo = await store_photo(installation, next(iter(installation.submissions)), 1)
    with (
        DataDirLock.acquire(installation.settings.data_dir, "the bot (photobot run)"),
        pytest.raises(DataDirBusyError, match="in use by the bot"),
    ):
        await restore_backup(
            data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock
        )
    assert photo in await live_keys(installation)
    assert not (installation.settings.data_dir / RESTORE_MARKER).exists()


async def test_the_commands_back_up_and_restore_postgresql(
    installation: Installation, tmp_path: Path
) -> None:
    """`photobot backup` and `photobot restore` (the functions the CLI runs) on PostgreSQL, with the lines
    they print: a deletion made after the backup is carried out again."""
    said: list[str] = []
    assert await backup(installation.settings, tmp_path / "b", installation.clock, said.append) == 0
    destroyed = await delete_submission(installation, next(iter(installation.submissions)))
    assert await restore(installation.settings, tmp_path / "b", installation.clock, said.append) == 0
    assert any("carried out again" in line for line in said), said
    assert await resurrected(installation, destroyed) == []
    assert isinstance(installation.keyring(), Keyring)
    await asyncio.sleep(0)


async def test_a_backup_restores_into_a_new_empty_database(
    installation: Installation, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Disaster recovery: the database server is lost and the backup is restored into a new, empty
    PostgreSQL database. Every photo reads back, the audit chain verifies, and the bot's next writes get
    fresh ids (each identity continues after the restored rows)."""
    if not on_postgres(installation):
        pytest.skip("a PostgreSQL matter")
    keyring = installation.keyring()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    name = "photobot_new_" + secrets.token_hex(4)
    url = postgres_server.create_database(name)
    fresh = replace(installation, settings=replace(installation.settings, database_url=DatabaseUrl(url)))
    try:
        await restore_backup(data_paths(fresh.settings), tmp_path / "backup", keyring, installation.clock)
        keys = await live_keys(fresh)
        assert sorted(keys) == sorted(installation.images)
        assert readable(fresh.vault(), keys, installation.images) == sorted(keys)
        assert await audit_problems(fresh) == []
        database = await fresh.open()
        try:
            outbox = Outbox(database, Sealer(keyring), installation.clock)
            queued = len(await outbox.pending())
            async with database.transaction() as db:
                await outbox.add(db, next(iter(installation.members)), "txn-after", "message", {"text": "hi"})
            assert len(await outbox.pending()) == queued + 1, "a reply queued after the restore was lost"
        finally:
            await database.close()
    finally:
        postgres_server.drop_database(name)


async def test_a_restore_killed_half_way_blocks_the_bot_and_finishes_when_run_again(
    installation: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore that dies after putting the backup's images back but before its rows are in (as a kill
    would leave it: marker written, the old rows untouched) keeps the bot from starting; run again, it
    finishes: the deletion made after the backup is carried out again, nothing resurrected."""
    if not on_postgres(installation):
        pytest.skip("a PostgreSQL matter")
    keyring = installation.keyring()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    destroyed = await delete_submission(installation, next(iter(installation.submissions)))

    async def dies(*_: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr("storage.backup.replace_postgres_contents", dies)
    with pytest.raises(SystemExit):
        await restore_backup(
            data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock
        )
    monkeypatch.undo()
    assert (installation.settings.data_dir / RESTORE_MARKER).exists()
    with pytest.raises(RestoreInterruptedError):
        await open_app(installation.settings, installation.clock)

    await restore_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    assert await resurrected(installation, destroyed) == []
    keys = await live_keys(installation)
    assert readable(installation.vault(), keys, installation.images) == sorted(keys)
    assert not (installation.settings.data_dir / RESTORE_MARKER).exists()


async def test_restore_refuses_while_a_bot_holds_the_practices_lease(
    installation: Installation, tmp_path: Path
) -> None:
    """On PostgreSQL a bot (or a standby that took over) serving the practice from anywhere holds its lease:
    `photobot restore` refuses and changes nothing; once the lease is released, it runs."""
    if not on_postgres(installation):
        pytest.skip("a PostgreSQL matter: SQLite has no lease")
    keyring = installation.keyring()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    photo = await store_photo(installation, next(iter(installation.submissions)), 1)
    serving = Lease(
        installation.settings.database.url, lease_key(installation.settings.user_id), on_lost=lambda _: None
    )
    assert await serving.acquire(asyncio.Event())
    try:
        with pytest.raises(DataDirBusyError, match="lease"):
            await restore(installation.settings, tmp_path / "backup", installation.clock, lambda _: None)
    finally:
        serving.release()
    assert photo in await live_keys(installation)
    assert not (installation.settings.data_dir / RESTORE_MARKER).exists()
    assert await restore(installation.settings, tmp_path / "backup", installation.clock, lambda _: None) == 0
    assert photo not in await live_keys(installation)
