"""The patient handler on its own: a patient's answers and a photo through to a submission, and a file it
cannot use, with the real database and vault and Matrix faked behind the port (no homeserver)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.ids import EventID, RoomID, UserID
from bot.matrix.events import EncryptedFile, Incoming, MediaKind, MediaMessage, TextMessage
from storage.submissions import Status
from tests.support.practice_kit import CLINIC_ROOM, Practice, practice
from tests.unit.image_factory import make_jpeg

PATIENT = UserID("@pat:example.org")
ROOM = RoomID("!pat-chat:example.org")
NHS_NUMBER = "999 765 4323"  # a synthetic test-range number (valid check digit), accepted in test mode

_numbers = itertools.count()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Practice]:
    async with practice(tmp_path / "data") as opened:
        yield opened


async def send(bot: Practice, event: Incoming) -> list[str]:
    """Hand the patient's event to the handler and send what it queued; the bot's replies to it."""
    before = len(bot.matrix.messages(ROOM))
    await bot.patient.handle(event)
    await bot.delivery.flush_all()
    return bot.matrix.messages(ROOM)[before:]


def said(text: str) -> TextMessage:
    return TextMessage(EventID(f"$text{next(_numbers)}"), ROOM, PATIENT, 0, True, body=text)


def attachment(file: EncryptedFile, kind: MediaKind, size: int) -> MediaMessage:
    return MediaMessage(
        EventID(f"$media{next(_numbers)}"), ROOM, PATIENT, 0, True,
        kind=kind, file=file, thumbnail=None, declared_size=size, media_urls=(file.url,),
    )  # fmt: skip


async def reach_photos(bot: Practice) -> None:
    """Open the chat and answer every question up to the photo step."""
    await bot.patient.start(ROOM, PATIENT)
    bot.matrix.add_room(ROOM, PATIENT)  # the room appears in the next sync
    await bot.delivery.flush_all()
    assert "NHS number" in bot.matrix.messages(ROOM)[0]
    assert any(NHS_NUMBER in reply for reply in await send(bot, said(NHS_NUMBER)))
    assert any("intimate area" in reply for reply in await send(bot, said("1")))
    assert any("DONE" in reply for reply in await send(bot, said("no")))


async def test_a_patients_answers_and_photo_become_a_submission_for_the_clinicians(bot: Practice) -> None:
    """A patient who answers the questions and sends a photo gets a reference; the photo is in the vault,
    gone from the chat and the homeserver, and the clinicians are alerted."""
    await reach_photos(bot)
    jpeg = make_jpeg(1600, 1200, gps=True)
    photo = attachment(bot.matrix.add_attachment(jpeg, PATIENT), MediaKind.IMAGE, len(jpeg))

    assert any("Photo 1 received" in reply for reply in await send(bot, photo))
    [done] = [reply for reply in await send(bot, said("done")) if "reference" in reply]

    [submission], _ = await bot.submissions.queue((Status.NEW,), 1)
    assert submission.reference in done
    [stored] = await bot.submissions.photos(submission.submission_id)
    assert all(bot.vault.exists(image) for image in stored.image_ids)
    assert photo.event_id in [removal.event_id for removal in bot.matrix.redactions]
    assert photo.media_urls[0] in bot.matrix.purged
    assert any(submission.reference in alert for alert in bot.matrix.messages(CLINIC_ROOM))


async def test_a_file_that_is_not_a_photo_is_refused_kindly_and_nothing_is_kept(bot: Practice) -> None:
    """A document sent instead of a photo gets a short reply saying what to send, nothing is stored, and
    its upload is removed from the homeserver."""
    await reach_photos(bot)
    document = b"%PDF-1.4\n% a letter, not a photo\n" + bytes(200)
    sent = attachment(bot.matrix.add_attachment(document, PATIENT), MediaKind.FILE, len(document))

    [reply] = await send(bot, sent)

    assert "PDF" in reply and "send a photo" in reply
    assert list(bot.vault.directory.iterdir()) == []
    assert sent.media_urls[0] in bot.matrix.purged
    assert await bot.submissions.queue((Status.NEW,), 1) == ([], 0)
