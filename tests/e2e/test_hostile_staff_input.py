"""Careless staff input against the real bot, homeserver and encrypted clients: every clinician room hears
of a submission, a pasted credential leaves the room, and a request to nobody is reported as such."""

from __future__ import annotations

import secrets

import nio
import pytest

from bot.ids import RoomID, UserID, server_name
from devtools.demo.people import Person
from devtools.local_homeserver import RegisteredUser
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.workspace import command, encrypted_room, joined, open_practice, submit

pytestmark = pytest.mark.e2e


async def _make_moderator(person: Person, room_id: RoomID, user_id: UserID) -> None:
    """Give `user_id` moderator rights (power 50) in a room `person` administers, as the operator guide asks
    for the bot in staff rooms."""
    current = await person.client.room_get_state_event(room_id, "m.room.power_levels")
    assert isinstance(current, nio.RoomGetStateEventResponse)
    content = dict(current.content)
    content["users"] = {**content.get("users", {}), user_id: 50}
    response = await person.client.room_put_state(room_id, "m.room.power_levels", content)
    assert isinstance(response, nio.RoomPutStateResponse)


async def test_every_clinician_room_hears_of_a_new_submission(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """With three clinician rooms, each one is told of a patient's submission."""
    bot = await make_bot(start=False)
    clinician = await make_person("clinician")
    rooms = [await encrypted_room(clinician, f"Clinicians {n}", [bot.user_id]) for n in (1, 2, 3)]
    bot.process.env |= {"PHOTOBOT_CLINICIAN_ROOMS": ",".join(rooms), "PHOTOBOT_CLINICIANS": clinician.user_id}
    await bot.process.start()
    for room_id in rooms:
        await joined(clinician, room_id, bot.user_id)
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    for room_id in rooms:
        notice = await clinician.wait_for_text(room_id, reference)
        assert "New photo request" in notice.body


async def test_a_credential_typed_in_the_wrong_place_is_removed(
    make_bot: BotFactory, make_person: PersonFactory, homeserver_admin: RegisteredUser
) -> None:
    """The homeserver-admin token pasted into the clinician room, or set with a typo in the setting's name
    in the admin room, is removed and the room told to treat it as seen (or asked to remove it, where the bot
    may not)."""
    practice = await open_practice(make_bot, make_person)
    token = homeserver_admin.access_token
    # Without the right to remove others' messages, the bot says so and never claims it removed it.
    await practice.clinician.say(practice.clinician_room, f"token: {token}")
    await practice.clinician.wait_for_text(practice.clinician_room, "Please remove it yourself")
    await _make_moderator(practice.clinician, practice.clinician_room, practice.bot.user_id)
    await _make_moderator(practice.admin, practice.admin_room, practice.bot.user_id)
    pasted = await practice.clinician.say(practice.clinician_room, f"the admin token is {token}")
    await practice.clinician.wait_for_text(practice.clinician_room, "I've removed a message that looked like")
    typo = await practice.admin.say(practice.admin_room, f"!set homeserver_admin_tokn {token}")
    await practice.admin.wait_for_text(practice.admin_room, "I've removed a message that looked like")
    await practice.clinician.wait_until(lambda: pasted in practice.clinician.redacted)
    await practice.admin.wait_until(lambda: typo in practice.admin.redacted)


async def test_a_photo_request_to_an_account_that_does_not_exist_says_so(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """`!request` naming an account the homeserver does not have is answered "no such account", and no chat
    is opened."""
    practice = await open_practice(make_bot, make_person)
    nobody = f"@nobody{secrets.token_hex(3)}:{server_name(practice.clinician.user_id)}"
    reply = await command(
        practice.clinician, practice.clinician_room, f"!request {nobody} the rash on your arm", nobody
    )
    assert "There is no Matrix account" in reply, reply
    assert practice.bot.query("SELECT COUNT(*) FROM photo_requests") == [(0,)]
    assert practice.bot.query("SELECT COUNT(*) FROM rooms WHERE kind = 'patient'") == [(0,)]
