"""The journey runs only in a private chat the bot can keep safe (issue 12, items 4 and 8)."""

from __future__ import annotations

from typing import Any

import nio
import pytest
from nio.api import RoomPreset

from bot.ids import RoomID, UserID
from devtools.demo.people import Person
from tests.e2e.conftest import BotFactory, BotUnderTest, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, reach_photos, send_photo, vault_files
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


async def make_room(
    creator: Person,
    invite: list[UserID],
    *,
    encrypted: bool = True,
    preset: RoomPreset | None = None,
    power: dict[str, Any] | None = None,
) -> RoomID:
    response = await creator.client.room_create(
        invite=list(invite),
        preset=preset,
        initial_state=[ENCRYPTION] if encrypted else [],
        power_level_override=power,
    )
    assert isinstance(response, nio.RoomCreateResponse)
    room_id = RoomID(response.room_id)
    await creator.wait_until(lambda: room_id in creator.client.rooms)
    return room_id


def bot_gone(person: Person, room_id: RoomID, bot: BotUnderTest) -> Any:
    def check() -> bool:
        room = person.client.rooms.get(room_id)
        return room is not None and bot.user_id not in room.users

    return check


async def refused(person: Person, room_id: RoomID, bot: BotUnderTest, expect: str) -> str:
    """The bot says `expect`, then leaves, and says nothing else there (no greeting, no question)."""
    said = await person.wait_for_text(room_id, expect, timeout=60)
    await person.wait_until(bot_gone(person, room_id, bot), timeout=60)
    assert person.texts(room_id) == [said.body]
    return said.body


async def test_chats_with_others_in_them_or_that_the_bot_cannot_keep_safe_are_refused_and_left(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A group chat, a chat where the bot may not remove messages, and an unencrypted chat it may not encrypt:
    each time the patient is told why in plain words, no question is asked, and the bot leaves."""
    bot = await make_bot()
    patient, friend = await make_person("patient"), await make_person("friend")

    group = await make_room(patient, [bot.user_id, friend.user_id], preset=RoomPreset.trusted_private_chat)
    await refused(patient, group, bot, "other people in it")
    assert not any(seen.sender == bot.user_id and seen.kind == "text" for seen in friend.seen.get(group, []))

    powerless = await make_room(patient, [bot.user_id], preset=RoomPreset.private_chat)
    await refused(patient, powerless, bot, "don't let me remove messages")

    unencrypted = await make_room(patient, [bot.user_id], encrypted=False, preset=RoomPreset.private_chat)
    await refused(patient, unencrypted, bot, "not encrypted")
    assert bot.query("SELECT COUNT(*) FROM conversations") == [(0,)]
    assert sorted(str(row[0]) for row in bot.query("SELECT closed_reason FROM rooms")) == [
        "cannot_remove",
        "not_encrypted",
        "not_private",
    ]


async def test_a_chat_that_gains_a_member_mid_journey_stops_before_the_next_photo(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The patient invites someone at the photo step and sends another photo at once (one sync batch, the
    bot being down meanwhile): that photo is not accepted but removed, the stored one is destroyed, the
    patient is told why, and the bot leaves."""
    bot = await make_bot()
    patient, stranger = await make_person("patient"), await make_person("stranger")
    room_id = await reach_photos(patient, bot)
    await send_photo(
        patient, room_id, make_jpeg(1600, 1200), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    assert len(vault_files(bot)) == 1
    before = len(patient.seen.get(room_id, []))
    await bot.process.stop()  # both events then reach the bot in the same batch, the invitation first
    await patient.client.room_invite(room_id, stranger.user_id)
    second = await patient.send_photo(room_id, make_jpeg(1640, 1200), filename="b.jpg", mimetype="image/jpeg")
    await bot.process.start()

    told = await patient.wait_for_text(room_id, "no longer private", after=before, timeout=60)
    assert "deleted" in told.body
    await patient.wait_until(bot_gone(patient, room_id, bot), timeout=60)
    later = [seen.body for seen in patient.seen[room_id][before:]]
    assert not any("Photo 2" in body for body in later)
    assert vault_files(bot) == []
    assert bot.query("SELECT state FROM conversations") == [("cancelled",)]
    await patient.wait_until(lambda: second in patient.redacted, timeout=30)


async def test_a_removal_the_homeserver_forbids_is_never_reported_as_done(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The patient takes away the bot's right to remove messages mid-journey: the bot never says it removed
    the NHS number; it says plainly that it could not, asks the patient to delete it, and leaves."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await make_room(
        patient, [bot.user_id], preset=RoomPreset.private_chat, power={"users": {bot.user_id: 50}}
    )
    await patient.wait_for_text(room_id, "NHS number", timeout=60)
    await patient.settled(room_id, quiet=0.5)
    await answer(patient, room_id, NHS_NUMBER, "999 765 4323")
    levels = await patient.client.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(levels, nio.RoomGetStateEventResponse)
    await patient.client.room_put_state(room_id, "m.room.power_levels", {**levels.content, "redact": 100})

    before = len(patient.seen[room_id])
    await patient.say(room_id, "yes")
    told = await patient.wait_for_text(room_id, "couldn't remove", after=before, timeout=60)
    assert "delete your messages that show your NHS number yourself" in told.body
    await patient.wait_until(bot_gone(patient, room_id, bot), timeout=60)
    assert not any("I've removed" in seen.body for seen in patient.seen[room_id])
    assert bot.query("SELECT closed_reason FROM rooms") == [("cannot_remove",)]
