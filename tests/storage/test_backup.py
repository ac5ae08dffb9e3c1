"""`photobot backup` and `photobot restore` on real files: a backup taken while the bot writes is consistent,
and restoring a backup taken before a deletion never brings a deleted photo back (the deletion ledger).

Deletions are made as the clinician desk makes them: in one transaction the ledger entry, the removal of the
photo rows (their wrapped keys) and the submission's new status; the vault files afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import open_app
from bot.exit_codes import ExitCode
from bot.keyring import Keyring, MasterKey, Sealer
from bot.maintenance_cli import data_paths, rotate_key
from storage.backup import (
    RESTORE_MARKER,
    BackupError,
    RestoreInterruptedError,
    make_backup,
    refuse_interrupted_restore,
    restore_backup,
)
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.deletion_ledger import LedgerKind, submission_image_ids
from storage.submissions import Status, SubmissionRepository
from storage.vault import ImageUnreadableError, Vault
from tests.storage.installation import Installation, build_installation, environment, synthetic_jpeg

FORGER = MasterKey(key_id="mk-0000f0f0", secret=bytes(range(7, 39)))


@pytest.fixture
async def installation(tmp_path: Path) -> Installation:
    return await build_installation(tmp_path / "practice")


# ---- what the bot does, for the tests -------------------------------------------------------------------


async def delete_submission(installation: Installation, submission_id: str) -> list[str]:
    """A clinician's `!delete`, as the desk commits it; returns the destroyed image ids."""
    keyring = installation.keyring()
    database = await installation.open()
    try:
        repository = SubmissionRepository(database, Sealer(keyring))
        now = installation.clock.now()
        async with database.transaction() as db:
            images = list(await submission_image_ids(db, submission_id))
            await installation.ledger(keyring).record(
                db, LedgerKind.SUBMISSION_DELETED, now, submission_id=submission_id, image_ids=images
            )
            await repository.images_destroyed(db, submission_id, now)
            await repository.set_status(db, submission_id, Status.DELETED, now)
            await repository.erase_patient_details(db, submission_id)
        vault = installation.vault(keyring)
        for image in images:
            vault.destroy(image)
        await database.shred_checkpoint()
    finally:
        await database.close()
    return images


async def store_photo(installation: Installation, submission_id: str, number: int) -> str:
    """A patient's photo arriving: the file written first, then its row committed."""
    keyring = installation.keyring()
    photo_id = f"{submission_id}-new{number}"
    data = synthetic_jpeg(1000 + number)
    stored = installation.vault(keyring).put(photo_id, data)
    database = await installation.open()
    try:
        async with database.transaction() as db:
            await db.execute(
                "INSERT INTO photos (photo_id, room_id, conversation_id, submission_id, wrapped_key, size, digest,"
                " mime, source_format, quality, created_at) SELECT ?, room_id, ?, ?, ?, ?, ?, 'image/jpeg', 'jpeg',"
                " '', '2031-03-04T09:30:00+00:00' FROM submissions WHERE submission_id = ?",
                (
                    photo_id,
                    submission_id,
                    submission_id,
                    stored.wrapped_key,
                    stored.size,
                    stored.digest,
                    submission_id,
                ),
            )
    finally:
        await database.close()
    installation.images[photo_id] = data
    return photo_id


def referenced(database_file: Path) -> dict[str, bytes]:
    """Image id -> wrapped key, for every image a database names."""
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


def readable(
    vault_dir: Path, keys: dict[str, bytes], keyring: Keyring, images: dict[str, bytes]
) -> list[str]:
    """The ids among `keys` that the vault at `vault_dir` returns, byte for byte as stored."""
    vault = Vault(vault_dir, keyring)
    found = []
    for image_id, wrapped in keys.items():
        try:
            if vault.get(image_id, wrapped) == images[image_id]:
                found.append(image_id)
        except ImageUnreadableError:
            pass
    return sorted(found)


def status_of(database_file: Path, submission_id: str) -> tuple[str, int]:
    connection = sqlite3.connect(database_file)
    try:
        status, nhs = connection.execute(
            "SELECT status, length(nhs_number) FROM submissions WHERE submission_id = ?", (submission_id,)
        ).fetchone()
    finally:
        connection.close()
    return str(status), int(nhs)


def resurrected(installation: Installation, destroyed: list[str]) -> list[str]:
    """Destroyed images that are readable again: named by the database with a key that opens their file."""
    keys = referenced(installation.settings.database_path)
    alive = {image: keys[image] for image in destroyed if image in keys}
    files = [image for image in destroyed if (installation.settings.vault_dir / f"{image}.enc").exists()]
    return sorted(
        set(readable(installation.settings.vault_dir, alive, installation.keyring(), installation.images))
        | set(files)
    )


# ---- backup ---------------------------------------------------------------------------------------------


async def test_a_backup_taken_while_photos_arrive_and_are_deleted_is_consistent(
    installation: Installation, tmp_path: Path
) -> None:
    """While photos keep arriving and a submission is deleted, the backup's database passes its integrity
    check and every image it names is in the backup and reads back byte for byte."""
    first, second, *_ = list(installation.submissions)
    stop = asyncio.Event()
    writes: list[str] = []

    async def bot_at_work() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            writes.append(await store_photo(installation, second, number))
            if number == 3:
                writes.extend(await delete_submission(installation, first))
            await asyncio.sleep(0)

    worker = asyncio.create_task(bot_at_work())
    await asyncio.sleep(0.05)
    during = len(writes)
    report = await make_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    written_during = len(writes) - during
    stop.set()
    await worker

    backup = tmp_path / "backup"
    connection = sqlite3.connect(backup / "photobot.sqlite3")
    assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    connection.close()
    keys = referenced(backup / "photobot.sqlite3")
    assert readable(backup / "vault", keys, installation.keyring(), installation.images) == sorted(keys)
    assert report.unreadable == () and report.images == len(keys)
    assert sorted(path.stem for path in (backup / "vault").iterdir()) == sorted(keys), "no stray files"
    assert written_during > 0, "the bot really was writing while the backup was taken"
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["master_key_id"] == installation.keyring().current_key_id
    assert not (backup / "deletion-ledger").exists() and not (backup / "master.key").exists()


async def test_a_photo_deleted_between_the_snapshot_and_the_file_copy_is_not_named_by_the_backup(
    installation: Installation, tmp_path: Path
) -> None:
    """A deletion committed just after the database snapshot (its files gone before they are copied) is
    carried into the backup from the ledger: the backup names no missing file and holds no deleted photo."""
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
    backup = tmp_path / "backup"
    keys = referenced(backup / "photobot.sqlite3")
    assert report.unreadable == ()
    assert readable(backup / "vault", keys, installation.keyring(), installation.images) == sorted(keys)
    assert not set(deleted) & set(keys)
    assert not any((backup / "vault" / f"{image}.enc").exists() for image in deleted)
    assert status_of(backup / "photobot.sqlite3", first) == ("deleted", 0)
    assert report.replayed.replayed == 1


# ---- restore --------------------------------------------------------------------------------------------


async def test_restoring_a_backup_taken_before_a_delete_resurrects_no_photo(
    installation: Installation, tmp_path: Path
) -> None:
    """Backup, then a clinician deletes a submission and an edited photo's original is destroyed; after a
    restore of that backup 0 destroyed photos are readable, the rest read as before, the submission is
    deleted with its NHS number erased, and the audit log records the replay."""
    first, second, *_ = list(installation.submissions)
    await make_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    destroyed = await delete_submission(installation, first)
    original = f"{second}-0"  # edited (it has a record version); keeping it destroys the original
    destroyed += await destroy_original(installation, second, original)
    assert resurrected(installation, destroyed) == []

    report = await restore_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )

    assert resurrected(installation, destroyed) == []
    assert report.replayed.replayed == 2
    survivors = referenced(installation.settings.database_path)
    assert sorted(survivors) == sorted(set(installation.images) - set(destroyed))
    assert readable(
        installation.settings.vault_dir, survivors, installation.keyring(), installation.images
    ) == sorted(survivors)
    assert status_of(installation.settings.database_path, first) == ("deleted", 0)
    assert not (installation.settings.data_dir / RESTORE_MARKER).exists()
    connection = sqlite3.connect(installation.settings.database_path)
    actions = connection.execute("SELECT action, subject FROM audit_log ORDER BY seq DESC LIMIT 2").fetchall()
    connection.close()
    assert {action for action, _ in actions} == {"delete", "images_destroyed"}


async def destroy_original(installation: Installation, submission_id: str, photo_id: str) -> list[str]:
    """`!keep` of an edited photo: its original is destroyed, the record version stays."""
    keyring = installation.keyring()
    database = await installation.open()
    try:
        repository = SubmissionRepository(database, Sealer(keyring))
        async with database.transaction() as db:
            await repository.original_destroyed(db, photo_id, installation.clock.now())
            await installation.ledger(keyring).record(
                db,
                LedgerKind.IMAGES_DESTROYED,
                installation.clock.now(),
                submission_id=submission_id,
                image_ids=[photo_id],
            )
        installation.vault(keyring).destroy(photo_id)
    finally:
        await database.close()
    return [photo_id]


async def test_dropped_conversation_photos_and_replaced_record_versions_stay_destroyed_after_a_restore(
    installation: Installation, tmp_path: Path
) -> None:
    """A photo a patient's unfinished conversation dropped and a record version replaced by a newer edit,
    both destroyed after the backup, stay unreadable after a restore; and a record version made again under
    the same name after the restore is not destroyed by the old ledger entry at the next start-up."""
    keyring = installation.keyring()
    room = next(iter(installation.members))
    dropped = "conversation-photo-1"
    installation.images[dropped] = synthetic_jpeg(4242)
    stored = installation.vault(keyring).put(dropped, installation.images[dropped])
    database = await installation.open()
    try:
        async with database.transaction() as db:
            await db.execute(
                "INSERT INTO photos (photo_id, room_id, conversation_id, wrapped_key, size, digest, mime,"
                " source_format, quality, created_at) VALUES (?, ?, 'conversation-1', ?, ?, ?, 'image/jpeg', 'jpeg',"
                " '', '2031-03-04T09:30:00+00:00')",
                (dropped, room, stored.wrapped_key, stored.size, stored.digest),
            )
    finally:
        await database.close()
    await make_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)

    submission = next(iter(installation.submissions))
    edited, replaced = f"{submission}-0", f"{submission}-0-r1"
    database = await installation.open()
    try:
        repository = SubmissionRepository(database, Sealer(keyring))
        newer = installation.vault(keyring).put(f"{edited}-r2", synthetic_jpeg(4343))
        installation.images[f"{edited}-r2"] = synthetic_jpeg(4343)
        async with database.transaction() as db:  # the patient handler dropping a photo
            await installation.ledger(keyring).record(
                db, LedgerKind.IMAGES_DESTROYED, installation.clock.now(), image_ids=[dropped]
            )
            await db.execute("DELETE FROM photos WHERE photo_id = ?", (dropped,))
        async with database.transaction() as db:  # the clinician desk replacing a record version
            await repository.set_record_version(
                db,
                edited,
                image_id=f"{edited}-r2",
                wrapped_key=newer.wrapped_key,
                size=newer.size,
                digest=newer.digest,
                edits=("crop 0 0 50 50", "blur 1 1 5 5"),
            )
            await installation.ledger(keyring).record(
                db,
                LedgerKind.IMAGES_DESTROYED,
                installation.clock.now(),
                submission_id=submission,
                image_ids=[replaced],
            )
        installation.vault(keyring).destroy(dropped)
        installation.vault(keyring).destroy(replaced)
    finally:
        await database.close()

    await restore_backup(data_paths(installation.settings), tmp_path / "backup", keyring, installation.clock)
    assert resurrected(installation, [dropped, replaced]) == []
    assert edited in referenced(installation.settings.database_path), "the original itself was not destroyed"

    remade = installation.vault(keyring).put(replaced, synthetic_jpeg(4444))  # the edit, made again
    installation.images[replaced] = synthetic_jpeg(4444)
    database = await installation.open()
    try:
        async with database.transaction() as db:
            await SubmissionRepository(database, Sealer(keyring)).set_record_version(
                db,
                edited,
                image_id=replaced,
                wrapped_key=remade.wrapped_key,
                size=remade.size,
                digest=remade.digest,
                edits=("crop 0 0 40 40",),
            )
    finally:
        await database.close()
    app = await open_app(installation.settings, installation.clock)
    try:
        await app.checks.replay_deletion_ledger()
    finally:
        await app.close()
    keys = referenced(installation.settings.database_path)
    assert replaced in readable(installation.settings.vault_dir, keys, keyring, installation.images)


async def test_a_backup_copied_back_by_hand_is_corrected_when_the_bot_starts(
    installation: Installation, tmp_path: Path
) -> None:
    """An operator who copies a backup's files back by hand (not `photobot restore`) still gets no deleted
    photo back: the bot's start-up replays the deletion ledger before it serves."""
    first = next(iter(installation.submissions))
    await make_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    destroyed = await delete_submission(installation, first)
    settings = installation.settings
    for suffix in ("-wal", "-shm"):
        Path(f"{settings.database_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(tmp_path / "backup" / "photobot.sqlite3", settings.database_path)
    shutil.rmtree(settings.vault_dir)
    shutil.copytree(tmp_path / "backup" / "vault", settings.vault_dir)
    assert resurrected(installation, destroyed) == destroyed, "copied back, the photos would be readable"

    app = await open_app(settings, installation.clock)
    try:
        await app.checks.replay_deletion_ledger()
    finally:
        await app.close()
    assert resurrected(installation, destroyed) == []
    assert status_of(settings.database_path, first) == ("deleted", 0)


async def test_restore_refuses_while_the_bot_runs(installation: Installation, tmp_path: Path) -> None:
    """With the bot running (holding the data directory), restore refuses and changes nothing."""
    await make_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    photo = await store_photo(installation, next(iter(installation.submissions)), 1)
    with DataDirLock.acquire(installation.settings.data_dir, "the bot (photobot run)"):
        with pytest.raises(DataDirBusyError, match="in use by the bot"):
            await restore_backup(
                data_paths(installation.settings),
                tmp_path / "backup",
                installation.keyring(),
                installation.clock,
            )
        result = await asyncio.to_thread(_photobot, installation, "restore", str(tmp_path / "backup"))
    assert result.returncode == ExitCode.TEMPORARY and "in use by the bot" in result.stderr
    assert photo in referenced(installation.settings.database_path), "the newer photo is still there"
    assert not (installation.settings.data_dir / RESTORE_MARKER).exists()


async def test_an_interrupted_restore_keeps_the_bot_from_starting_until_it_is_run_again(
    installation: Installation, tmp_path: Path
) -> None:
    """A restore that died half way leaves its marker: the bot refuses to start on the half-restored data,
    and running the restore again finishes it and lets the bot start."""
    await make_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    marker = installation.settings.data_dir / RESTORE_MARKER
    marker.write_text(f"{tmp_path / 'backup'}\n")
    shutil.rmtree(installation.settings.vault_dir)  # as if killed between swapping the database and the vault

    with pytest.raises(RestoreInterruptedError, match="photobot restore"):
        await _open_and_close_app(installation)
    result = await asyncio.to_thread(_photobot, installation, "run")
    assert result.returncode == ExitCode.CONFIG and "interrupted" in result.stderr

    await restore_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    refuse_interrupted_restore(installation.settings.data_dir)
    keys = referenced(installation.settings.database_path)
    assert readable(
        installation.settings.vault_dir, keys, installation.keyring(), installation.images
    ) == sorted(keys)


async def test_a_backup_made_before_a_key_rotation_is_refused(
    installation: Installation, tmp_path: Path
) -> None:
    """After a key rotation an older backup cannot be read (its keys died with the old key): restore says
    so and leaves the installation as it is."""
    await make_backup(
        data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
    )
    await rotate_key(installation.settings, installation.clock, lambda line: None)
    before = referenced(installation.settings.database_path)
    with pytest.raises(BackupError, match="key rotation"):
        await restore_backup(
            data_paths(installation.settings), tmp_path / "backup", installation.keyring(), installation.clock
        )
    assert referenced(installation.settings.database_path) == before


async def test_a_forged_or_foreign_ledger_entry_destroys_nothing(
    installation: Installation, tmp_path: Path
) -> None:
    """Ledger lines that do not verify under the practice's key (edited, or made with another key) are
    ignored by the replay: whoever can write the ledger file cannot make the bot destroy a photo."""
    submission = next(iter(installation.submissions))
    victims = installation.photo_images(submission)
    ledger_file = installation.ledger().path
    from storage.deletion_ledger import DeletionLedger, LedgerEntry  # noqa: PLC0415

    DeletionLedger(ledger_file, Keyring(FORGER)).append(
        LedgerEntry("f" * 32, LedgerKind.SUBMISSION_DELETED, submission, tuple(victims))
    )
    genuine = ledger_file.read_bytes().splitlines()[0]
    edited = json.loads(genuine)
    edited["id"], edited["images"] = "e" * 32, victims
    with ledger_file.open("ab") as file:
        file.write(json.dumps(edited).encode() + b"\n" + b'{"torn": ')

    app = await open_app(installation.settings, installation.clock)
    try:
        await app.checks.replay_deletion_ledger()
    finally:
        await app.close()
    keys = referenced(installation.settings.database_path)
    assert set(victims) <= set(
        readable(installation.settings.vault_dir, keys, installation.keyring(), installation.images)
    )
    contents = installation.ledger().read()
    assert contents.rejected == 3 and len(contents.entries) == 1


async def _open_and_close_app(installation: Installation) -> None:
    app = await open_app(installation.settings, installation.clock)
    await app.close()


def _photobot(installation: Installation, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHOTOBOT_")}
    env |= environment(installation.settings.data_dir)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=installation.settings.data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
