"""Helpers for patient journeys against the real bot: walking the steps, reading what the bot stored."""

from __future__ import annotations

from dataclasses import dataclass

from bot.ids import RoomID
from devtools.demo.people import Person
from tests.e2e.conftest import BotUnderTest

NHS_NUMBER = "999 765 4323"  # a synthetic test-range number (valid check digit), accepted only in test mode


async def answer(patient: Person, room_id: RoomID, text: str, expect: str) -> str:
    """Say `text` and wait for the bot's reply containing `expect`; returns that reply."""
    before = len(patient.seen.get(room_id, []))
    await patient.say(room_id, text)
    reply = await patient.wait_for_text(room_id, expect, after=before)
    await patient.settled(room_id, quiet=0.5)
    return reply.body


async def open_chat(patient: Person, bot: BotUnderTest) -> RoomID:
    room_id = await patient.open_direct_chat(bot.user_id)
    await patient.wait_for_text(room_id, "NHS number")
    await patient.settled(room_id, quiet=0.5)
    return room_id


async def reach_photos(
    patient: Person,
    bot: BotUnderTest,
    *,
    intimate: bool = False,
    keep: bool = True,
    for_someone: bool = False,
) -> RoomID:
    """Open a chat and answer every question up to the photo step."""
    room_id = await open_chat(patient, bot)
    await answer(patient, room_id, NHS_NUMBER, "999 765 4323")
    await answer(patient, room_id, "2" if for_someone else "1", "intimate area")
    if intimate:
        await answer(patient, room_id, "yes", "under 18")
        await answer(patient, room_id, "no", "DONE")
        return room_id
    await answer(patient, room_id, "no", "DONE")
    if not keep:
        await answer(patient, room_id, "delete", "What should happen")
        await answer(patient, room_id, "2", "DONE")
    return room_id


async def send_photo(patient: Person, room_id: RoomID, data: bytes, expect: str, **kwargs: object) -> str:
    before = len(patient.seen.get(room_id, []))
    await patient.send_photo(room_id, data, **kwargs)  # type: ignore[arg-type]
    reply = await patient.wait_for_text(room_id, expect, after=before)
    return reply.body


@dataclass(frozen=True)
class StoredPhoto:
    photo_id: str
    submission_id: str | None
    mime: str
    source_format: str
    data: bytes


def stored_photos(bot: BotUnderTest) -> list[StoredPhoto]:
    """Decrypt every photo the bot holds, as an operator with the master key could."""
    vault = bot.vault()
    rows = bot.query(
        "SELECT photo_id, submission_id, wrapped_key, mime, source_format FROM photos ORDER BY created_at"
    )
    photos = []
    for photo_id, submission_id, wrapped_key, mime, source_format in rows:
        assert isinstance(wrapped_key, bytes)
        photos.append(
            StoredPhoto(
                str(photo_id),
                str(submission_id) if submission_id else None,
                str(mime),
                str(source_format),
                vault.get(str(photo_id), wrapped_key),
            )
        )
    return photos


def vault_files(bot: BotUnderTest) -> list[str]:
    """What the bot's vault holds, by name (files in its folder, or objects under its bucket prefix)."""
    return bot.vault_entries()
