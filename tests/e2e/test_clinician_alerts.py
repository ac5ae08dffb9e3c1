"""Nothing missed: what rings on a clinician's phone with default push rules, against a real homeserver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.ids import RoomID
from devtools.demo.people import Person, Seen
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.push_rules import Verdict, would_notify
from tests.e2e.workspace import command, open_practice, submit, write_clock_offset

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


async def test_an_unclaimed_request_is_reminded_and_a_digest_comes_at_its_hour(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the bot's clock moved on: a request left unclaimed past the reminder time gets a reminder that
    notifies, and at the configured hour a digest counts the queue and names the oldest, without NHS numbers."""
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    write_clock_offset(clock_file, 0)
    digest_at = (datetime.now(UTC) + timedelta(hours=3)).astimezone(ZoneInfo("Europe/London"))
    practice = await open_practice(
        make_bot,
        make_person,
        test_clock_file=str(clock_file),
        test_conversation_timeout_seconds="20",  # housekeeping every 5 s
        reminder_after="1h",
        working_days="mon-sun",
        working_hours="00:00-24:00",
        digest_at=f"{digest_at:%H:%M}",
    )
    clinician, room = practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, practice.bot)
    await clinician.settled(room, quiet=6)  # housekeeping ran at the real time: nothing due yet
    assert not [body for body in clinician.texts(room) if "Reminder" in body or "digest" in body]

    write_clock_offset(clock_file, 2 * 3600)
    reminder = await clinician.wait_for_text(room, "Reminder", timeout=60)
    assert reference in reminder.body and "999" not in reminder.body
    assert (await verdict_for(clinician, room, reminder)).highlight
    assert not [body for body in clinician.texts(room) if "Daily digest" in body]

    write_clock_offset(clock_file, 4 * 3600)
    digest = await clinician.wait_for_text(room, "Daily digest", timeout=60)
    assert "1 new, 0 claimed, 0 done" in digest.body
    assert f"Oldest waiting: {reference}" in digest.body
    assert "999" not in digest.body
    await clinician.settled(room, quiet=6)
    assert sum("Reminder" in body for body in clinician.texts(room)) == 1  # one reminder per request
