"""Which devices the bot shares clinician-room keys with and obeys, against a real homeserver with real
encrypted clients: unsigned devices, racing sends, newly signed devices and reset identities."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.ids import RoomID, UserID
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import open_chat
from tests.e2e.workspace import command, joined, open_practice, submit

pytestmark = pytest.mark.timeout(300)

RACING_SENDS = 50
NEW_DEVICES = 20


def from_bot(person: Person, room_id: RoomID, bot: UserID, after: int = 0) -> list[str]:
    """The kinds ("text", "undecryptable", ...) of the bot's messages this device has seen in the room."""
    return [seen.kind for seen in person.seen.get(room_id, [])[after:] if seen.sender == bot]


async def test_an_unsigned_device_reads_no_clinician_room_reply_while_the_bot_sends_in_two_rooms_at_once(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """A clinician's new, unsigned device decrypts the bot's replies in the clinician's own chat with the bot
    but none of 50 clinician-room replies sent at the same moments."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    own_chat = await open_chat(clinician, bot)
    unsigned = await Person.log_in(homeserver, clinician.user_id, clinician.password, tmp_path / "unsigned")
    colleague = await make_person("colleague")  # a second clinician: the bot checks their devices too
    await command(practice.admin, practice.admin_room, f"!clinician add {colleague.user_id}", "added")
    await clinician.client.room_invite(room, colleague.user_id)
    await joined(clinician, room, colleague.user_id)
    try:
        # The bot knows the new device once a reply in the clinician's own chat reaches it.
        await clinician.say(own_chat, "hello")
        await unsigned.wait_until(lambda: "text" in from_bot(unsigned, own_chat, bot.user_id), timeout=60)
        in_room, in_chat = len(unsigned.seen.get(room, [])), len(unsigned.seen.get(own_chat, []))
        seen_room, seen_chat = len(clinician.seen.get(room, [])), len(clinician.seen[own_chat])
        for _ in range(RACING_SENDS):
            await asyncio.gather(clinician.say(room, "!help"), clinician.say(own_chat, "hello"))
        await clinician.wait_until(
            lambda: (
                len(from_bot(clinician, room, bot.user_id, seen_room)) >= RACING_SENDS
                and len(from_bot(clinician, own_chat, bot.user_id, seen_chat)) >= RACING_SENDS
            ),
            timeout=180,
        )
        await unsigned.wait_until(
            lambda: (
                len(from_bot(unsigned, room, bot.user_id, in_room)) >= RACING_SENDS
                and len(from_bot(unsigned, own_chat, bot.user_id, in_chat)) >= RACING_SENDS
            ),
            timeout=60,
        )
        assert set(from_bot(clinician, room, bot.user_id, seen_room)) == {"text"}
        assert "text" in from_bot(unsigned, own_chat, bot.user_id, in_chat), "keys were shared in the chat"
        assert set(from_bot(unsigned, room, bot.user_id, in_room)) == {"undecryptable"}
    finally:
        await unsigned.close()


async def test_a_command_from_an_unsigned_device_is_refused_and_nothing_is_destroyed(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """`!delete` typed on a clinician's new, unsigned device destroys nothing and the clinician's verified
    device is told why; once signed, the same device's command is obeyed."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    unsigned = await Person.log_in(homeserver, clinician.user_id, clinician.password, tmp_path / "unsigned")
    try:
        before = len(clinician.seen.get(room, []))
        await unsigned.say(room, f"!delete {reference} wrong patient")
        await clinician.wait_until(lambda: from_bot(clinician, room, bot.user_id, before))
        assert bot.query("SELECT status FROM submissions") == [("new",)]
        [reply] = [seen.body for seen in clinician.seen[room][before:] if seen.sender == bot.user_id]
        assert "only act on commands from devices you have verified, and this one isn't" in reply
        await clinician.sign_device(unsigned.device_id)
        await command(unsigned, room, f"!claim {reference}", "You've claimed")
        assert bot.query("SELECT claimed_by FROM submissions") == [(clinician.user_id,)]
    finally:
        await unsigned.close()


async def test_a_newly_signed_device_reads_the_very_next_reply(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """Twenty times: a clinician signs a new device and sends `!queue` from it 1 s after the bot's last
    message in the room; the new device decrypts the reply every time."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    await command(clinician, room, "!queue", "No open")
    decrypted = 0
    for run in range(NEW_DEVICES):
        last_reply = time.monotonic()
        device = await Person.log_in(homeserver, clinician.user_id, clinician.password, tmp_path / f"d{run}")
        try:
            await clinician.sign_device(device.device_id)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - last_reply)))
            before = len(device.seen.get(room, []))
            await device.say(room, "!queue")
            await device.wait_until(lambda: from_bot(device, room, bot.user_id, before), timeout=30)  # noqa: B023
            decrypted += from_bot(device, room, bot.user_id, before) == ["text"]
        finally:
            await device.close()
    assert decrypted == NEW_DEVICES


async def test_a_reset_identity_is_obeyed_only_after_an_admin_accepts_it(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """After a clinician's cross-signing identity is reset, the bot obeys none of their devices and tells the
    admin room; once an admin accepts the new identity, the clinician's command works."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room, admin = practice.bot, practice.clinician, practice.clinician_room, practice.admin
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    await command(clinician, room, "!queue", "1 open")  # the identity is pinned on first sight
    await clinician.set_up_cross_signing()  # a reset: a new identity, which signs this device
    before = len(clinician.seen[room])
    await clinician.say(room, f"!claim {reference}")
    alert = await admin.wait_for_text(practice.admin_room, "identity has changed", timeout=60)
    assert f"!identity accept {clinician.user_id}" in alert.body
    assert bot.query("SELECT claimed_by FROM submissions") == [(None,)]
    await clinician.wait_until(lambda: from_bot(clinician, room, bot.user_id, before))
    assert from_bot(clinician, room, bot.user_id, before) == ["undecryptable"]

    await command(admin, practice.admin_room, f"!identity accept {clinician.user_id}", "accepted")
    await command(clinician, room, f"!claim {reference}", "You've claimed")
    assert bot.query("SELECT claimed_by FROM submissions") == [(clinician.user_id,)]


async def test_staff_without_cross_signing_are_refused_until_an_admin_allows_them(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """A listed clinician whose account has no cross-signing is not obeyed and reads nothing by default (a
    colleague sees why); after an admin sets `staff_without_cross_signing allow`, their command works."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room, admin = practice.bot, practice.clinician, practice.clinician_room, practice.admin
    user = await homeserver.register_user(f"nurse{time.monotonic_ns()}", "pw-nurse")
    nurse = await Person.log_in(homeserver, user.user_id, "pw-nurse", tmp_path / "nurse")
    try:
        await command(admin, practice.admin_room, f"!clinician add {nurse.user_id}", "added")
        await clinician.client.room_invite(room, nurse.user_id)
        await joined(clinician, room, nurse.user_id)
        await nurse.wait_until(lambda: room in nurse.client.rooms)
        before, nurse_before = len(clinician.seen.get(room, [])), len(nurse.seen.get(room, []))
        await nurse.say(room, "!queue")
        reply = await clinician.wait_for_text(room, "no cross-signing set up", after=before)
        assert "verified device" in reply.body
        await nurse.wait_until(lambda: from_bot(nurse, room, bot.user_id, nurse_before))
        assert from_bot(nurse, room, bot.user_id, nurse_before) == ["undecryptable"]

        await command(admin, practice.admin_room, "!set staff_without_cross_signing allow", "allow")
        await command(nurse, room, "!queue", "No open")
    finally:
        await nurse.close()
