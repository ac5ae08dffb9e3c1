"""Every change of state `step` can make, as data: the flow diagram in docs/conversation-flow.md draws
exactly these (a test compares the two), and another test explores `step` to show it makes no others.

A change that keeps the state (help, an unexpected answer, a photo, a note...) is not listed.
`source=None` is the start: no conversation yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.model import FINISHED_STATES, State


@dataclass(frozen=True)
class Transition:
    source: State | None
    target: State
    trigger: str


CANCEL_TRIGGER = "CANCEL"
# An edit of the last answer replays it from where it was given (while nothing else has happened since).
EDIT_TRIGGER = "an edit of the last answer"
EXPIRE_TRIGGER = "timeout (Expire)"
RESTART_TRIGGER = "START or a new request"
ROOM_UNSAFE_TRIGGER = "someone else joins the chat (RoomUnsafe)"

_OPEN_STATES = tuple(state for state in State if state not in FINISHED_STATES)
_FINISHED_IN_ORDER = tuple(state for state in State if state in FINISHED_STATES)

TRANSITIONS: tuple[Transition, ...] = (
    Transition(None, State.AWAITING_NHS_NUMBER, "bot joins the chat (Begin)"),
    Transition(State.AWAITING_NHS_NUMBER, State.CONFIRMING_NHS_NUMBER, "valid NHS number"),
    Transition(
        State.CONFIRMING_NHS_NUMBER, State.AWAITING_NHS_NUMBER, "no, or a number that fails the check"
    ),
    Transition(State.CONFIRMING_NHS_NUMBER, State.SCREEN_INTIMATE, "1 mine or 2 someone I look after"),
    Transition(State.CONFIRMING_NHS_NUMBER, State.SCREEN_WHO, "yes"),
    Transition(State.SCREEN_WHO, State.SCREEN_INTIMATE, "1 or 2"),
    Transition(State.SCREEN_INTIMATE, State.SCREEN_UNDER_18, "yes (intimate)"),
    Transition(State.SCREEN_INTIMATE, State.AWAITING_PHOTOS, "no (may be kept in the record)"),
    Transition(State.SCREEN_UNDER_18, State.REFUSED, "yes (intimate and under 18)"),
    Transition(State.SCREEN_UNDER_18, State.AWAITING_PHOTOS, "no (intimate, view then delete)"),
    Transition(State.AWAITING_PHOTOS, State.STORAGE_CHOICE, "DELETE or CHANGE (not intimate)"),
    Transition(State.STORAGE_CHOICE, State.AWAITING_PHOTOS, "1 keep or 2 view then delete"),
    Transition(State.AWAITING_PHOTOS, State.SUBMITTED, "DONE with at least one photo"),
    Transition(State.AWAITING_NHS_NUMBER, State.SCREEN_INTIMATE, EDIT_TRIGGER),
    Transition(State.AWAITING_NHS_NUMBER, State.SCREEN_WHO, EDIT_TRIGGER),
    Transition(State.AWAITING_PHOTOS, State.SCREEN_INTIMATE, EDIT_TRIGGER),
    Transition(State.AWAITING_PHOTOS, State.SCREEN_UNDER_18, EDIT_TRIGGER),
    Transition(State.SCREEN_INTIMATE, State.AWAITING_NHS_NUMBER, EDIT_TRIGGER),
    Transition(State.SCREEN_INTIMATE, State.CONFIRMING_NHS_NUMBER, EDIT_TRIGGER),
    Transition(State.SCREEN_INTIMATE, State.SCREEN_WHO, EDIT_TRIGGER),
    Transition(State.SCREEN_UNDER_18, State.SCREEN_INTIMATE, EDIT_TRIGGER),
    Transition(State.SCREEN_WHO, State.AWAITING_NHS_NUMBER, EDIT_TRIGGER),
    Transition(State.SCREEN_WHO, State.CONFIRMING_NHS_NUMBER, EDIT_TRIGGER),
    Transition(State.AWAITING_PHOTOS, State.REFUSED, EDIT_TRIGGER),
    Transition(State.STORAGE_CHOICE, State.SUBMITTED, EDIT_TRIGGER),
    *(Transition(state, State.CANCELLED, CANCEL_TRIGGER) for state in _OPEN_STATES),
    *(Transition(state, State.EXPIRED, EXPIRE_TRIGGER) for state in _OPEN_STATES),
    *(Transition(state, State.CANCELLED, ROOM_UNSAFE_TRIGGER) for state in _OPEN_STATES),
    *(Transition(state, State.AWAITING_NHS_NUMBER, RESTART_TRIGGER) for state in _FINISHED_IN_ORDER),
)
