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
    Transition(State.CONFIRMING_NHS_NUMBER, State.SCREEN_INTIMATE, "yes"),
    Transition(State.SCREEN_INTIMATE, State.SCREEN_UNDER_18, "yes (intimate)"),
    Transition(State.SCREEN_INTIMATE, State.SCREEN_WHO, "no"),
    Transition(State.SCREEN_UNDER_18, State.REFUSED, "yes (intimate and under 18)"),
    Transition(State.SCREEN_UNDER_18, State.SCREEN_WHO, "no"),
    Transition(State.SCREEN_WHO, State.STORAGE_CHOICE, "1 or 2 (not intimate)"),
    Transition(State.SCREEN_WHO, State.AWAITING_PHOTOS, "1 or 2 (intimate, view then delete)"),
    Transition(State.STORAGE_CHOICE, State.AWAITING_PHOTOS, "1 keep or 2 view then delete"),
    Transition(State.AWAITING_PHOTOS, State.SUBMITTED, "DONE with at least one photo"),
    *(Transition(state, State.CANCELLED, CANCEL_TRIGGER) for state in _OPEN_STATES),
    *(Transition(state, State.EXPIRED, EXPIRE_TRIGGER) for state in _OPEN_STATES),
    *(Transition(state, State.CANCELLED, ROOM_UNSAFE_TRIGGER) for state in _OPEN_STATES),
    *(Transition(state, State.AWAITING_NHS_NUMBER, RESTART_TRIGGER) for state in _FINISHED_IN_ORDER),
)
