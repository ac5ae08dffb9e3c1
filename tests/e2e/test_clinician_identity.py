"""Whose photo it is and what the patient said: the `!view` header and the record packages, against a real
homeserver with real encrypted clients."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference

from bot.ids import RoomID
from bot.texts import Texts
from devtools.demo.people import Person
from tests.e2e.conftest import BotFactory, BotUnderTest, PersonFactory
from tests.e2e.journey import answer, reach_photos, send_photo, vault_files
from tests.e2e.push_rules import would_notify
from tests.e2e.workspace import Practice, command, images, open_practice, read_zip
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.timeout(240)

NOTED = Texts().note_added.replace("**", "")


def tricky_note(clinician: Person) -> str:
    """A note a patient might type that would ping or render as HTML if the bot were careless."""
    return f"@room on my <b>left</b> forearm, ask {clinician.user_id}"


async def submit_with_words(
    patient: Person, bot: BotUnderTest, notes: list[str], caption: str, *, keep: bool = True
) -> tuple[RoomID, str]:
    """A patient's journey with notes typed at the photo step and one captioned photo (as Element X sends)."""
    room_id = await reach_photos(patient, bot, keep=keep)
    for note in notes:
        await answer(patient, room_id, note, NOTED)
    await send_photo(
        patient,
        room_id,
        make_jpeg(1600, 1200),
        "Photo 1 received",
        filename="IMG_2041.jpg",
        mimetype="image/jpeg",
        caption=caption,
    )
    done = await answer(patient, room_id, "done", "reference")
    return room_id, done.split("reference is ")[1].split(".")[0].strip("*")


async def view_header(practice: Practice, reference: str) -> str:
    """`!view`: the bot's reply (the identity header), checked to be plain text that pings nobody."""
    clinician, room = practice.clinician, practice.clinician_room
    before = len(clinician.seen.get(room, []))
    await clinician.say(room, f"!view {reference}")
    reply = await clinician.wait_for_text(room, "NHS number", after=before)
    assert "formatted_body" not in reply.content  # never rendered as HTML
    assert reply.content["m.mentions"] == {}  # nobody pinged, whatever the patient typed
    verdict = await would_notify(
        clinician.client, room, {"type": "m.room.message", "sender": reply.sender, "content": reply.content}
    )
    assert not verdict.highlight and not verdict.notify
    return reply.body


async def test_view_shows_the_nhs_number_notes_and_caption_as_plain_text(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """`!view` shows the NHS number in 3-3-4 groups, who and what the photo is, both notes and the caption
    verbatim as patient-supplied text; a note with @room, HTML and a user id pings nobody; it is audited."""
    practice = await open_practice(make_bot, make_person)
    patient = await make_person("patient")
    notes = [tricky_note(practice.clinician), "about three weeks,\nitchy at night"]
    caption = "this is the rash on my arm"
    _, reference = await submit_with_words(patient, practice.bot, notes, caption)

    header = await view_header(practice, reference)
    assert "NHS number: 999 765 4323" in header
    assert "Photo of: the patient themselves" in header
    assert "Intimate area: no" in header
    assert "Storage: may be kept in the record" in header
    assert "Patient-supplied text" in header
    assert f"    | {notes[0]}" in header
    assert "    | about three weeks,\n    | itchy at night" in header
    assert f"Caption of photo 1:\n    | {caption}" in header
    assert header.index("NHS number") < header.index("Showing 1 photo")

    trail = await command(practice.clinician, practice.clinician_room, f"!audit {reference}", "Audit trail")
    assert ": identity_shown" in trail


async def exported_package(practice: Practice, reference: str) -> dict[str, bytes]:
    clinician, room = practice.clinician, practice.clinician_room
    before = len(clinician.seen[room])
    await command(clinician, room, f"!export {reference}", "record package")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    return read_zip(await clinician.download_image(images(clinician, room, before)[0]))


def check_package(package: dict[str, bytes], notes: list[str], caption: str) -> str:
    """The Bundle parses as FHIR R4B, every resource names the patient, and decisions.json carries the NHS
    number, the notes and the caption; returns the DocumentReference's text."""
    bundle = Bundle.model_validate_json(package["fhir-bundle.json"])
    resources = [entry.resource for entry in bundle.entry or []]
    assert resources and isinstance(resources[0], DocumentReference)
    for resource in resources:
        subject = getattr(resource, "subject", None)
        assert subject is not None and subject.identifier.value == "9997654323", resource
    decisions = json.loads(package["decisions.json"])
    assert decisions["nhs_number"] == "9997654323"
    assert decisions["patient_notes"] == notes
    assert decisions["patient_captions"] == [{"photo": 1, "caption": caption}]
    attachment = resources[0].content[0].attachment
    assert attachment.data is not None
    text = attachment.data.decode("utf-8")
    for note in notes:
        assert note in text
    assert caption in text
    return text


async def test_a_kept_package_carries_the_patient_and_their_words(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The record package of a kept submission carries the NHS number, the notes and the caption, in a
    FHIR R4B Bundle where every resource has the patient as subject."""
    practice = await open_practice(make_bot, make_person)
    patient = await make_person("patient")
    notes, caption = ["left forearm", "two weeks"], "close up of the edge"
    _, reference = await submit_with_words(patient, practice.bot, notes, caption)
    room = practice.clinician_room
    await command(practice.clinician, room, f"!keep {reference} compare at review", "kept for the record")
    package = await exported_package(practice, reference)
    assert "photo-1.jpg" in package
    check_package(package, notes, caption)


async def test_a_view_then_delete_package_still_names_the_patient_and_keeps_their_words(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """After a view-then-delete submission is viewed and described (photos destroyed), its package still
    carries the NHS number, the notes and the caption, and the description filed against the patient."""
    practice = await open_practice(
        make_bot, make_person, undo_window="10s", test_conversation_timeout_seconds="8"
    )
    patient = await make_person("patient")
    notes, caption = ["on my back", "since Monday"], "the darker patch"
    _, reference = await submit_with_words(patient, practice.bot, notes, caption, keep=False)
    room = practice.clinician_room
    await view_header(practice, reference)
    await command(practice.clinician, room, f"!describe {reference} 2 cm oval patch, no scale", "Reply yes")
    await command(practice.clinician, room, "yes", "destroyed at")
    await practice.clinician.wait_until(lambda: vault_files(practice.bot) == [], timeout=60)
    package = await exported_package(practice, reference)
    assert not any(name.startswith("photo-") for name in package)
    text = check_package(package, notes, caption)
    assert "2 cm oval patch, no scale" in text
