"""The clinicians' workspace against a real homeserver: review, keep, crop, export, delete, view then delete,
who may command the bot and who can read what it posts."""

from __future__ import annotations

import base64
import hashlib

import pytest
from fhir.resources.R4B.media import Media

from storage.vault import ImageUnreadableError
from tests.e2e.conftest import BOTH_BACKENDS, BotFactory, PersonFactory
from tests.e2e.journey import vault_files
from tests.e2e.workspace import (
    command,
    fhir_media,
    images,
    joined,
    media_status_settled,
    open_practice,
    read_zip,
    record_versions,
    submit,
    vault,
)

# On both backends: every command reads or changes rows, and view, crop, export and delete use the vault.
pytestmark = [pytest.mark.timeout(240), BOTH_BACKENDS]


async def test_clinician_reviews_keeps_crops_and_exports_with_an_audit_trail(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """List, claim, view (the image is the stored record version), keep with a reason, crop (the original is
    destroyed), export (a FHIR Media carrying the image and the NHS number), and the audit trail shows it."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot, keep=True)

    listing = await command(clinician, room, "!queue", "1 open")
    assert reference in listing
    assert "1 photo(s)" in listing
    await command(clinician, room, f"!claim {reference}", "claimed")
    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "Showing 1 photo")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    shown = await clinician.download_image(images(clinician, room, before)[0])
    [(original_id, original_key, shown_id, shown_key)] = record_versions(bot, reference)
    assert hashlib.sha256(shown).digest() == hashlib.sha256(vault(bot).get(shown_id, shown_key)).digest()

    usage = await command(clinician, room, f"!keep {reference}", "Usage")
    assert "reason" in usage
    await command(
        clinician, room, f"!keep {reference} changing mole; compare at review", "kept for the record"
    )
    cropped = await command(clinician, room, f"!crop {reference} 1 0 0 50 50", "record version")
    [(_, _, record_id, record_key)] = record_versions(bot, reference)
    assert record_id != original_id
    record = vault(bot).get(record_id, record_key)
    assert "808x600" in cropped  # half of 1616 x 1200
    with pytest.raises(ImageUnreadableError):
        vault(bot).get(original_id, original_key)

    before = len(clinician.seen[room])
    await command(clinician, room, f"!export {reference}", "record package")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    package = read_zip(await clinician.download_image(images(clinician, room, before)[0]))
    [media] = fhir_media(package)
    parsed = Media.model_validate(media)
    assert parsed.subject is not None and parsed.subject.identifier is not None
    assert parsed.subject.identifier.value == "9997654323"
    assert base64.b64decode(media["content"]["data"]) == record == package["photo-1.jpg"]  # type: ignore[index]
    assert reference not in " ".join(package)  # neutral file names

    trail = await command(clinician, room, f"!audit {reference}", "Audit trail")
    for action in ("claim", "view", "keep", "edit", "export"):
        assert f": {action}" in trail


async def test_delete_destroys_everything_and_gives_a_receipt(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Delete with a reason: the receipt lists what went; the vault cannot decrypt it; the bot's posted image
    is redacted and its upload is gone from the homeserver."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    patient_room, reference = await submit(patient, bot, photos=2)
    [(first_id, first_key, _, _), _] = record_versions(bot, reference)
    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "Showing 2 photo")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 2)
    posted = images(clinician, room, before)

    await command(clinician, room, f"!delete {reference} sent to the wrong practice", "Reply yes")
    assert len(vault_files(bot)) == 2  # nothing destroyed before the confirmation
    receipt = await command(clinician, room, "yes", "Receipt")
    assert "2 image key(s) and file(s) destroyed" in receipt
    assert "2 posted image message(s) redacted" in receipt
    assert "2 deleted" in receipt
    with pytest.raises(ImageUnreadableError):
        vault(bot).get(first_id, first_key)
    assert vault_files(bot) == []
    await clinician.wait_until(lambda: {seen.event_id for seen in posted} <= clinician.redacted)
    for seen in posted:
        assert await media_status_settled(clinician, str(seen.content["file"]["url"])) == 404
    await patient.wait_for_text(patient_room, "deleted by the practice")
    assert bot.query("SELECT status, length(nhs_number) FROM submissions") == [("deleted", 0)]


async def test_view_then_delete_is_destroyed_after_view_and_description(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A view-then-delete submission is destroyed once viewed and described: the posted image is redacted
    and purged, and the patient is told."""
    practice = await open_practice(
        make_bot, make_person, undo_window="10s", test_conversation_timeout_seconds="8"
    )
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    patient_room, reference = await submit(patient, bot, keep=False)
    refused = await command(clinician, room, f"!keep {reference} useful", "can't be kept")
    assert "view then delete" in refused
    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "view then delete")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    [posted] = images(clinician, room, before)
    description = f"!describe {reference} 2 cm oval erythematous patch, left forearm"
    await command(clinician, room, description, "Reply yes")
    await command(clinician, room, description, "destroyed at")  # the same command again confirms it
    await clinician.wait_until(lambda: posted.event_id in clinician.redacted, timeout=60)
    assert await media_status_settled(clinician, str(posted.content["file"]["url"])) == 404
    assert vault_files(bot) == []
    await patient.wait_for_text(patient_room, "have now been deleted")


async def test_view_then_delete_is_destroyed_at_the_end_of_the_viewing_window(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Without a description, the viewing window's end destroys the photos by itself and says so, in the
    clinician room and in one log line naming only the reference."""
    practice = await open_practice(
        make_bot, make_person, viewing_window="10s", test_conversation_timeout_seconds="8"
    )
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot, intimate=True)
    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "intimate")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    [posted] = images(clinician, room, before)
    await clinician.wait_for_text(room, "without a description", after=before, timeout=60)
    await clinician.wait_until(lambda: posted.event_id in clinician.redacted, timeout=30)
    assert await media_status_settled(clinician, str(posted.content["file"]["url"])) == 404
    assert vault_files(bot) == []
    assert f"purge: {reference} images destroyed (viewing window ended)" in bot.process.log_text()


async def test_a_kept_submissions_viewed_photos_are_taken_back_at_the_end_of_the_viewing_window(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The copy posted for viewing leaves the room when the window ends; the kept photo stays in the vault."""
    practice = await open_practice(make_bot, make_person, viewing_window="10s")
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    await command(clinician, room, f"!keep {reference} baseline for comparison", "kept")
    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "Showing 1 photo")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    [posted] = images(clinician, room, before)
    await clinician.wait_until(lambda: posted.event_id in clinician.redacted, timeout=60)
    assert await media_status_settled(clinician, str(posted.content["file"]["url"])) == 404
    [(_, _, shown_id, shown_key)] = record_versions(bot, reference)
    assert vault(bot).get(shown_id, shown_key), "the kept photo itself is still readable"


async def test_an_outsider_in_the_clinician_room_can_do_nothing_and_read_nothing(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A member who is not an allowlisted clinician: their commands are refused, no image is posted while
    they are present, and they cannot decrypt anything the bot sends."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    outsider = await make_person("visitor")
    await clinician.client.room_invite(room, outsider.user_id)
    await joined(clinician, room, outsider.user_id)
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    await clinician.wait_for_text(room, reference)

    before_outsider = len(outsider.seen.get(room, []))
    await outsider.say(room, "!queue")
    refusal = await clinician.wait_for_text(room, "not on the practice's list")
    assert outsider.user_id in refusal.body
    await command(clinician, room, "!queue", "1 open")
    withheld = await command(clinician, room, f"!view {reference}", "won't post images")
    assert outsider.user_id in withheld
    await clinician.settled(room, quiet=2)
    assert images(clinician, room) == []
    bot_messages = [
        seen for seen in outsider.seen.get(room, [])[before_outsider:] if seen.sender == bot.user_id
    ]
    assert bot_messages, "the outsider saw the bot's messages arrive"
    assert {seen.kind for seen in bot_messages} == {"undecryptable"}


async def test_revoking_and_adding_clinicians_takes_effect_at_once(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """An admin removes a clinician: their next command is not executed, and they cannot read the bot's
    answer. An admin adds another clinician, who can work at once. Both changes are audited."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room, admin = practice.bot, practice.clinician, practice.clinician_room, practice.admin
    newcomer = await make_person("locum")
    await clinician.client.room_invite(room, newcomer.user_id)
    await joined(clinician, room, newcomer.user_id)
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    await command(clinician, room, "!queue", "1 open")

    await command(admin, practice.admin_room, f"!clinician remove {clinician.user_id}", "removed")
    before = len(clinician.seen[room])
    await clinician.say(room, f"!claim {reference}")
    await clinician.wait_until(lambda: any(s.sender == bot.user_id for s in clinician.seen[room][before:]))
    assert {s.kind for s in clinician.seen[room][before:] if s.sender == bot.user_id} == {"undecryptable"}
    assert bot.query("SELECT claimed_by FROM submissions") == [(None,)]

    await command(admin, practice.admin_room, f"!clinician add {newcomer.user_id}", "added")
    await command(newcomer, room, f"!claim {reference}", "You've claimed")
    assert bot.query("SELECT claimed_by FROM submissions") == [(newcomer.user_id,)]
    changes = bot.query("SELECT COUNT(*) FROM audit_log WHERE action = 'config'")
    assert changes == [(2,)]


async def test_a_patient_cannot_use_staff_commands_or_learn_of_other_submissions(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Staff commands typed in a patient's chat do nothing and reveal nothing."""
    practice = await open_practice(make_bot, make_person)
    first = await make_person("patient")
    _, reference = await submit(first, practice.bot)
    second = await make_person("patient")
    room_id, _ = await submit(second, practice.bot)
    for text in ("!queue", f"!view {reference}", f"!audit {reference}", "!config"):
        reply = await command(second, room_id, text, "command for practice staff")
        assert reference not in reply
    assert all(reference not in text for text in second.texts(room_id))


async def test_a_clinician_room_member_list_is_checked_before_posting(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Once the outsider leaves, the same view posts the photo."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    outsider = await make_person("visitor")
    await clinician.client.room_invite(room, outsider.user_id)
    await joined(clinician, room, outsider.user_id)
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    await command(clinician, room, f"!view {reference}", "won't post images")
    await outsider.client.room_leave(room)
    await clinician.wait_until(lambda: outsider.user_id not in clinician.client.rooms[room].users)
    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "Showing 1 photo")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
