"""An open door: a patient on a homeserver the practice does not allow is told why, never silently declined."""

from __future__ import annotations

import pytest

from bot.ids import RoomID, UserID
from devtools.demo.people import Person
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.workspace import open_practice

pytestmark = pytest.mark.e2e


def _left(person: Person, room_id: RoomID, user_id: UserID) -> bool:
    room = person.client.rooms.get(room_id)
    return room is not None and user_id not in room.users and user_id not in room.invited_users


async def test_a_patient_on_a_server_not_allowed_is_told_once_then_the_bot_leaves_and_admins_see_the_count(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A patient whose server is not allowed gets one explanation naming the server to use, the bot leaves,
    the admin room sees the count, and a second attempt within the hour gets nothing more."""
    practice = await open_practice(make_bot, make_person)
    bot = practice.bot
    await bot.process.stop()
    await bot.process.start(extra_env={"PHOTOBOT_ALLOWED_SERVERS": "surgery.example"})
    patient = await make_person("patient")
    first = await patient.open_direct_chat(bot.user_id)
    told = await patient.wait_for_text(first, "only takes chats from accounts made on surgery.example")
    assert "contact the practice" in told.body
    await patient.wait_until(lambda: _left(patient, first, bot.user_id))
    assert len(patient.texts(first)) == 1
    notice = await practice.admin.wait_for_text(practice.admin_room, "Chats refused so far: 1")
    assert "localhost" in notice.body

    second = await patient.open_direct_chat(bot.user_id)
    await patient.wait_until(lambda: _left(patient, second, bot.user_id))
    await patient.settled(second, quiet=2)
    assert patient.texts(second) == []
    assert bot.query("SELECT refusals FROM refused_invites") == [(2,)]
