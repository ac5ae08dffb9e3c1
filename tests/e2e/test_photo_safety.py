"""Photos are never lost, never duplicated, never left in clear: crashes, expiry and a scan of the disk."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from bot.faults import FAULT_EXIT_CODE
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, reach_photos, send_photo, stored_photos, vault_files
from tests.unit.image_factory import GPS_MARKER, MAKE_MARKER, make_heic, make_jpeg

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("fault_point", ["after_download", "after_vault_rename", "after_commit"])
async def test_a_photo_interrupted_by_a_crash_is_stored_once_and_confirmed_once(
    make_bot: BotFactory, make_person: PersonFactory, fault_point: str
) -> None:
    """The bot dies between receiving a photo and confirming it; after a restart: one photo, one confirmation."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    await bot.process.stop()
    await bot.process.start(extra_env={"PHOTOBOT_FAULT_POINTS": fault_point})
    await patient.send_photo(
        room_id, make_jpeg(1400, 1050, gps=True), filename="a.jpg", mimetype="image/jpeg"
    )
    assert await bot.process.wait_exit() == FAULT_EXIT_CODE
    await bot.process.start()
    await patient.wait_for_text(room_id, "Photo 1 received")
    await asyncio.sleep(3)  # room for a duplicate confirmation, were the bot to send one
    assert sum("Photo 1 received" in text for text in patient.texts(room_id)) == 1
    assert not any("Photo 2" in text for text in patient.texts(room_id))
    assert len(stored_photos(bot)) == 1
    assert len(vault_files(bot)) == 1, "no orphaned or torn vault file is left"


async def test_an_abandoned_conversation_expires_and_its_photos_are_destroyed(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A patient who never says DONE is told the request expired; the photo is gone from the vault."""
    bot = await make_bot(test_conversation_timeout_seconds="8")
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    await send_photo(
        patient, room_id, make_jpeg(1400, 1050), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    assert len(vault_files(bot)) == 1
    expired = await patient.wait_for_text(room_id, "expired", timeout=60)
    assert "deleted" in expired.body
    assert bot.query("SELECT state FROM conversations WHERE room_id = ?", (room_id,)) == [("expired",)]
    assert bot.query("SELECT COUNT(*) FROM photos") == [(0,)]
    assert vault_files(bot) == []
    assert bot.query("SELECT COUNT(*) FROM submissions") == [(0,)]


def _samples(data: bytes, count: int = 6, length: int = 24) -> list[bytes]:
    """Byte strings taken from across an image, skipping its first kilobyte (shared headers)."""
    start, end = 1024, len(data) - length
    return [
        data[start + (end - start) * i // count : start + (end - start) * i // count + length]
        for i in range(count)
    ]


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]


async def test_nothing_is_left_in_clear_on_disk_after_journeys(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path: Path
) -> None:
    """After two journeys, the data directory, temp directories and the bot's log hold no image content and
    no NHS number, in any form the patient typed it."""
    temp_before = set(Path(tempfile.gettempdir()).iterdir())
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    jpeg = make_jpeg(1600, 1200, gps=True, device=True)
    heic = make_heic(1280, 960, gps=True)
    await send_photo(patient, room_id, jpeg, "Photo 1 received", filename="a.jpg", mimetype="image/jpeg")
    await send_photo(
        patient, room_id, heic, "Photo 2 received", filename="b.heic", mimetype="image/heic", as_file=True
    )
    await answer(patient, room_id, "done", "reference")
    stored = [photo.data for photo in stored_photos(bot)]
    await bot.process.stop()

    needles = [sample for image in [jpeg, heic, *stored] for sample in _samples(image)]
    digits = NHS_NUMBER.replace(" ", "")
    needles += [NHS_NUMBER.encode(), digits.encode(), digits.encode("utf-16-le"), GPS_MARKER, MAKE_MARKER]
    places = [*_files_under(bot.data_dir), bot.process.log_path]
    places += [
        p for new in set(Path(tempfile.gettempdir()).iterdir()) - temp_before for p in _files_under(new)
    ]
    places = [
        p
        for p in places
        if tmp_path not in p.parents or p.is_relative_to(bot.data_dir) or p == bot.process.log_path
    ]
    assert places, "there is something to scan"
    findings = []
    for path in places:
        content = path.read_bytes()
        findings += [f"{path.name}: {needle[:12]!r}" for needle in needles if needle in content]
    assert findings == []
    assert bot.data_dir.stat().st_mode & 0o077 == 0
