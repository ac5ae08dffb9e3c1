"""The patient journey against a real Synapse: notice, NHS number, screening, storage, photos, nothing left."""

from __future__ import annotations

import asyncio
import io
import time

import nio
import pytest
from PIL import Image

from bot.ids import EventID, RoomID
from bot.keyring import Keyring, Sealer, load_master_key_file
from devtools.demo.people import Person
from tests.e2e.conftest import BOTH_BACKENDS, BotFactory, PersonFactory
from tests.e2e.journey import (
    NHS_NUMBER,
    answer,
    open_chat,
    reach_photos,
    send_photo,
    stored_photos,
    vault_files,
)
from tests.e2e.push_rules import would_notify
from tests.e2e.workspace import media_status_settled
from tests.unit.image_factory import make_heic, make_jpeg

# On both backends: the journey is where rows, images and their deletion meet the database and the vault.
pytestmark = [pytest.mark.e2e, BOTH_BACKENDS]


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


async def _uploads_gone(patient: Person, event_ids: list[EventID]) -> list[int]:
    # The bot deletes an upload just after it removes the message that carried it, not in the same step.
    return [
        await media_status_settled(patient, url)
        for event_id in event_ids
        for url in patient.uploads[event_id]
    ]


async def test_whole_journey_keeps_clean_photos_and_leaves_nothing_in_the_chat(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A JPEG with GPS and a HEIC file are stored clean and encrypted, removed from the chat and the server."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot, keep=True)
    jpeg = make_jpeg(1600, 1200, gps=True, device=True, orientation=6, icc=True)
    heic = make_heic(1280, 960, gps=True)
    thumbnail = make_jpeg(320, 240)
    await send_photo(
        patient,
        room_id,
        jpeg,
        "Photo 1 received",
        filename="IMG_0001.jpg",
        mimetype="image/jpeg",
        thumbnail=thumbnail,
    )
    await send_photo(
        patient,
        room_id,
        heic,
        "Photo 2 received",
        filename="IMG_0002.HEIC",
        mimetype="image/heic",
        as_file=True,
    )
    await answer(patient, room_id, "on my left forearm, about a week", "added your message")
    done = await answer(patient, room_id, "done", "reference")
    assert "GP-" in done

    photos = stored_photos(bot)
    assert [p.source_format for p in photos] == ["jpeg", "heif"]
    stored_jpeg, stored_heic = photos
    assert _pixels(stored_jpeg.data) == _pixels(jpeg), "the JPEG's pixels are untouched"
    with Image.open(io.BytesIO(stored_jpeg.data)) as image:
        exif = image.getexif()
        assert dict(exif) == {0x0112: 6}, "only the orientation survives"
        assert exif.get_ifd(0x8825) == {}
        assert image.info.get("icc_profile"), "the colour profile is kept"
    assert stored_heic.mime == "image/jpeg"
    with Image.open(io.BytesIO(stored_heic.data)) as image:
        assert image.format == "JPEG"
        assert image.getexif().get_ifd(0x8825) == {}
    assert all(p.submission_id for p in photos)

    photo_events = list(patient.uploads)
    await patient.wait_until(lambda: set(photo_events) <= patient.redacted)
    assert await _uploads_gone(patient, photo_events) == [404, 404, 404]  # image, thumbnail, HEIC
    assert bot.query("SELECT status, COUNT(*) FROM media_ledger GROUP BY status") == [("deleted", 3)]
    assert bot.query("SELECT keep_in_record, intimate, status FROM submissions") == [(1, 0, "new")]


async def test_view_then_delete_is_recorded(make_bot: BotFactory, make_person: PersonFactory) -> None:
    """A patient who chooses view-then-delete gets a submission that says so, and is told."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot, keep=False)
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    done = await answer(patient, room_id, "done", "reference")
    assert "deleted once a doctor or nurse has seen" in done
    assert bot.query("SELECT keep_in_record, intimate FROM submissions") == [(0, 0)]


async def test_intimate_adult_photo_is_flagged_for_describe_then_destroy(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """An intimate photo of an adult is accepted, never kept in the record, and flagged to clinicians."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot, intimate=True)
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    await answer(patient, room_id, "done", "reference")
    assert bot.query("SELECT keep_in_record, intimate FROM submissions") == [(0, 1)]
    assert len(stored_photos(bot)) == 1


async def test_intimate_photo_of_a_child_is_refused_and_destroyed_at_once(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Intimate + under 18: no photo is accepted; one sent anyway is removed from the chat and the server."""
    bot = await make_bot()
    other = await make_person("parent")
    room_id = await open_chat(other, bot)
    await answer(other, room_id, NHS_NUMBER, "999 765 4323")
    await answer(other, room_id, "2", "intimate area")
    await answer(other, room_id, "yes", "under 18")
    refusal = await answer(other, room_id, "yes", "can't accept")
    assert "phone" in refusal.lower()
    event_before = len(other.seen[room_id])
    await other.send_photo(room_id, make_jpeg(800, 600), filename="b.jpg", mimetype="image/jpeg")
    await other.wait_for_text(room_id, "deleted that one without looking", after=event_before)
    photo_event = next(iter(other.uploads))
    await other.wait_until(lambda: photo_event in other.redacted)
    assert await _uploads_gone(other, [photo_event]) == [404]
    assert bot.query("SELECT COUNT(*) FROM photos WHERE room_id = ?", (room_id,)) == [(0,)]
    assert vault_files(bot) == []


async def test_two_patients_at_once_see_only_their_own_conversation(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Two patients going through the journey together each get their own answers and photos."""
    bot = await make_bot()
    first, second = await make_person("patient"), await make_person("patient")
    rooms = await asyncio.gather(reach_photos(first, bot, keep=True), reach_photos(second, bot, keep=False))
    await asyncio.gather(
        send_photo(
            first, rooms[0], make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
        ),
        send_photo(
            second,
            rooms[1],
            make_jpeg(1300, 975),
            "Photo 1 received",
            filename="b.jpg",
            mimetype="image/jpeg",
        ),
    )
    await send_photo(
        first, rooms[0], make_jpeg(1100, 825), "Photo 2 received", filename="c.jpg", mimetype="image/jpeg"
    )
    await asyncio.gather(
        answer(first, rooms[0], "done", "reference"), answer(second, rooms[1], "done", "reference")
    )
    assert bot.query("SELECT room_id, keep_in_record FROM submissions ORDER BY keep_in_record") == [
        (rooms[1], 0),
        (rooms[0], 1),
    ]
    assert bot.query("SELECT room_id, COUNT(*) FROM photos GROUP BY room_id ORDER BY COUNT(*)") == [
        (rooms[1], 1),
        (rooms[0], 2),
    ]
    assert not any("Photo 2" in text for text in second.texts(rooms[1]))


async def test_clinician_room_is_told_of_a_submission_without_the_image_or_nhs_number(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The bot joins the configured clinician room without greeting it, and announces each submission
    with its reference only."""
    bot = await make_bot(start=False)
    clinician = await make_person("clinician")
    response = await clinician.client.room_create(
        name="Clinicians",
        invite=[bot.user_id],
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    assert isinstance(response, nio.RoomCreateResponse)
    staff_room = RoomID(response.room_id)
    bot.process.env["PHOTOBOT_CLINICIAN_ROOMS"] = staff_room
    bot.process.env["PHOTOBOT_CLINICIANS"] = clinician.user_id
    await bot.process.start()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    done = await answer(patient, room_id, "done", "reference")
    notice = await clinician.wait_for_text(staff_room, "New photo request")
    reference = done.split("reference is ")[1].split(".")[0].strip("*")
    assert reference in notice.body
    assert "999" not in notice.body
    assert [m.kind for m in clinician.seen[staff_room]] == ["text"], "no greeting, no image: one notice"


async def test_one_photo_journey_is_at_most_six_messages_and_1500_characters_with_the_full_notice(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A patient sending one photo reads at most 6 bot messages and 1,500 characters, the privacy notice's
    four points among them, one question per message, and each of them notifies with default push rules."""
    bot = await make_bot()
    patient = await make_person("patient")
    began = time.monotonic()
    room_id = await patient.open_direct_chat(bot.user_id)
    await patient.wait_for_text(room_id, "NHS number")
    print(f"first contact: greeting readable {time.monotonic() - began:.2f} s after the chat was created")
    await patient.settled(room_id, quiet=0.5)
    await answer(patient, room_id, NHS_NUMBER, "999 765 4323")
    await answer(patient, room_id, "1", "intimate area")
    await answer(patient, room_id, "no", "DONE")
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    await answer(patient, room_id, "done", "reference")
    messages = [seen for seen in patient.seen[room_id] if seen.sender == bot.user_id]
    read = [seen.body for seen in messages]
    characters = sum(len(body) for body in read)
    print(f"one-photo journey: {len(read)} bot messages, {characters} characters")
    assert len(read) <= 6
    assert characters <= 1500
    assert all(body.count("?") <= 1 for body in read), "one question per message"
    notice = read[0].lower()
    # Rule 9, by meaning: a photo may be asked for; it decides treatment and may join the record; the NHS
    # number only; only the area, nobody else.
    assert "photo" in notice and ("skin" in notice or "bruise" in notice)
    assert "treatment" in notice and "medical record" in notice
    assert "nhs number" in notice and all(word in notice for word in ("name", "date of birth", "address"))
    assert "only that area" in notice and "no one else" in notice
    assert "full notice" in notice
    assert "GP-" in read[-1] and "working days" in read[-1], "the last message says when to expect a reply"
    for seen in messages:  # each question and the outcome, judged by the patient's own rules, as Element does
        event = {"type": "m.room.message", "sender": seen.sender, "content": seen.content}
        verdict = await would_notify(patient.client, room_id, event)
        assert verdict.notify, (seen.body[:40], verdict.rule_id)


async def test_nothing_private_stays_on_screen_and_clinical_words_are_offered_back_masked(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Once confirmed, the bot's read-back leaves the chat with the typed number; a note with a date of
    birth is removed, offered back masked, and stored without the date after 'yes'."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)
    await answer(patient, room_id, NHS_NUMBER, "999 765 4323")
    read_back = next(seen.event_id for seen in patient.seen[room_id] if "999 765 4323" in seen.body)
    confirmed = await answer(patient, room_id, "1", "intimate area")
    assert "removed the number" in confirmed
    await patient.wait_until(lambda: read_back in patient.redacted)
    await answer(patient, room_id, "no", "DONE")
    before = len(patient.seen[room_id])
    note = await patient.say(
        room_id, "The rash on my arm is itchy and spreading. My date of birth is 02/03/1961."
    )
    offer = await patient.wait_for_text(room_id, "without those details", after=before)
    await patient.wait_until(lambda: note in patient.redacted)
    assert "itchy and spreading" in offer.body and "1961" not in offer.body
    await patient.settled(room_id, quiet=0.5)
    await answer(patient, room_id, "yes", "added it")
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    await answer(patient, room_id, "done", "reference")
    sealer = Sealer(Keyring(load_master_key_file(bot.data_dir / "master.key")))
    ((submission_id, sealed),) = bot.query("SELECT submission_id, details FROM submissions")
    assert isinstance(sealed, bytes)
    notes = sealer.open_json(sealed, context=f"submission-details:{submission_id}")["notes"]
    assert len(notes) == 1 and "itchy and spreading" in notes[0]
    assert "1961" not in notes[0] and "02/03" not in notes[0]
