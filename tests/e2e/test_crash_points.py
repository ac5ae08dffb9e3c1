"""Crash points against a real homeserver: the bot killed again and again at every named point of photo
intake and of the clinicians' crop and delete, restarted each time, then checked.

Each point kills the bot `KILLS_PER_POINT` times (on PostgreSQL + S3, `KILLS_ON["postgres+s3"]`). In each run the bot dies at the first, second or third
hit of its point (`point@N`), so it dies both on the event it was handling when it last died (the replay)
and on later ones, with several patients' events in flight. After each point's round, on the same bot and
the same patients (the checks are cumulative):

- every photo a patient sent is stored exactly once, under the id its event gives it, and decrypts to the
  pixels the patient sent (the metadata stripped, the pixels untouched); no vault file lacks its row;
- each patient saw every photo confirmed exactly once and in order, and each submission's reference once;
- every event the patients sent is marked handled: the sync checkpoint never passed an unhandled event;
- every temporary file a kill left behind is gone once the bot has started again.

For the clinicians' points: every crop is applied exactly once (the record version is byte for byte the
same crops replayed here) and no record version is left dangling; every delete is finished, its keys gone
from the database files and its files from the vault, audited once, answered once, the patient told once.

`pytest -s` prints one line of figures per point. The rounds are sized to finish in a few minutes on two
cores; each test carries its own time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest
from PIL import Image

from bot.faults import FAULT_EXIT_CODE
from bot.ids import EventID, RoomID
from bot.images.edit import apply_edits, parse_edit
from bot.keyring import Keyring, load_master_key_file
from devtools.demo.people import Person
from handlers.photo_intake import photo_id_for
from storage.vault import TEMPORARY_PREFIX
from tests.e2e.conftest import (
    BOTH_BACKENDS,
    POSTGRES_S3,
    SQLITE,
    BotFactory,
    BotUnderTest,
    PersonFactory,
)
from tests.e2e.journey import NHS_NUMBER, reach_photos
from tests.e2e.workspace import open_practice, record_versions, vault
from tests.unit.image_factory import GPS_MARKER, make_jpeg

pytestmark = pytest.mark.e2e

KILLS_PER_POINT = 20
# On PostgreSQL + S3 each point is killed fewer times: the code paths between the points are the same, what
# differs is where the state lives, and every kill costs a restart (a few seconds more there: a database
# connection and a bucket check at each start). Six kills still cycle twice through HIT_PATTERN and three
# times through DELETE_HIT_PATTERN, so the replayed event and later ones are both killed on.
KILLS_ON: dict[str, int] = {SQLITE: KILLS_PER_POINT, POSTGRES_S3: 6}
HIT_PATTERN = (1, 2, 3)  # the bot dies at the N-th hit of its point in a run, N cycling through these
# A delete of three images hits its point after the first file and after the second: each run dies after
# one or two of the three files of the first delete it starts, so each kill uses up one delete.
DELETE_HIT_PATTERN = (1, 2)
# DELETES = the kills per point: the last kill falls on the last delete, so only its replay can finish it.
PATIENTS = 3
PHOTOS_PER_SUBMISSION = 3
REPLY_WAIT = 30.0  # a scripted patient waits this long for an answer before sending the next message
SETTLE = 2.0  # after the last expected message: time for a duplicate to arrive, were the bot to send one
CROP = ("0", "0", "97", "97")  # each crop keeps the top-left 97% of the record version
CROP_COMMAND = "!crop {reference} 1 " + " ".join(CROP)
MAX_PIXELS = 50_000_000  # the bot's default limit, for replaying the crops here

SECTION_A = ("after_download", "after_decrypt", "during_vault_write", "after_vault_rename")
SECTION_B = ("before_commit", "after_commit", "before_confirmation_reply", "before_sync_checkpoint")


# ---- photos and scripted patients ---------------------------------------------------------------------


@dataclass(frozen=True)
class SentPhoto:
    """A generated photo as the patient sends it, and what its pixels are."""

    data: bytes
    size: tuple[int, int]
    pixels: str


def _pixel_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def _photos(count: int) -> Iterator[SentPhoto]:
    """Distinct generated phone photos (each with made-up GPS metadata), round and round."""
    photos = []
    for index in range(count):
        data = make_jpeg(800 + 16 * index, 640, gps=True)
        with Image.open(io.BytesIO(data)) as image:
            photos.append(SentPhoto(data, image.size, _pixel_digest(image)))
    return itertools.cycle(photos)


@dataclass
class ScriptedPatient:
    """A patient who sends whole submissions, one message at a time, waiting (a while) for each answer."""

    person: Person
    room_id: RoomID
    sent: list[EventID] = field(default_factory=list)
    photos: dict[EventID, SentPhoto] = field(default_factory=dict)
    submissions: int = 0
    at_photo_step: bool = True

    def _answers(self) -> int:
        return len(self.person.seen.get(self.room_id, []))

    async def _send(self, send: Callable[[], Awaitable[EventID]]) -> EventID:
        before = self._answers()
        event_id = await send()
        self.sent.append(event_id)
        with contextlib.suppress(TimeoutError):  # the bot may be dead for a while: go on regardless
            await self.person.wait_until(lambda: self._answers() > before, timeout=REPLY_WAIT)
        return event_id

    async def submit(self, photos: Iterator[SentPhoto]) -> None:
        """One submission: a fresh start (after the first), the questions, the photos, DONE."""
        say = partial(self.person.say, self.room_id)
        if not self.at_photo_step:
            for text in ("start", NHS_NUMBER, "1", "no"):
                await self._send(partial(say, text))
        for _ in range(PHOTOS_PER_SUBMISSION):
            photo = next(photos)
            send = partial(
                self.person.send_photo, self.room_id, photo.data, filename="photo.jpg", mimetype="image/jpeg"
            )
            self.photos[await self._send(send)] = photo
        await self._send(partial(say, "done"))
        self.submissions += 1
        self.at_photo_step = False

    def texts(self) -> list[str]:
        return self.person.texts(self.room_id)

    def confirmations(self) -> list[int]:
        """The photo numbers the bot confirmed, in the order the patient saw them."""
        return [
            int(match.group(1))
            for text in self.texts()
            if (match := re.search(r"Photo (\d+) received", text))
        ]

    def references(self) -> list[str]:
        return [text for text in self.texts() if "Your reference is" in text]


async def _patients(make_person: PersonFactory, bot: BotUnderTest, count: int) -> list[ScriptedPatient]:
    async def one() -> ScriptedPatient:
        person = await make_person("patient")
        return ScriptedPatient(person, await reach_photos(person, bot))

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _keep_submitting(
    patients: list[ScriptedPatient], photos: Iterator[SentPhoto], stop: asyncio.Event
) -> None:
    """Every patient sends submission after submission until `stop`, then finishes the one under way."""

    async def one(patient: ScriptedPatient) -> None:
        while not stop.is_set():
            await patient.submit(photos)

    await asyncio.gather(*(one(patient) for patient in patients))


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check`: it spans several people's timelines, so there is no one condition to wait on."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.2)


# ---- killing ------------------------------------------------------------------------------------------


def _temporary_files(bot: BotUnderTest) -> set[str]:
    """Torn temporary files in a file vault (an S3 PUT is all or nothing: a bucket has none)."""
    if bot.object_vault is not None:
        return set()
    return {path.name for path in (bot.data_dir / "vault").glob(f"{TEMPORARY_PREFIX}*")}


def _kills(bot: BotUnderTest) -> int:
    return KILLS_ON[bot.backend]


@dataclass
class KillRecord:
    kills: int = 0
    torn_files: set[str] = field(default_factory=set)


async def _kill_repeatedly(
    bot: BotUnderTest,
    point: str,
    *,
    pattern: tuple[int, ...] = HIT_PATTERN,
    before_start: Callable[[], Awaitable[None]] | None = None,
) -> KillRecord:
    """Start the bot armed at `point` and wait for it to die there, `KILLS_ON[backend]` times. Every
    temporary file a kill leaves in the vault must be gone once the next start-up is done."""
    record = KillRecord()
    for run in range(_kills(bot)):
        if before_start is not None:
            await before_start()
        hit = pattern[run % len(pattern)]
        await bot.process.start(extra_env={"PHOTOBOT_FAULT_POINTS": f"{point}@{hit}"})
        left = record.torn_files & _temporary_files(bot)
        assert not left, f"start-up left {len(left)} torn temporary file(s) in the vault"
        code = await bot.process.wait_exit(timeout=120)
        this_run = bot.process.log_text().rsplit("---- run ", 1)[-1]
        assert code == FAULT_EXIT_CODE, this_run[-3000:]
        assert f"fault injected at {point}" in this_run, this_run[-3000:]
        record.kills += 1
        torn = _temporary_files(bot)
        if point == "during_vault_write" and bot.object_vault is None:
            assert torn, "a kill half way through a vault write leaves a torn temporary file"
        record.torn_files |= torn
    return record


# ---- intake -------------------------------------------------------------------------------------------


def _stored_photo_ids(bot: BotUnderTest) -> list[str]:
    return [str(row[0]) for row in bot.query("SELECT photo_id FROM photos")]


def _check_intake(bot: BotUnderTest, patients: list[ScriptedPatient]) -> None:
    """Everything sent so far: handled, stored once and intact, confirmed once; nothing stray in the vault."""
    handled = {str(row[0]) for row in bot.query("SELECT event_id FROM handled_events")}
    unhandled = [event for patient in patients for event in patient.sent if event not in handled]
    assert unhandled == [], "the checkpoint moved past events that were never handled"

    keyring = Keyring(load_master_key_file(bot.master_key_file))
    expected = {
        photo_id_for(event, keyring): photo for patient in patients for event, photo in patient.photos.items()
    }
    rows = bot.query("SELECT photo_id, wrapped_key FROM photos")
    assert Counter(str(row[0]) for row in rows) == Counter(list(expected)), "each photo stored exactly once"
    photo_vault = vault(bot)
    for photo_id, wrapped_key in rows:
        assert isinstance(wrapped_key, bytes)
        data = photo_vault.get(str(photo_id), wrapped_key)
        assert GPS_MARKER not in data
        with Image.open(io.BytesIO(data)) as image:
            assert (image.size, _pixel_digest(image)) == (
                expected[str(photo_id)].size,
                expected[str(photo_id)].pixels,
            )
    files = bot.vault_entries()
    assert files == sorted(f"{photo_id}.enc" for photo_id in expected), (
        "no torn, orphaned or extra vault file"
    )

    for patient in patients:
        assert patient.confirmations() == list(range(1, PHOTOS_PER_SUBMISSION + 1)) * patient.submissions
        assert len(patient.references()) == patient.submissions
        assert not [text for text in patient.texts() if "went wrong" in text]


def _settled(patients: list[ScriptedPatient]) -> bool:
    return all(
        len(patient.confirmations()) >= len(patient.photos)
        and len(patient.references()) >= patient.submissions
        for patient in patients
    )


async def _intake_round(bot: BotUnderTest, patients: list[ScriptedPatient], point: str) -> str:
    """Kill the bot at `point` while patients keep sending, let it catch up, check; a line of figures."""
    started = time.monotonic()
    photos_before = sum(len(patient.photos) for patient in patients)
    seen_before = sum(len(patient.confirmations()) for patient in patients)
    photos = _photos(PATIENTS * PHOTOS_PER_SUBMISSION)
    await bot.process.stop()
    stop = asyncio.Event()
    traffic = asyncio.create_task(_keep_submitting(patients, photos, stop))
    try:
        record = await _kill_repeatedly(bot, point)
    finally:
        stop.set()
    await bot.process.start()
    await traffic
    await _until(lambda: _settled(patients), 180, "every photo confirmed and every submission answered")
    await asyncio.sleep(SETTLE)
    sent = sum(len(patient.photos) for patient in patients) - photos_before
    confirmed = sum(len(patient.confirmations()) for patient in patients) - seen_before
    stored = len(_stored_photo_ids(bot)) - photos_before
    figures = (
        f"crash point {point}: {record.kills} kills, {sent} photos sent, {stored} stored once, "
        f"{(stored - sent) + (confirmed - sent)} duplicated, {confirmed} confirmations, "
        f"{len(record.torn_files)} torn temporary files removed at start-up, {time.monotonic() - started:.0f} s"
    )
    print(figures)
    _check_intake(bot, patients)
    return figures


@pytest.mark.timeout(900)
@pytest.mark.parametrize("points", [SECTION_A, SECTION_B], ids=["before-the-row", "around-the-commit"])
@BOTH_BACKENDS
async def test_photo_intake_survives_kills_at_every_crash_point(
    make_bot: BotFactory, make_person: PersonFactory, points: tuple[str, ...]
) -> None:
    """Killed twenty times (six on PostgreSQL + S3) at each intake crash point while patients keep sending,
    the bot ends with every photo stored once and intact (0 lost, 0 duplicated), every photo confirmed once,
    every event handled, no torn file or stray object left."""
    bot = await make_bot()
    patients = await _patients(make_person, bot, PATIENTS)
    for point in points:
        await _intake_round(bot, patients, point)


# ---- the clinicians' crop and delete ---------------------------------------------------------------------


async def _commands(person: Person, room_id: RoomID, commands: list[str]) -> list[EventID]:
    return [await person.say(room_id, command) for command in commands]


@pytest.mark.timeout(900)
@BOTH_BACKENDS
async def test_crop_and_delete_survive_kills_half_way(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Killed twenty times (six on PostgreSQL + S3) half way through a crop and as many half way through a
    delete, the bot applies every crop exactly once with no dangling version, and finishes every delete:
    keys and files (objects) gone, nothing resurrected, audited once, the clinician answered once, the
    patient told once."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patients = await _patients(make_person, bot, PATIENTS)
    photos = _photos(PATIENTS * PHOTOS_PER_SUBMISSION)
    started = time.monotonic()
    deletes = _kills(bot)
    per_patient = -(-(2 + deletes) // PATIENTS)  # one to crop, the deletes, one left alone
    await asyncio.gather(*(_submit_times(patient, photos, per_patient) for patient in patients))
    await _until(lambda: _settled(patients), 120, "every submission answered")
    references = [str(row[0]) for row in bot.query("SELECT reference FROM submissions ORDER BY created_at")]
    print(f"clinician crash points: {len(references)} submissions made in {time.monotonic() - started:.0f} s")

    await _crop_round(bot, clinician, room, references[0])
    untouched = {photo_id: key for photo_id, key, _, _ in record_versions(bot, references[-1])}
    await _delete_round(bot, clinician, room, references[1 : 1 + deletes], patients)
    for photo_id, key in untouched.items():
        vault(bot).get(photo_id, key)  # a submission nobody deleted still reads back


async def _submit_times(patient: ScriptedPatient, photos: Iterator[SentPhoto], times: int) -> None:
    for _ in range(times):
        await patient.submit(photos)


async def _crop_round(bot: BotUnderTest, clinician: Person, room: RoomID, reference: str) -> None:
    started = time.monotonic()
    [(photo_id, wrapped_key, _, _), *_] = record_versions(bot, reference)
    original = vault(bot).get(photo_id, wrapped_key)
    command = CROP_COMMAND.format(reference=reference)
    sent: list[EventID] = []

    async def keep_some_queued() -> None:
        handled = {str(row[0]) for row in bot.query("SELECT event_id FROM handled_events")}
        if sum(event not in handled for event in sent) < 4:
            sent.extend(await _commands(clinician, room, [command] * 4))

    await bot.process.stop()
    record = await _kill_repeatedly(bot, "mid_crop", before_start=keep_some_queued)
    await bot.process.start()
    answer = f"Photo 1 of {reference} is now"
    await _until(
        lambda: len([text for text in clinician.texts(room) if answer in text]) >= len(sent),
        120,
        "every crop answered",
    )
    await asyncio.sleep(SETTLE)
    answers = [text for text in clinician.texts(room) if answer in text]
    edit_counts = [int(match.group(1)) for text in answers if (match := re.search(r"(\d+) edit\(s\)", text))]
    files = [name for name in bot.vault_entries() if name.startswith(photo_id)]
    [(_, _, record_id, record_key), *_] = record_versions(bot, reference)
    audited = bot.query("SELECT COUNT(*) FROM audit_log WHERE action = 'edit' AND subject = ?", (reference,))
    print(
        f"crash point mid_crop: {record.kills} kills, {len(sent)} crops sent, {len(edit_counts)} answered, "
        f"{len(files) - 2} dangling versions, {time.monotonic() - started:.0f} s"
    )
    assert edit_counts == list(range(1, len(sent) + 1)), "each crop applied once, in order, answered once"
    assert audited == [(len(sent),)]
    assert record_id == f"{photo_id}-r{len(sent)}"
    assert files == sorted([f"{photo_id}.enc", f"{record_id}.enc"]), "the original and one record version"
    expected = original
    for _ in sent:
        expected = apply_edits(expected, [parse_edit("crop", CROP)], max_pixels=MAX_PIXELS).data
    assert vault(bot).get(record_id, record_key) == expected


async def _delete_round(
    bot: BotUnderTest, clinician: Person, room: RoomID, references: list[str], patients: list[ScriptedPatient]
) -> None:
    started = time.monotonic()
    images: dict[str, list[tuple[str, bytes]]] = {}
    for reference in references:
        versions = record_versions(bot, reference)
        assert len(versions) == PHOTOS_PER_SUBMISSION == 3, "each delete hits its point twice"
        images[reference] = [(photo_id, key) for photo_id, key, _, _ in versions]
    await bot.process.stop()
    deletes = [f"!delete {reference} sent for a crash test" for reference in references]
    await _commands(clinician, room, [typed for delete in deletes for typed in (delete, delete)])  # confirmed
    record = await _kill_repeatedly(bot, "mid_delete", pattern=DELETE_HIT_PATTERN)
    await bot.process.start()

    def answered(reference: str) -> list[str]:
        return [
            text
            for text in clinician.texts(room)
            if f"Deleted {reference}." in text or f"{reference} was already deleted" in text
        ]

    def told(reference: str) -> list[str]:
        needle = f"(reference {reference}) have been deleted by the practice"
        return [text for patient in patients for text in patient.texts() if needle in text]

    await _until(
        lambda: all(answered(reference) and told(reference) for reference in references),
        120,
        "every delete answered and every patient told",
    )
    await asyncio.sleep(SETTLE)
    database_bytes = _database_bytes(bot)
    keys_left = sum(key in database_bytes for kept in images.values() for _, key in kept)
    stored = set(bot.vault_entries())
    files_left = sum(f"{photo_id}.enc" in stored for kept in images.values() for photo_id, _ in kept)
    replayed = sum(any("already deleted" in text for text in answered(reference)) for reference in references)
    print(
        f"crash point mid_delete: {record.kills} kills, {len(references)} deletes, {replayed} finished after a "
        f"restart, {files_left} files and {keys_left} keys left, {time.monotonic() - started:.0f} s"
    )
    assert "already deleted" in answered(references[-1])[0], "the last kill fell on the last delete"
    assert (files_left, keys_left) == (0, 0)
    for reference in references:
        assert len(answered(reference)) == 1, reference
        assert len(told(reference)) == 1, reference
        audited = bot.query(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'delete' AND subject = ?", (reference,)
        )
        assert audited == [(1,)], reference
    statuses = Counter(
        str(row[0])
        for row in bot.query(
            f"SELECT status FROM submissions WHERE reference IN ({','.join('?' for _ in references)})",  # noqa: S608 - placeholders only
            tuple(references),
        )
    )
    assert statuses == Counter({"deleted": len(references)})
    left = "SELECT COUNT(*) FROM photos JOIN submissions USING (submission_id) WHERE status = 'deleted'"
    assert bot.query(left) == [(0,)], "no photo row (no wrapped key) of a deleted submission"


def _database_bytes(bot: BotUnderTest) -> bytes:
    """Where a destroyed key could still be read: the SQLite files (their free pages and WAL too); on
    PostgreSQL every key the rows still hold (that the table files keep no dead copy is
    tests/storage/test_postgres_shred.py's to show)."""
    if bot.database_url is None:
        return b"".join(path.read_bytes() for path in bot.data_dir.glob("photobot.sqlite3*"))
    rows = bot.query("SELECT wrapped_key, record_wrapped_key FROM photos")
    return b"|".join(bytes(value) for row in rows for value in row if isinstance(value, bytes))
