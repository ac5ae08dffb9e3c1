"""Helpers for clinician-workspace journeys: a practice with a clinician room and an admin room, staff who
type commands, and an operator's view of what the bot stored."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nio

from bot.ids import RoomID
from devtools.demo.people import Person, Seen
from storage.vault import ImageVault
from tests.e2e.conftest import BotFactory, BotUnderTest, PersonFactory
from tests.e2e.journey import answer, reach_photos, send_photo
from tests.unit.image_factory import make_jpeg


@dataclass
class Practice:
    bot: BotUnderTest
    clinician: Person
    admin: Person
    clinician_room: RoomID
    admin_room: RoomID


async def encrypted_room(creator: Person, name: str, invite: list[str]) -> RoomID:
    response = await creator.client.room_create(
        name=name,
        invite=invite,
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    assert isinstance(response, nio.RoomCreateResponse)
    room_id = RoomID(response.room_id)
    await creator.wait_until(lambda: room_id in creator.client.rooms)
    return room_id


async def joined(person: Person, room_id: RoomID, user_id: str) -> None:
    """Wait until `user_id` has joined (not merely been invited to) the room, as `person` sees it."""

    def done() -> bool:
        room = person.client.rooms.get(room_id)
        return room is not None and user_id in room.users and user_id not in room.invited_users

    await person.wait_until(done, timeout=60)


async def open_practice(
    make_bot: BotFactory,
    make_person: PersonFactory,
    program: tuple[str, ...] | None = None,
    **settings: str,
) -> Practice:
    bot = await make_bot(start=False, program=program, **settings)
    clinician = await make_person("clinician")
    admin = await make_person("admin")
    clinician_room = await encrypted_room(clinician, "Clinicians", [bot.user_id])
    admin_room = await encrypted_room(admin, "Practice admin", [bot.user_id])
    bot.process.env |= {
        "PHOTOBOT_CLINICIAN_ROOMS": clinician_room,
        "PHOTOBOT_CLINICIANS": clinician.user_id,
        "PHOTOBOT_ADMINS": admin.user_id,
        "PHOTOBOT_ADMIN_ROOM": admin_room,
    }
    await bot.process.start()
    await joined(clinician, clinician_room, bot.user_id)
    await joined(admin, admin_room, bot.user_id)
    return Practice(bot, clinician, admin, clinician_room, admin_room)


async def command(person: Person, room_id: RoomID, text: str, expect: str) -> str:
    """Type a command and wait for the bot's reply containing `expect`."""
    return await answer(person, room_id, text, expect)


async def submit(
    patient: Person, bot: BotUnderTest, *, keep: bool = True, intimate: bool = False, photos: int = 1
) -> tuple[RoomID, str]:
    """A patient's whole journey; (their chat, the reference they were given)."""
    room_id = await reach_photos(patient, bot, keep=keep, intimate=intimate)
    for number in range(1, photos + 1):
        await send_photo(
            patient,
            room_id,
            make_jpeg(1600 + 16 * number, 1200),
            f"Photo {number} received",
            filename=f"p{number}.jpg",
            mimetype="image/jpeg",
        )
    done = await answer(patient, room_id, "done", "reference")
    reference = done.split("reference is ")[1].split(".")[0].strip("*")
    return room_id, reference


async def media_status_settled(person: Person, url: str, timeout: float = 30.0) -> int:
    """The status `person` gets downloading `url` once it is 404 or `timeout` has passed: the bot deletes an
    upload from the homeserver just after it removes the message that carried it, not in the same step."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (status := await person.media_status(url)) != 404 and loop.time() < deadline:  # noqa: ASYNC110 - the homeserver's state, polled from outside
        await asyncio.sleep(0.25)
    return status


def images(person: Person, room_id: RoomID, after: int = 0) -> list[Seen]:
    return [seen for seen in person.seen.get(room_id, [])[after:] if seen.kind in {"image", "file"}]


def vault(bot: BotUnderTest) -> ImageVault:
    return bot.vault()


def record_versions(bot: BotUnderTest, reference: str) -> list[tuple[str, bytes, str, bytes]]:
    """(original id, original wrapped key, record id or original id, key): what a clinician is shown."""
    rows = bot.query(
        "SELECT p.photo_id, p.wrapped_key, p.record_image_id, p.record_wrapped_key FROM photos p"
        " JOIN submissions s ON s.submission_id = p.submission_id WHERE s.reference = ? ORDER BY p.created_at",
        (reference,),
    )
    result = []
    for photo_id, wrapped, record_id, record_key in rows:
        assert isinstance(wrapped, bytes)
        shown_id = str(record_id) if record_id else str(photo_id)
        shown_key = record_key if isinstance(record_key, bytes) else wrapped
        result.append((str(photo_id), wrapped, shown_id, shown_key))
    return result


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def fhir_media(package: dict[str, bytes]) -> list[dict[str, object]]:
    bundle = json.loads(package["fhir-bundle.json"])
    return [
        entry["resource"] for entry in bundle.get("entry", []) if entry["resource"]["resourceType"] == "Media"
    ]


def write_clock_offset(path: Path, seconds: float) -> None:
    path.write_text(f"{seconds}\n")
