"""Simulated patients: real nio clients with encryption, each in its own direct chat with the bot.

`enrol` walks one patient through the conversation as tests/e2e/journey.py does (privacy notice, NHS
number read back and confirmed, screening, storage choice) up to the point where the bot asks for a
photo; this happens before the measured phase. `send_photo` is the measured part: upload the (already
encrypted) photo, send the message, and wait for the bot's confirmation in the chat.

The moment a photo counts as stored is when the patient's app shows the bot's confirmation ("Photo 1
received and removed..."): the bot sends it only after the photo is in the vault and the database commit is
done, so it is what a patient notices, and it is an upper bound on the storing itself (it adds the
reply's trip through the homeserver and the patient's sync).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nio

from bench.photos import GeneratedPhoto
from bot.ids import RoomID, UserID
from bot.matrix.attachments import EncryptedUpload, encrypt_attachment
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver

STEP_TIMEOUT = 180.0  # generous: fifty patients enrol at once on two busy cores
QUIET_SECONDS = 0.5


@dataclass
class Patient:
    person: Person
    room_id: RoomID


@dataclass(frozen=True)
class PhotoTiming:
    """Monotonic times of one photo: tapped "send" (upload starts), message sent, confirmation seen."""

    tapped: float
    sent: float
    confirmed: float
    confirmation: str  # "received" (stored), "retake" (stored, with a quality remark) or "other"

    @property
    def send_to_stored(self) -> float:
        return self.confirmed - self.tapped

    @property
    def event_to_stored(self) -> float:
        return self.confirmed - self.sent


async def _answer(person: Person, room_id: RoomID, text: str, expect: str) -> None:
    before = len(person.seen.get(room_id, []))
    await person.say(room_id, text)
    await person.wait_for_text(room_id, expect, after=before, timeout=STEP_TIMEOUT)
    await person.settled(room_id, quiet=QUIET_SECONDS)


async def enrol(
    homeserver: LocalHomeserver, bot: UserID, localpart: str, store_dir: Path, nhs_number: str
) -> Patient:
    """A new patient who has opened a chat with the bot and answered everything up to the photo."""
    person = await Person.sign_up(homeserver, localpart, store_dir)
    try:
        room_id = await person.open_direct_chat(bot)
        await person.wait_for_text(room_id, "NHS number", timeout=STEP_TIMEOUT)
        await person.settled(room_id, quiet=QUIET_SECONDS)
        await _answer(person, room_id, nhs_number, nhs_number)  # read back for confirmation
        await _answer(person, room_id, "1", "intimate area")  # the number is right, and mine
        await _answer(person, room_id, "no", "DONE")  # not an intimate area; may be kept in my record
    except BaseException:
        await person.close()
        raise
    return Patient(person, room_id)


def prepare_upload(photo: GeneratedPhoto) -> EncryptedUpload:
    """The photo encrypted as the patient's app does before uploading it (done before the measured phase)."""
    return encrypt_attachment(photo.data)


async def upload(person: Person, ciphertext: bytes) -> str:
    """Upload in one piece, as a phone app does; the mxc URL."""
    response, _ = await person.client.upload(
        lambda *_: ciphertext, content_type="application/octet-stream", filesize=len(ciphertext)
    )
    if not isinstance(response, nio.UploadResponse):
        raise RuntimeError("the upload failed")
    return str(response.content_uri)


def photo_message(photo: GeneratedPhoto, prepared: EncryptedUpload, url: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "mimetype": photo.mimetype,
        "size": len(photo.data),
        "w": photo.width,
        "h": photo.height,
    }
    return {
        "msgtype": "m.file" if photo.as_file else "m.image",
        "body": photo.filename,
        "info": info,
        "file": prepared.file_content(url),
    }


async def send_photo(
    patient: Patient, photo: GeneratedPhoto, prepared: EncryptedUpload, *, number: int = 1, timeout: float
) -> PhotoTiming:
    """Send one photo and wait for the bot's answer to it."""
    person, room_id = patient.person, patient.room_id
    before = len(person.seen.get(room_id, []))
    tapped = time.monotonic()
    url = await upload(person, prepared.ciphertext)
    await person.send_content(room_id, photo_message(photo, prepared, url))
    sent = time.monotonic()
    reply = await person.wait_for_text(room_id, f"Photo {number} ", after=before, timeout=timeout)
    confirmed = time.monotonic()
    if "received" in reply.body:
        outcome = "received"
    elif "arrived" in reply.body:
        outcome = "retake"
    else:
        outcome = "other"
    return PhotoTiming(tapped, sent, confirmed, outcome)
