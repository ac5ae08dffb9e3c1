"""Each submission lives in the thread of its alert: commands there need no reference, answers stay there,
and the alert is edited to show the current status. Real homeserver, real encrypted clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.ids import EventID, RoomID
from devtools.demo.people import Person, Seen
from devtools.local_homeserver import LocalHomeserver
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.workspace import command, open_practice, submit

pytestmark = pytest.mark.timeout(240)


def relation(seen: Seen) -> dict[str, Any]:
    relates = seen.content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


async def say_in(person: Person, room: RoomID, text: str, relates_to: dict[str, Any]) -> Seen:
    """Send a command with a relation (thread or reply) and wait for the bot's next message that is not an edit."""
    before = len(person.seen.get(room, []))
    await person.send_content(room, {"msgtype": "m.text", "body": text, "m.relates_to": relates_to})

    def answer() -> Seen | None:
        later = person.seen.get(room, [])[before:]
        return next((seen for seen in later if relation(seen).get("rel_type") != "m.replace"), None)

    await person.wait_until(lambda: answer() is not None)
    found = answer()
    assert found is not None
    return found


def latest_edit(person: Person, room: RoomID, alert: EventID) -> str | None:
    edits = [
        seen.content["m.new_content"]["body"]
        for seen in person.seen.get(room, [])
        if relation(seen) == {"rel_type": "m.replace", "event_id": alert}
    ]
    return edits[-1] if edits else None


async def test_commands_in_the_alerts_thread_or_replying_to_it_need_no_reference(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """`!claim` in the alert's thread and `!keep` as a reply to the alert act on that submission, the bot
    answers in the thread, the alert's latest edit shows the status, and `!queue` still works in the room."""
    practice = await open_practice(make_bot, make_person)
    clinician, room = practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, practice.bot)
    alert = await clinician.wait_for_text(room, f"New photo request {reference}")

    in_thread = {"rel_type": "m.thread", "event_id": alert.event_id, "is_falling_back": True,
                 "m.in_reply_to": {"event_id": alert.event_id}}  # fmt: skip
    claimed = await say_in(clinician, room, "!claim", in_thread)
    assert f"claimed {reference}" in claimed.body.replace("**", "")
    assert relation(claimed)["rel_type"] == "m.thread" and relation(claimed)["event_id"] == alert.event_id
    await clinician.wait_until(lambda: "claimed by" in (latest_edit(clinician, room, alert.event_id) or ""))
    assert clinician.user_id in (latest_edit(clinician, room, alert.event_id) or "")

    kept = await say_in(
        clinician, room, "!keep changing mole", {"m.in_reply_to": {"event_id": alert.event_id}}
    )
    assert reference in kept.body and "kept for the record" in kept.body
    assert relation(kept)["rel_type"] == "m.thread" and relation(kept)["event_id"] == alert.event_id
    await clinician.wait_until(
        lambda: "kept for the record by" in (latest_edit(clinician, room, alert.event_id) or "")
    )

    before = len(clinician.seen[room])
    await command(clinician, room, "!queue all", reference)
    listing = next(seen for seen in clinician.seen[room][before:] if reference in seen.body)
    assert relation(listing) == {}  # the main timeline
    assert f"({clinician.user_id})" in listing.body  # who claimed it: display name and Matrix id
    assert "UTC" not in listing.body  # times in the practice's time zone


async def react(person: Person, room: RoomID, target: EventID, key: str, *, encrypted: bool) -> None:
    """A reaction, encrypted (as matrix-rust-sdk clients may send it) or in clear (as Element Web does)."""
    content: dict[str, Any] = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
    if encrypted:
        await person.send_content(room, content, event_type="m.reaction")
        return
    client = person.client
    response = await client.send(
        "PUT",
        f"/_matrix/client/v3/rooms/{room}/send/m.reaction/clear-{target[1:12]}-{key.encode().hex()}",
        data=json.dumps(content),
        headers={"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"},
    )
    async with response:
        assert response.status == 200


async def next_answer(person: Person, room: RoomID, before: int) -> Seen:
    """The bot's first message after `before` that is not an edit of an alert."""

    def found() -> Seen | None:
        later = person.seen.get(room, [])[before:]
        return next((seen for seen in later if relation(seen).get("rel_type") != "m.replace"), None)

    await person.wait_until(lambda: found() is not None)
    answer = found()
    assert answer is not None
    return answer


async def test_a_raised_hand_or_eyes_on_an_alert_claims_it_from_a_verified_device_encrypted_or_in_clear(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """A clinician's ✋ or 👀 on a new-request alert, encrypted or in clear, claims it with the answer in the
    alert's thread and the alert edited, unless some device of theirs is unverified; other reactions do nothing."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    _, first = await submit(await make_person("patient"), bot)
    first_alert = await clinician.wait_for_text(room, f"New photo request {first}")
    _, second = await submit(await make_person("patient"), bot)
    second_alert = await clinician.wait_for_text(room, f"New photo request {second}")
    await command(clinician, room, "!queue", first)
    listing = [
        seen
        for seen in clinician.seen[room]
        if first in seen.body and "New photo request" not in seen.body and not relation(seen)
    ]
    not_an_alert = listing[-1].event_id

    before = len(clinician.seen[room])
    await react(clinician, room, first_alert.event_id, "👍", encrypted=False)  # not a claiming emoji
    await react(clinician, room, not_an_alert, "✋", encrypted=True)  # not an alert
    await react(clinician, room, first_alert.event_id, "✋", encrypted=True)
    claimed = await next_answer(clinician, room, before)  # nothing answered the two reactions before it
    assert f"claimed {first}" in claimed.body.replace("**", "")
    assert (
        relation(claimed)["rel_type"] == "m.thread" and relation(claimed)["event_id"] == first_alert.event_id
    )
    await clinician.wait_until(
        lambda: "claimed by" in (latest_edit(clinician, room, first_alert.event_id) or "")
    )

    phone = await Person.log_in(homeserver, clinician.user_id, clinician.password, tmp_path / "phone")
    try:
        before = len(clinician.seen[room])
        await react(phone, room, second_alert.event_id, "👀", encrypted=False)
        refused = await next_answer(clinician, room, before)
        assert "not all of them are verified" in refused.body
        assert relation(refused)["event_id"] == second_alert.event_id
        assert bot.query("SELECT claimed_by FROM submissions WHERE reference = ?", (second,)) == [(None,)]

        await clinician.sign_device(phone.device_id)
        before = len(clinician.seen[room])
        await react(phone, room, second_alert.event_id, "✋🏽", encrypted=False)
        claimed = await next_answer(clinician, room, before)
        assert f"claimed {second}" in claimed.body.replace("**", "")
        await clinician.wait_until(
            lambda: "claimed by" in (latest_edit(clinician, room, second_alert.event_id) or "")
        )
    finally:
        await phone.close()
