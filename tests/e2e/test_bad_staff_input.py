"""Staff mistakes against the real bot: each gets a short, specific answer, and nothing already stored changes."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.workspace import command, open_practice, record_versions, submit

pytestmark = pytest.mark.e2e


async def test_every_mistyped_or_misplaced_staff_command_gets_a_specific_answer_and_changes_nothing(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Unknown commands, unknown references, bad numbers, ids and settings are each answered; the photo stays."""
    practice = await open_practice(make_bot, make_person)
    clinician, admin = practice.clinician, practice.admin
    room, admin_room = practice.clinician_room, practice.admin_room
    patient = await make_person("patient")
    _, reference = await submit(patient, practice.bot, photos=2)
    before = record_versions(practice.bot, reference)

    clinician_mistakes = [
        ("!frobnicate", "I don't know the command `!frobnicate`"),
        ("!vew " + reference, "Did you mean `!view`?"),
        ("!view GP-0000-0000", "I can't find a submission 'GP-0000-0000'"),
        ("!view", "is missing. Usage: `!view"),
        (f"!crop {reference} 3 0 0 50 50", "has photos 1 to 2"),
        (f"!crop {reference} 1 0 0 150 50", "must be between 0 and 100 (percent)"),
        (f"!crop {reference} 1 0 0 0 50", "that rectangle is empty"),
        (f"!crop {reference} 1 100 0 10 10", "starts past the edge"),
        (f"!delete {reference}", "Usage: `!delete"),
        (f"!share {reference} gossip", "The purpose is second-opinion or teaching."),
        (f"!consent {reference} marketing", "The purpose is second-opinion or teaching."),
        ("!queue everything", "I can list"),
        ("!queue open page-two", "The page is a number, like 2."),
        ("!request patient-at-home left knee", "is not a Matrix id like @name:server"),
        (f"!request {patient.user_id} x", "Say which area, in 2 to 120 characters"),
        ("!set max_photos 3", "`!set` works in the admin room."),
    ]
    for text, expected in clinician_mistakes:
        await command(clinician, room, text, expected)

    admin_mistakes = [
        ("!set max_photos 1000", "give a whole number from"),
        ("!set favourite_colour blue", "There is no setting 'favourite_colour'"),
        ("!clinician add drsmith", "is not a Matrix user id like @name:server"),
        ("!clinician promote @locum:localhost", "Say add or remove."),
        (f"!admin remove {admin.user_id}", "That would leave no admin."),
        ("!room clinician add not-a-room", "is not a room id"),
        ("!text favourite_text hello", "There is no text 'favourite_text'"),
        ("!view " + reference, "`!view` works in a clinician room."),
    ]
    for text, expected in admin_mistakes:
        await command(admin, admin_room, text, expected)

    outsider = await make_person("receptionist")
    await practice.clinician.client.room_invite(room, outsider.user_id)
    await outsider.wait_until(lambda: room in outsider.client.invited_rooms or room in outsider.client.rooms)
    await outsider.client.join(room)
    await outsider.wait_until(lambda: room in outsider.client.rooms)
    await command(clinician, room, "!queue", "1 open")  # the outsider's key share settles before they type
    before_outsider = len(clinician.seen.get(room, []))
    await outsider.say(room, f"!delete {reference} tidying up")
    refusal = await clinician.wait_for_text(room, "not on the practice's list", after=before_outsider)
    assert outsider.user_id in refusal.body

    after = record_versions(practice.bot, reference)
    assert after == before, "no mistake changed, cropped or deleted a stored photo"
    assert practice.bot.query("SELECT status FROM submissions WHERE reference = ?", (reference,)) == [
        ("new",)
    ]
