"""Nothing missed: what rings on a clinician's phone with default push rules, against a real homeserver."""

from __future__ import annotations

import pytest

from bot.demo.people import Person, Seen
from bot.ids import RoomID
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.push_rules import Verdict, would_notify
from tests.e2e.workspace import command, open_practice, submit

pytestmark = pytest.mark.timeout(240)


async def verdict_for(person: Person, room_id: RoomID, seen: Seen) -> Verdict:
    """What the person's own push rules decide for a message they decrypted, as Element would."""
    return await would_notify(
        person.client, room_id, {"type": "m.room.message", "sender": seen.sender, "content": seen.content}
    )


async def test_a_new_request_notifies_and_ordinary_replies_do_not(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """With default push rules the new-request alert notifies (and highlights) the clinician, and carries no
    NHS number; the bot's reply to `!queue` does not notify."""
    practice = await open_practice(make_bot, make_person)
    clinician, room = practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, practice.bot)
    alert = await clinician.wait_for_text(room, f"New photo request **{reference}**".replace("**", ""))
    assert "999" not in alert.body
    verdict = await verdict_for(clinician, room, alert)
    assert (verdict.notify, verdict.highlight, verdict.rule_id) == (True, True, ".m.rule.is_user_mention")

    before = len(clinician.seen[room])
    await command(clinician, room, "!queue", "1 open")
    reply = clinician.seen[room][before]
    assert (await verdict_for(clinician, room, reply)).notify is False
