"""Who the bot talks to: invitations from homeservers the practice does not allow are declined, with a word."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import open_chat

pytestmark = pytest.mark.e2e


async def test_an_invitation_from_a_homeserver_the_practice_does_not_allow_is_declined(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The bot declines with one explanation and leaves, starting no conversation; a patient on an allowed
    server is still greeted."""
    bot = await make_bot(allowed_servers="gp.example.org")
    stranger = await make_person("stranger")
    room_id = await stranger.open_direct_chat(bot.user_id)

    def declined() -> bool:
        room = stranger.client.rooms.get(room_id)
        return room is not None and bot.user_id not in room.invited_users and bot.user_id not in room.users

    await stranger.wait_for_text(room_id, "accounts made on gp.example.org", timeout=60)
    await stranger.wait_until(declined, timeout=60)
    await stranger.settled(room_id, quiet=2.0)
    assert len([seen for seen in stranger.seen.get(room_id, []) if seen.sender == bot.user_id]) == 1
    assert bot.query("SELECT kind FROM rooms") == [("refused",)]
    assert bot.query("SELECT COUNT(*) FROM conversations") == [(0,)]

    allowed = await make_bot(allowed_servers="gp.example.org,localhost")
    patient = await make_person("patient")
    await open_chat(patient, allowed)  # greeted with the NHS-number question
