"""Local faults: a full disk, a database locked by another process, damaged files, a bad master key, and a
clock that jumps. Each test shows what the patient, the clinician or the operator notices, and that nothing
is lost, shown wrongly, or destroyed early."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.exit_codes import ExitCode
from bot.ids import EventID, RoomID
from bot.keyring import create_master_key_file
from devtools.demo.people import Person
from tests.e2e.conftest import BotFactory, BotUnderTest, LeakScanTargets, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, open_chat, reach_photos, stored_photos
from tests.e2e.workspace import (
    command,
    images,
    open_practice,
    record_versions,
    submit,
    vault,
    write_clock_offset,
)
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e

STORAGE_FULL_NOTICE = "couldn't save your photo just now"
LOCK_SECONDS = (
    25.0  # over twice the bot's SQLite busy timeout (10 s): the sync loop and a handler both give up
)


async def eventually(check: Callable[[], bool], timeout: float = 60.0, what: str = "the condition") -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - the bot's files and database, read from outside
            await asyncio.sleep(0.25)


def count(bot: BotUnderTest, sql: str, params: tuple[object, ...] = ()) -> int:
    (row,) = bot.query(sql, params)
    return int(str(row[0]))


async def refused(bot: BotUnderTest, subcommand: str) -> tuple[int, str]:
    """`photobot <subcommand>`, which should refuse at once (a `run` that starts would never return)."""
    async with asyncio.timeout(60):
        return await bot.process.command(subcommand)


def vault_entries(bot: BotUnderTest) -> list[str]:
    return sorted(path.name for path in (bot.data_dir / "vault").iterdir() if path.name != "lost+found")


# ---- a full disk ---------------------------------------------------------------------------------------------


async def _photo_waits_while_the_disk_is_full(
    bot: BotUnderTest, make_person: PersonFactory
) -> tuple[Person, RoomID, EventID]:
    """A patient's photo meets a full disk: told kindly once, nothing in the vault, the event kept unhandled
    and the checkpoint held, while another patient is served. Returns (patient, room, photo event)."""
    patient, other = await make_person("patient"), await make_person("patient")
    room_id = await reach_photos(patient, bot)
    other_room = await open_chat(other, bot)
    checkpoint = bot.query("SELECT next_batch FROM sync_checkpoint")
    event_id = await patient.send_photo(
        room_id, make_jpeg(1600, 1200), filename="arm.jpg", mimetype="image/jpeg"
    )
    await patient.wait_for_text(room_id, STORAGE_FULL_NOTICE)
    await answer(other, other_room, NHS_NUMBER, "999 765 4323")  # the bot serves others meanwhile
    await asyncio.sleep(6)  # several retries of the photo
    assert vault_entries(bot) == [], "no partial or temporary file is left in the vault"
    assert count(bot, "SELECT COUNT(*) FROM photos") == 0
    assert count(bot, "SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == 0
    assert bot.query("SELECT next_batch FROM sync_checkpoint") == checkpoint, "the checkpoint did not pass it"
    assert not any("Photo 1 received" in text for text in patient.texts(room_id))
    return patient, room_id, event_id


async def _stored_once(bot: BotUnderTest, patient: Person, room_id: RoomID, event_id: EventID) -> None:
    await patient.wait_for_text(room_id, "Photo 1 received", timeout=90)
    await patient.settled(room_id, quiet=3)
    texts = patient.texts(room_id)
    assert len([text for text in texts if STORAGE_FULL_NOTICE in text]) == 1, (
        "told once, however many retries"
    )
    assert len([text for text in texts if "Photo 1 received" in text]) == 1
    assert count(bot, "SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == 1
    photos = stored_photos(bot)
    assert len(photos) == 1 and photos[0].data[:2] == b"\xff\xd8"
    assert [name for name in vault_entries(bot) if not name.endswith(".enc")] == []


async def test_a_photo_that_meets_a_full_disk_waits_and_is_stored_once_when_there_is_room(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The vault's disk fills mid-write (an injected ENOSPC): the patient is told kindly, once, that we keep
    trying; no partial file stays; the checkpoint waits; after a restart with room the photo is stored once."""
    bot = await make_bot(fault_points="during_vault_write=ENOSPC")
    patient, room_id, event_id = await _photo_waits_while_the_disk_is_full(bot, make_person)
    assert "the disk is full" in bot.process.log_text()
    await bot.process.stop()
    del bot.process.env["PHOTOBOT_FAULT_POINTS"]  # the operator made room
    await bot.process.start()
    await _stored_once(bot, patient, room_id, event_id)


def _mount(*args: str) -> bool:
    """Run mount or umount; whether it worked (mounting needs root, as in a CI container run as root)."""
    return subprocess.run(list(args), capture_output=True, check=False).returncode == 0


async def test_a_real_full_filesystem_holds_the_photo_until_space_is_freed_without_a_restart(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The vault lives on a 64 KiB filesystem: a 1 MB photo waits; once the filesystem is grown the running bot
    stores it, once, with no restart and nothing asked of the patient."""
    bot = await make_bot(start=False)
    vault_dir = bot.data_dir / "vault"
    mounted = os.geteuid() == 0 and await asyncio.to_thread(
        _mount, "mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(vault_dir)
    )
    if not mounted:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        await bot.process.start()
        patient, room_id, event_id = await _photo_waits_while_the_disk_is_full(bot, make_person)
        assert await asyncio.to_thread(_mount, "mount", "-o", "remount,size=16m", str(vault_dir))
        await _stored_once(bot, patient, room_id, event_id)
        assert bot.process.runs == 1
    finally:
        await bot.process.kill()
        await asyncio.to_thread(_mount, "umount", "-l", str(vault_dir))


# ---- a database locked by another process ----------------------------------------------------------------------


async def test_messages_sent_while_another_process_locks_the_database_are_each_handled_once_after(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Another process holds an exclusive lock on the bot's database for 25 s while a patient sends two
    messages: the bot waits without crashing, then answers each once, in order."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)
    greeted = len(patient.seen[room_id])
    assert bot.process.process is not None
    pid = bot.process.process.pid
    locker = sqlite3.connect(bot.data_dir / "photobot.sqlite3", timeout=30, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        began = time.monotonic()
        first = await patient.say(room_id, NHS_NUMBER)
        await asyncio.sleep(1)
        second = await patient.say(room_id, "1")
        await asyncio.sleep(LOCK_SECONDS - (time.monotonic() - began))
        assert len(patient.seen[room_id]) == greeted, "nothing can be committed, so nothing is answered yet"
    finally:
        locker.rollback()
        locker.close()
    await patient.wait_for_text(room_id, "intimate area", after=greeted, timeout=90)
    await patient.settled(room_id, quiet=3)
    texts = patient.texts(room_id)[greeted:]
    read_back = [index for index, text in enumerate(texts) if "999 765 4323" in text]
    question = [index for index, text in enumerate(texts) if "intimate area" in text]
    assert len(read_back) == 1 and len(question) == 1 and read_back[0] < question[0]
    for event_id in (first, second):
        assert count(bot, "SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == 1
    assert bot.query("SELECT outcome FROM handled_events WHERE event_id IN (?, ?)", (first, second)) == [
        ("handled",),
        ("handled",),
    ], "neither was answered with 'something went wrong'"
    assert bot.process.process.returncode is None and bot.process.process.pid == pid and bot.process.runs == 1
    assert "the database is locked by another process" in bot.process.log_text()


# ---- damaged files --------------------------------------------------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


async def test_a_damaged_or_swapped_vault_file_is_never_shown_and_check_names_it(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Photo 1's file has one bit flipped and photo 2's file is replaced by photo 3's: `!view` shows only photo
    3, as itself, and says photos 1 and 2 are damaged; `photobot check` names them and exits 1."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot, photos=3)
    versions = record_versions(bot, reference)
    genuine = [vault(bot).get(shown_id, key) for _, _, shown_id, key in versions]
    files = [bot.data_dir / "vault" / f"{shown_id}.enc" for _, _, shown_id, _ in versions]
    _flip_a_byte(files[0])
    shutil.copyfile(files[2], files[1])

    before = len(clinician.seen.get(room, []))
    await command(clinician, room, f"!view {reference}", "Showing")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) >= 1, timeout=60)
    await clinician.settled(room, quiet=5)
    shown = images(clinician, room, before)
    assert [seen.body for seen in shown] == [f"{reference} photo 3 of 3"]
    assert await clinician.download_image(shown[0]) == genuine[2]
    for number in (1, 2):
        notice = await clinician.wait_for_text(
            room, f"Photo {number} of {reference} is damaged", after=before
        )
        assert "cannot be shown" in notice.body
    log_text = bot.process.log_text()
    assert log_text.count("could not be read from the vault") >= 2

    code, output = await bot.process.command("check")
    assert code == 1, output
    assert "2 of 3 stored image(s) cannot be shown" in output
    assert f"{reference} photo 1: its file is damaged" in output
    assert f"{reference} photo 2: its file is damaged" in output
    assert f"{reference} photo 3" not in output


async def test_a_damaged_database_page_stops_start_up_and_check_with_plain_words(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A page of the conversations table is overwritten: `photobot run` and `photobot check` refuse, saying the
    database is damaged and to restore a backup, and leave the file as it was."""
    bot = await make_bot()
    patient = await make_person("patient")
    await open_chat(patient, bot)
    await bot.process.stop()
    database = bot.data_dir / "photobot.sqlite3"
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        (root_page,) = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'conversations'"
        ).fetchone()
    finally:
        connection.close()
    with database.open("r+b") as file:
        file.seek((root_page - 1) * page_size)
        file.write(b"\xff" * 16)  # the b-tree page header: not a page type SQLite knows
    damaged = database.read_bytes()

    for subcommand in ("run", "check"):
        code, output = await refused(bot, subcommand)
        assert code == ExitCode.CONFIG, output
        assert "is damaged" in output and "restore your latest backup" in output, output
        assert "Traceback" not in output
    assert database.read_bytes() == damaged, "the damaged file is kept as it was, for investigation"


# ---- the master key ---------------------------------------------------------------------------------------------


async def test_a_master_key_that_cannot_open_the_data_stops_start_up_and_is_never_replaced(
    make_bot: BotFactory, tmp_path: Path, leak_scan_targets: LeakScanTargets
) -> None:
    """Another installation's key, a directory, a truncated file, or no key at all: `run` and `check` refuse with
    a clear message and exit 2, and no new key is ever generated in its place."""
    bot = await make_bot(start=False)
    key_file = bot.data_dir / "master.key"
    key = key_file.read_bytes()
    create_master_key_file(tmp_path / "other.key")
    leak_scan_targets.master_keys.append(tmp_path / "other.key")  # a key file, where a key belongs

    def another_installations_key() -> None:
        key_file.write_bytes((tmp_path / "other.key").read_bytes())

    def a_directory() -> None:
        key_file.unlink()
        key_file.mkdir()

    def a_truncated_file() -> None:
        key_file.rmdir()
        key_file.write_bytes(key[:30])
        key_file.chmod(0o600)

    cases: list[tuple[Callable[[], None], str]] = [
        (another_installations_key, "does not open this installation's data"),
        (a_directory, "is not a regular file"),
        (a_truncated_file, "not a valid"),
        (key_file.unlink, "photobot init"),
    ]
    for damage, expected in cases:
        damage()
        name = damage.__name__
        left = key_file.read_bytes() if key_file.is_file() else None
        for subcommand in ("run", "check"):
            code, output = await refused(bot, subcommand)
            assert code == ExitCode.CONFIG, f"{name}: {output}"
            assert expected in output, f"{name}: {output}"
            assert "Traceback" not in output, f"{name}: {output}"
            assert (key_file.read_bytes() if key_file.is_file() else None) == left, f"{name}: key replaced"
    assert not key_file.exists(), "no key was generated in place of the missing one"
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    await bot.process.start()


# ---- clock jumps -----------------------------------------------------------------------------------------------


async def test_a_clock_set_back_then_corrected_ends_nothing_early(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path: Path
) -> None:
    """The clock goes back an hour while a patient adds a note and a clinician views a view-then-delete
    submission, then is corrected: the conversation does not expire and the submission is not destroyed
    while they are recent; both happen once they are really due."""
    clock_file = tmp_path / "clock-offset"
    write_clock_offset(clock_file, 0)
    practice = await open_practice(
        make_bot,
        make_person,
        test_clock_file=str(clock_file),
        test_conversation_timeout_seconds="20",  # housekeeping every 5 s
        viewing_window="30s",
    )
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    viewer_patient, patient = await make_person("patient"), await make_person("patient")
    _, reference = await submit(viewer_patient, bot, keep=False)  # view then delete
    room_id = await reach_photos(patient, bot)
    await patient.send_photo(room_id, make_jpeg(1600, 1200), filename="arm.jpg", mimetype="image/jpeg")
    await patient.wait_for_text(room_id, "Photo 1 received")

    photo_at = time.monotonic()

    async def until(seconds_after_photo: float) -> None:
        await asyncio.sleep(max(0.0, photo_at + seconds_after_photo - time.monotonic()))

    write_clock_offset(clock_file, -3600)
    await until(6)  # a housekeeping pass (every 5 s) sees the clock go back
    await command(clinician, room, f"!view {reference}", "Showing")  # first viewed "an hour ago"
    await answer(patient, room_id, "It's on my left forearm", "added your message")  # stamped an hour early
    noted_at = time.monotonic()
    await until(max(12, noted_at + 1 - photo_at))
    write_clock_offset(clock_file, 0)  # corrected
    await until(27)  # the photo is 27 s old, past the 20 s timeout; the patient's note is not

    assert time.monotonic() - noted_at < 20, "the patient was active within the timeout"
    assert not any("expired" in text for text in patient.texts(room_id)), "the conversation did not expire"
    assert bot.query("SELECT state FROM conversations WHERE room_id = ?", (room_id,)) == [
        ("awaiting_photos",)
    ]
    assert count(bot, "SELECT COUNT(*) FROM photos WHERE submission_id IS NULL") == 1
    assert (
        count(
            bot,
            "SELECT COUNT(*) FROM photos p JOIN submissions s USING (submission_id) WHERE s.reference = ?",
            (reference,),
        )
        == 1
    ), "the viewed submission was not destroyed early"
    assert "the clock jumped" in bot.process.log_text()

    await patient.wait_for_text(room_id, "expired", timeout=90)  # once really idle, it does expire
    await eventually(
        lambda: (
            count(
                bot,
                "SELECT COUNT(*) FROM photos p JOIN submissions s USING (submission_id) WHERE s.reference = ?",
                (reference,),
            )
            == 0
        ),
        timeout=90,
        what="the view-then-delete submission destroyed at the end of its window",
    )
