"""Earlier screenings travel across START; a chat that is no longer private ends the conversation."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.conversation import Conversation, NotifyClinicians, RoomUnsafe, State
from tests.unit.test_conversation_support import NHS_NUMBER, POLICY, Chat


def _start_again_not_intimate(chat: Chat) -> None:
    for line in ("start", NHS_NUMBER, "1", "no"):
        chat.say(line)
    chat.photo()
    chat.say("done")


def test_a_refusal_undone_by_start_reaches_the_clinician_as_a_warning() -> None:
    """Refused (intimate, under 18), START, "not intimate": the submission and its alert carry the warning."""
    chat = Chat.in_state(State.REFUSED)
    _start_again_not_intimate(chat)
    submitted = chat.submitted
    assert submitted is not None
    assert [screening.outcome for screening in submitted.earlier_screenings] == ["refused"]
    assert any("changed after a refusal" in warning for warning in submitted.warnings)
    (notify,) = [effect for effect in chat.effects if isinstance(effect, NotifyClinicians)]
    assert notify.warnings == submitted.warnings


def test_a_refusal_older_than_the_period_is_forgotten() -> None:
    """After the practice's screening memory has passed, the refusal no longer travels with a submission."""
    chat = Chat.in_state(State.REFUSED, replace(POLICY, screening_memory=timedelta(hours=1)))
    chat.now += timedelta(hours=2)
    _start_again_not_intimate(chat)
    submitted = chat.submitted
    assert submitted is not None
    assert submitted.earlier_screenings == () and submitted.warnings == ()


def test_earlier_screenings_survive_a_restart_of_the_bot() -> None:
    """The remembered refusal is stored with the conversation and read back after a restart."""
    chat = Chat.in_state(State.REFUSED)
    chat.say("start")
    stored = chat.current.to_dict()
    assert Conversation.from_dict(stored).earlier_screenings == chat.current.earlier_screenings
    assert chat.current.earlier_screenings[0].refused


def test_a_note_contradicting_the_screening_is_flagged_in_the_alert() -> None:
    """ "it IS on my genitals, bleeding" typed at the photo step flags the alert, without the words."""
    chat = Chat.in_state(State.AWAITING_PHOTOS)
    chat.say("it IS on my genitals, bleeding")
    chat.photo()
    chat.say("done")
    (notify,) = [effect for effect in chat.effects if isinstance(effect, NotifyClinicians)]
    assert len(notify.warnings) == 2
    assert not any("genitals" in warning for warning in notify.warnings)


def test_a_chat_that_is_no_longer_private_ends_and_destroys_what_it_held() -> None:
    """Someone joins at the photo step: photos destroyed, the conversation cancelled, the patient told."""
    chat = Chat.in_state(State.AWAITING_PHOTOS)
    chat.photo()
    photos = chat.current.all_photo_ids
    chat.send(RoomUnsafe(chat.tick()))
    assert chat.state is State.CANCELLED
    assert chat.destroyed == list(photos)
    assert chat.current.nhs_number is None
    assert "no longer private" in chat.reply and "START" not in chat.reply


def test_the_nhs_number_messages_are_removed_when_the_chat_stops_being_private() -> None:
    """Someone joins while the number waits for confirmation: the message with the number is removed."""
    chat = Chat.in_state(State.CONFIRMING_NHS_NUMBER)
    number_event = chat.current.number_event_ids
    chat.send(RoomUnsafe(chat.tick()))
    assert tuple(chat.redacted) == number_event


def test_a_forbidden_removal_ends_the_conversation_without_claiming_any_removal() -> None:
    """The bot may not remove messages: photos destroyed, no removal asked again, the patient asked to do it."""
    chat = Chat.in_state(State.AWAITING_PHOTOS)
    chat.photo()
    chat.send(RoomUnsafe(chat.tick(), "cannot_remove"))
    assert chat.state is State.CANCELLED
    assert chat.redacted == [] and len(chat.destroyed) == 1
    assert "couldn't remove" in chat.reply and "I've removed" not in chat.reply
