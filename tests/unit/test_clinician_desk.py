"""The clinician desk on its own: the queue, viewing a submission's photos and deleting it with a receipt.

Commands go through the real staff dispatcher and desk, with the real database, vault and ledger; Matrix is
the in-memory fake behind the port, so what the desk posted, redacted and purged is read from it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.ids import UserID
from bot.leak_scan import scan_bytes
from bot.matrix.port import TransientMatrixError
from devtools.object_store import ObjectStore
from storage.s3_vault import S3Vault
from storage.submissions import Status, Submission
from tests.support.practice_kit import (
    CLINIC_ROOM,
    CLINICIAN,
    PATIENT_ROOM,
    Practice,
    clinician_says,
    practice,
    submit_photo,
)
from tests.support.real_storage import StorageTemplate
from tests.support.servers import Bucket
from tests.unit.image_factory import make_jpeg

VISITOR = UserID("@visitor:example.org")


@pytest.fixture(scope="module")
def desk_bucket(object_store: ObjectStore) -> Bucket:
    """One bucket for this module (a prefix per test): a bucket per test would use up SeaweedFS's volumes."""
    return Bucket(object_store, object_store.create_bucket("photobot-desk-" + secrets.token_hex(4)))


@pytest.fixture(params=["file-vault", "s3-vault"])
async def bot(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_database: StorageTemplate
) -> AsyncIterator[Practice]:
    """The desk with its vault in the data directory, or in a real S3 bucket (the suite's SeaweedFS)."""
    environment = {}
    if request.param == "s3-vault":
        environment = request.getfixturevalue("desk_bucket").environment("practice-" + secrets.token_hex(4))
    async with practice(tmp_path / "data", migrated_database, environment) as opened:
        yield opened


@pytest.fixture
async def submission(bot: Practice) -> Submission:
    return await submit_photo(bot, make_jpeg(1600, 1200))


async def test_the_queue_lists_a_new_submission_by_its_reference(
    bot: Practice, submission: Submission
) -> None:
    """A clinician asking for the queue sees the new submission's reference."""
    [reply] = await clinician_says(bot, "!queue")

    assert "1 open" in reply
    assert submission.reference in reply


async def test_viewing_posts_the_photo_encrypted_into_the_clinician_room(
    bot: Practice, submission: Submission
) -> None:
    """!view answers with the submission's details and posts its photo to the room as an encrypted upload."""
    replies = await clinician_says(bot, f"!view {submission.reference}")

    assert any(f"Showing 1 photo(s) of {submission.reference}" in reply for reply in replies)
    [image] = [sent for sent in bot.matrix.sent if sent.room_id == CLINIC_ROOM and "file" in sent.content]
    assert image.content["file"]["url"] in bot.matrix.media
    assert not image.unencrypted


async def test_no_photo_is_posted_while_someone_not_a_clinician_is_in_the_room(
    bot: Practice, submission: Submission
) -> None:
    """!view in a clinician room that someone outside the practice's clinician list has joined is refused
    with their name, and no photo is posted there."""
    bot.matrix.add_room(CLINIC_ROOM, CLINICIAN, VISITOR)

    [reply] = await clinician_says(bot, f"!view {submission.reference}")

    assert "won't post images" in reply and VISITOR in reply
    assert not any("file" in sent.content for sent in bot.matrix.sent if sent.room_id == CLINIC_ROOM)
    assert bot.matrix.media == {}  # nothing uploaded either


async def test_deleting_asks_to_confirm_then_destroys_everywhere_with_a_receipt(
    bot: Practice, submission: Submission
) -> None:
    """!delete asks for a yes; then the photo's key and file, its posted image and upload are destroyed, the
    receipt says so, the alert shows it deleted, and the patient is told."""
    await clinician_says(bot, f"!view {submission.reference}")
    [posted] = [sent for sent in bot.matrix.sent if sent.room_id == CLINIC_ROOM and "file" in sent.content]
    [photo] = await bot.submissions.photos(submission.submission_id)

    [asked] = await clinician_says(bot, f"!delete {submission.reference} sent to the wrong practice")
    assert "Reply yes" in asked
    assert all(bot.vault.exists(image) for image in photo.image_ids)

    edited_alert, receipt = await clinician_says(bot, "yes")

    assert "Status: deleted by" in edited_alert

    assert f"Deleted {submission.reference}" in receipt
    assert "vault: 1 image key(s) and file(s) destroyed" in receipt
    assert "1 posted image message(s) redacted" in receipt
    assert "homeserver media of posted images: 1 deleted" in receipt
    assert not any(bot.vault.exists(image) for image in photo.image_ids)
    assert posted.event_id in [removal.event_id for removal in bot.matrix.redactions]
    assert posted.content["file"]["url"] in bot.matrix.purged
    deleted = await bot.submissions.by_reference(submission.reference)
    assert deleted is not None and deleted.status is Status.DELETED
    assert "deleted" in bot.matrix.messages(PATIENT_ROOM)[-1]


async def test_with_an_s3_vault_the_bucket_holds_only_ciphertext_and_nothing_after_the_delete(
    tmp_path: Path, migrated_database: StorageTemplate, desk_bucket: Bucket
) -> None:
    """The photo is an object under the practice's prefix, named by its neutral id and holding no image; after
    !delete and yes, nothing of it is left in the bucket."""
    prefix = "practice-" + secrets.token_hex(4)
    async with practice(tmp_path / "data", migrated_database, desk_bucket.environment(prefix)) as bot:
        assert isinstance(bot.vault, S3Vault)
        submission = await submit_photo(bot, make_jpeg(1600, 1200))
        [photo] = await bot.submissions.photos(submission.submission_id)
        client = desk_bucket.store.client()
        listed = client.list_objects_v2(Bucket=desk_bucket.name, Prefix=f"{prefix}/").get("Contents", [])
        assert sorted(entry["Key"] for entry in listed) == sorted(
            f"{prefix}/{image}.enc" for image in photo.image_ids
        )
        for entry in listed:
            body = client.get_object(Bucket=desk_bucket.name, Key=entry["Key"])["Body"].read()
            assert scan_bytes(body) == []
        await clinician_says(bot, f"!delete {submission.reference} sent to the wrong practice")
        await clinician_says(bot, "yes")
        assert client.list_objects_v2(Bucket=desk_bucket.name, Prefix=f"{prefix}/").get("Contents", []) == []
        assert not (tmp_path / "data" / "vault").exists()


async def test_a_photo_posted_by_two_callers_at_once_is_uploaded_once(
    bot: Practice, submission: Submission
) -> None:
    """!view and the housekeeping tick may post the same waiting photo at the same moment. It is uploaded
    once, so the upload the room's message shows is the one the bot deletes when it takes the photo back
    (two uploads under one transaction id left the shown one on the homeserver for good)."""
    bot.matrix.fail("upload", TransientMatrixError("the homeserver is busy"))
    await clinician_says(bot, f"!view {submission.reference}")  # the photo waits to be posted
    assert bot.matrix.media == {}
    media = bot.desk.reading.media

    await asyncio.gather(media.post_pending(), media.post_pending())

    [image] = [sent for sent in bot.matrix.sent if sent.room_id == CLINIC_ROOM and "file" in sent.content]
    assert list(bot.matrix.media) == [image.content["file"]["url"]]
