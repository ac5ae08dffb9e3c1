"""The patient handler on its own: a patient's answers and a photo through to a submission, and a file it
cannot use, with the real database and vault and Matrix faked behind the port (no homeserver)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.matrix.events import MediaKind
from storage.submissions import Status
from tests.support.practice_kit import (
    CLINIC_ROOM,
    PATIENT,
    Practice,
    patient_attachment,
    patient_sends,
    patient_text,
    practice,
    reach_photos,
)
from tests.support.real_storage import StorageTemplate
from tests.unit.image_factory import make_jpeg


@pytest.fixture
async def bot(tmp_path: Path, migrated_database: StorageTemplate) -> AsyncIterator[Practice]:
    async with practice(tmp_path / "data", migrated_database) as opened:
        yield opened


async def test_a_patients_answers_and_photo_become_a_submission_for_the_clinicians(bot: Practice) -> None:
    """A patient who answers the questions and sends a photo gets a reference; the photo is in the vault,
    gone from the chat and the homeserver, and the clinicians are alerted."""
    await reach_photos(bot)
    jpeg = make_jpeg(1600, 1200, gps=True)
    photo = patient_attachment(bot.matrix.add_attachment(jpeg, PATIENT), MediaKind.IMAGE, len(jpeg))

    assert any("Photo 1 received" in reply for reply in await patient_sends(bot, photo))
    [done] = [reply for reply in await patient_sends(bot, patient_text("done")) if "reference" in reply]

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
    sent = patient_attachment(bot.matrix.add_attachment(document, PATIENT), MediaKind.FILE, len(document))

    [reply] = await patient_sends(bot, sent)

    assert "PDF" in reply and "send a photo" in reply
    assert bot.vault.image_ids() == []
    assert sent.media_urls[0] in bot.matrix.purged
    assert await bot.submissions.queue((Status.NEW,), 1) == ([], 0)
