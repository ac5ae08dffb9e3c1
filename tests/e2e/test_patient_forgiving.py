"""Forgiving input against a real Synapse: edits (m.replace) and reactions, encrypted and in clear."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.ids import EventID, RoomID
from devtools.demo.people import Person
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, open_chat, send_photo
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e

MISTYPED = "999 765 4324"  # one digit wrong: fails the check digit


async def _edit(
    patient: Person, room_id: RoomID, original: EventID, text: str, expect: str
) -> tuple[EventID, str]:
    """Edit `original` as Element does (body '* text', the real text in m.new_content): the edit's event id
    and the bot's reply."""
    before = len(patient.seen.get(room_id, []))
    content = {
        "msgtype": "m.text",
        "body": f"* {text}",
        "m.new_content": {"msgtype": "m.text", "body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }
    edit = await patient.send_content(room_id, content)
    reply = await patient.wait_for_text(room_id, expect, after=before)
    await patient.settled(room_id, quiet=0.5)
    return edit, reply.body


async def _react(patient: Person, room_id: RoomID, target: EventID, key: str, *, encrypted: bool) -> None:
    """A reaction: encrypted (as matrix-rust-sdk clients may send it) or in clear (as Element Web does)."""
    content: dict[str, Any] = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
    if encrypted:
        await patient.send_content(room_id, content, event_type="m.reaction")
        return
    client = patient.client
    response = await client.send(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.reaction/clear-{target[1:12]}-{len(key)}",
        data=json.dumps(content),
        headers={"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"},
    )
    async with response:
        assert response.status == 200


def _last_from_bot(patient: Person, room_id: RoomID) -> EventID:
    return patient.seen[room_id][-1].event_id


async def test_an_edited_nhs_number_is_read_back_corrected_and_a_late_edit_is_answered_kindly(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Editing a mistyped NHS number gets the corrected number read back (never '* ...'), both messages
    leave the chat once confirmed, and an edit made too late gets a kind reply."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)
    before = len(patient.seen[room_id])
    typo = await patient.say(room_id, MISTYPED)
    problem = await patient.wait_for_text(room_id, "number", after=before)
    assert "letters" not in problem.body
    await patient.settled(room_id, quiet=0.5)
    correction, read_back = await _edit(patient, room_id, typo, NHS_NUMBER, "I've read the NHS number as")
    assert "999 765 4323" in read_back
    await answer(patient, room_id, "1", "intimate area")
    await patient.wait_until(lambda: {typo, correction} <= patient.redacted)
    late_edit, late = await _edit(patient, room_id, typo, NHS_NUMBER, "can't change that answer now")
    assert "intimate area" in late, "and the current question is asked again"
    await patient.wait_until(lambda: late_edit in patient.redacted)  # it carries the number in clear


async def test_editing_the_storage_answer_before_the_photos_changes_the_stored_choice(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A patient who answers 2 (delete) and edits it to 1 before sending photos has the photo kept."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)
    await answer(patient, room_id, NHS_NUMBER, "999 765 4323")
    await answer(patient, room_id, "1", "intimate area")
    await answer(patient, room_id, "no", "DONE")
    await answer(patient, room_id, "delete", "What should happen")
    before = len(patient.seen[room_id])
    choice = await patient.say(room_id, "2")
    await patient.wait_for_text(room_id, "will be deleted", after=before)
    await patient.settled(room_id, quiet=0.5)
    _, kept = await _edit(patient, room_id, choice, "1", "may be kept")
    assert "* " not in kept
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    await answer(patient, room_id, "done", "reference")
    assert bot.query("SELECT keep_in_record FROM submissions") == [(1,)]
    assert bot.query("SELECT COUNT(*) FROM submissions WHERE details IS NOT NULL") == [(1,)]


async def test_reactions_answer_yes_no_and_numbered_questions_encrypted_or_in_clear(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A 1️⃣ sent in clear answers the read-back and a 👎 sent encrypted answers the intimate question."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)
    await answer(patient, room_id, NHS_NUMBER, "999 765 4323")
    before = len(patient.seen[room_id])
    await _react(patient, room_id, _last_from_bot(patient, room_id), "1️⃣", encrypted=False)
    await patient.wait_for_text(room_id, "intimate area", after=before)
    await patient.settled(room_id, quiet=0.5)
    before = len(patient.seen[room_id])
    await _react(patient, room_id, _last_from_bot(patient, room_id), "👎", encrypted=True)
    await patient.wait_for_text(room_id, "Now send a photo", after=before)
    await send_photo(
        patient, room_id, make_jpeg(1200, 900), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    await answer(patient, room_id, "done", "reference")
    assert bot.query("SELECT keep_in_record, intimate, acting_for_someone FROM submissions") == [(1, 0, 0)]
