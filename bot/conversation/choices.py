"""The answers a question takes, as a machine-readable hint for clients that show buttons (the web chat).

Added to the question's event content under `bot.matrix.message_content.CHOICES_KEY` as `[{"label", "answer"}, ...]`; `answer` is the
text the client sends when the button is pressed, read exactly as if typed. Element ignores unknown keys.
Pure: the hint follows from the conversation the step produced (the question now asked).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.model import Conversation, State


@dataclass(frozen=True)
class Choice:
    label: str
    answer: str


YES_NO = (Choice("Yes", "yes"), Choice("No", "no"))
_BY_STATE: dict[State, tuple[Choice, ...]] = {
    State.CONFIRMING_NHS_NUMBER: (
        Choice("1: mine", "1"),
        Choice("2: someone I look after", "2"),
        Choice("No, that's wrong", "no"),
    ),
    State.SCREEN_INTIMATE: YES_NO,
    State.SCREEN_UNDER_18: YES_NO,
    State.SCREEN_WHO: (Choice("1: mine", "1"), Choice("2: someone I look after", "2")),
    State.STORAGE_CHOICE: (
        Choice("1: it may be kept in my record", "1"),
        Choice("2: delete it once seen", "2"),
    ),
}


def choices_for(conversation: Conversation) -> tuple[Choice, ...]:
    """The buttons for the question the conversation now asks; () when it asks for free text or nothing."""
    if conversation.consent is not None:
        if conversation.consent.stage == "answer":
            return YES_NO
        return (Choice("1: the photos are of me", "1"), Choice("2: I answer for the person in them", "2"))
    if conversation.pending_note is not None:
        return YES_NO
    if conversation.state is State.AWAITING_PHOTOS:
        if conversation.retake_photo_id is not None:
            return (Choice("Use the last photo anyway", "keep"),)
        return (Choice("Done: send my photos", "done"),) if conversation.photo_ids else ()
    return _BY_STATE.get(conversation.state, ())
