"""Backup and restore against the real bot and a real homeserver: a photo a clinician deleted after the
backup was taken does not come back, whether the backup is restored with `photobot restore` or its files are
copied back by hand (then the bot's start-up replays the deletion ledger). The deletion test runs on both
storage backends: on PostgreSQL + S3 the backup is the same SQLite file and folder of ciphertext, and
"by hand" means the backup's rows put back into PostgreSQL and its objects into the bucket."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.ids import RoomID
from devtools.demo.people import Person
from storage.postgres import PostgresDatabase
from storage.postgres_copy import read_sqlite_rows, replace_postgres_contents
from storage.s3_vault import S3Vault
from storage.vault import ImageUnreadableError
from tests.e2e.conftest import BOTH_BACKENDS, BotFactory, BotUnderTest, PersonFactory
from tests.e2e.workspace import command, images, open_practice, record_versions, submit

pytestmark = pytest.mark.e2e


def _readable(bot: BotUnderTest, photos: list[tuple[str, bytes, str, bytes]]) -> list[str]:
    """The photos of a submission that anyone with the master key could read from the bot's database and
    vault (the data directory, or PostgreSQL and the bucket)."""
    vault = bot.vault()
    rows = {str(row[0]): row[1] for row in bot.query("SELECT photo_id, wrapped_key FROM photos")}
    found = []
    for photo_id, _, _, _ in photos:
        key = rows.get(photo_id)
        if isinstance(key, bytes) and key:
            try:
                vault.get(photo_id, key)
                found.append(photo_id)
            except ImageUnreadableError:
                pass
    return found


@BOTH_BACKENDS
async def test_a_photo_deleted_after_a_backup_stays_deleted_after_a_restore(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path: Path
) -> None:
    """Backup while the bot runs; a clinician deletes a patient's photo; the backup is restored (by
    `photobot restore`, then by copying its files back by hand); each time the restarted bot's `!view` says
    the submission was deleted, nothing is posted, and no photo of it can be read from the data directory;
    after the copy by hand it is the bot's start-up, before it handles any event, that deleted it again."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot, photos=1)
    photos = record_versions(bot, reference)
    assert len(_readable(bot, photos)) == 1

    backup = tmp_path / "backup-before-delete"
    code, output = await bot.process.command("backup", str(backup))
    assert code == 0, output
    await command(clinician, room, f"!delete {reference} sent to the wrong practice", "Reply yes")
    await command(clinician, room, "yes", "Receipt")
    assert _readable(bot, photos) == []
    await bot.process.stop()

    code, output = await bot.process.command("restore", str(backup))
    assert code == 0, output
    assert "1 deletion(s) made since the backup carried out again" in output
    assert _readable(bot, photos) == []
    await _restart_and_view(bot, clinician, room, reference)

    await bot.process.stop()
    await _copy_back_by_hand(backup, bot)
    assert _readable(bot, photos) == [photos[0][0]], "copied back by hand, the photo is readable again"
    await _restart_and_view(bot, clinician, room, reference)
    assert _readable(bot, photos) == []
    # The bot will also see the clinician's `!delete` again (the restored sync checkpoint is older), but the
    # ledger was replayed first, at start-up, before any event: the first delete on record is the bot's.
    deletes = bot.query(
        "SELECT actor FROM audit_log WHERE subject = ? AND action = 'delete' ORDER BY seq", (reference,)
    )
    assert deletes[0] == ("bot",)
    assert bot.query(
        "SELECT status, length(nhs_number) FROM submissions WHERE reference = ?", (reference,)
    ) == [("deleted", 0)]


async def _restart_and_view(bot: BotUnderTest, clinician: Person, room: RoomID, reference: str) -> None:
    await bot.process.start()
    before = len(clinician.seen.get(room, []))
    await command(clinician, room, f"!view {reference}", "was deleted")
    await clinician.settled(room, quiet=1.0)
    assert images(clinician, room, before) == []


async def _copy_back_by_hand(backup: Path, bot: BotUnderTest) -> None:
    """What an operator might do instead of `photobot restore`: the database and the vault copied back
    (on PostgreSQL + S3: the backup's rows into the database, its objects into the bucket)."""
    if bot.database_url is not None:
        database = await PostgresDatabase.open(bot.database_url)
        try:
            await replace_postgres_contents(database, read_sqlite_rows(backup / "photobot.sqlite3"))
        finally:
            await database.close()
        vault = bot.vault()
        assert isinstance(vault, S3Vault)
        for path in sorted((backup / "vault").glob("*.enc")):
            vault.write_object(path.stem, path.read_bytes())
        return
    data_dir = bot.data_dir
    database_file = data_dir / "photobot.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{database_file}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup / "photobot.sqlite3", database_file)
    shutil.rmtree(data_dir / "vault")
    shutil.copytree(backup / "vault", data_dir / "vault")


async def test_a_restore_does_not_replay_a_request_and_names_the_settings_it_rolled_back(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path: Path
) -> None:
    """A clinician's `!request` and an admin's `!set` made after a backup are not handled again when the
    restored bot starts (the patient gets no new chat, the clinician no second reply), and the operator
    (on the command line) and the admin room are told that the setting was rolled back."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, admin = practice.bot, practice.clinician, practice.admin
    patient = await make_person("patient")
    backup = tmp_path / "backup-before-request"
    code, output = await bot.process.command("backup", str(backup))
    assert code == 0, output

    await command(clinician, practice.clinician_room, f"!request {patient.user_id} left knee", "opened")
    await patient.wait_until(lambda: len(patient.client.rooms) == 1)
    await command(admin, practice.admin_room, "!set max_photos 3", "max_photos is now 3")
    await bot.process.stop()

    code, output = await bot.process.command("restore", str(backup))
    assert code == 0, output
    assert (
        "Rolled back to the backup's values (changed at run time after the backup was made): max_photos."
        in (output)
    )
    await bot.process.start()
    notice = await admin.wait_for_text(practice.admin_room, "restored from a backup", timeout=60)
    assert "max_photos" in notice.body
    await clinician.settled(practice.clinician_room, quiet=3.0)
    await patient.settled(RoomID(next(iter(patient.client.rooms))), quiet=1.0)
    assert len(patient.client.rooms) == 1, "the restored bot opened another chat with the patient"
    opened = [text for text in clinician.texts(practice.clinician_room) if "opened" in text]
    assert len(opened) == 1, opened
    log_text = bot.process.log_text()
    assert log_text.count("command !request: ok") == 1 and log_text.count("command !set: ok") == 1
    assert re.search(r"after the restore: [1-9]\d* event\(s\) sent before it", bot.process.log_text())
