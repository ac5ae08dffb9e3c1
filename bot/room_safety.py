"""Whether a chat is one where the patient journey may run: pure decisions on the room's own state.

The journey runs only in a chat whose members (joined or invited) are the bot and one patient, which is
encrypted (or which the bot may encrypt), and where the bot may send and may remove messages (the NHS
number, the photos). Anything else cannot be made safe: the bot says so plainly and leaves.

Power is read from the room's state as the homeserver holds it, never from nio: nio 0.26 does not know that
in room version 12 the room's creators (the create event's sender and `additional_creators`) have
unlimited power, and reports 0 for a bot invited to a `trusted_private_chat` (matrix-notes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bot.ids import UserID

# The membership of someone who can read the chat now or once they accept.
_PRESENT = frozenset({"join", "invite"})


class Unsafe(Enum):
    """Why a chat cannot hold the journey."""

    NOT_PRIVATE = "not_private"  # someone besides the bot and the patient is a member or invited
    CANNOT_SEND = "cannot_send"  # the bot may not even post a message: it leaves without a word
    CANNOT_REMOVE = "cannot_remove"  # the bot may not redact the patient's messages
    NOT_ENCRYPTED = "not_encrypted"  # not encrypted, and the bot may not turn encryption on


@dataclass(frozen=True)
class RoomFacts:
    """What the room's current state says, as far as safety goes."""

    members: frozenset[UserID]  # joined or invited
    encrypted: bool
    privileged: frozenset[UserID]  # room v12+ creators: unlimited power
    users: Mapping[str, int]
    users_default: int
    events: Mapping[str, int]
    events_default: int
    state_default: int
    redact: int

    def power(self, user: UserID) -> float:
        if user in self.privileged:
            return math.inf
        return self.users.get(user, self.users_default)

    def may_send(self, user: UserID, event_type: str, *, state: bool = False) -> bool:
        default = self.state_default if state else self.events_default
        return self.power(user) >= self.events.get(event_type, default)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _privileged_creators(version: str) -> bool:
    """Room versions where creators hold unlimited power (MSC4289): 12 and later, and its preview."""
    return (version.isdigit() and int(version) >= 12) or "hydra" in version


def room_facts(state: Iterable[Mapping[str, Any]]) -> RoomFacts:
    """The facts of a room from its state events (`GET /rooms/{id}/state`)."""
    members: set[UserID] = set()
    encrypted = False
    create: Mapping[str, Any] = {}
    create_sender = ""
    levels: Mapping[str, Any] | None = None
    for event in state:
        kind, content = event.get("type"), event.get("content")
        if not isinstance(content, Mapping):
            continue
        if kind == "m.room.member" and content.get("membership") in _PRESENT:
            members.add(UserID(str(event.get("state_key", ""))))
        elif kind == "m.room.encryption" and content.get("algorithm"):
            encrypted = True
        elif kind == "m.room.create":
            create, create_sender = content, str(event.get("sender", ""))
        elif kind == "m.room.power_levels":
            levels = content
    privileged: frozenset[UserID] = frozenset()
    if _privileged_creators(str(create.get("room_version", "1"))):
        extra = create.get("additional_creators")
        listed = [str(user) for user in extra] if isinstance(extra, list) else []
        privileged = frozenset(UserID(user) for user in [create_sender, *listed] if user)
    if levels is None:
        # No power levels at all: the creator has 100, everyone else 0, and anyone may send (spec).
        creator = UserID(create_sender)
        return RoomFacts(frozenset(members), encrypted, privileged, {creator: 100}, 0, {}, 0, 0, 50)
    users = levels.get("users")
    events = levels.get("events")
    return RoomFacts(
        members=frozenset(members),
        encrypted=encrypted,
        privileged=privileged,
        users={str(k): _int(v, 0) for k, v in users.items()} if isinstance(users, Mapping) else {},
        users_default=_int(levels.get("users_default"), 0),
        events={str(k): _int(v, 0) for k, v in events.items()} if isinstance(events, Mapping) else {},
        events_default=_int(levels.get("events_default"), 0),
        state_default=_int(levels.get("state_default"), 50),
        redact=_int(levels.get("redact"), 50),
    )


def assess(facts: RoomFacts, bot: UserID, patient: UserID) -> Unsafe | None:
    """Why the journey may not run in this room, or None if it may."""
    if facts.members - {bot, patient}:
        return Unsafe.NOT_PRIVATE
    message = "m.room.encrypted" if facts.encrypted else "m.room.message"
    if not facts.may_send(bot, message):
        return Unsafe.CANNOT_SEND
    if not facts.encrypted and not (
        facts.may_send(bot, "m.room.encryption", state=True) and facts.may_send(bot, "m.room.encrypted")
    ):
        return Unsafe.NOT_ENCRYPTED
    if facts.power(bot) < facts.redact or not facts.may_send(bot, "m.room.redaction"):
        return Unsafe.CANNOT_REMOVE
    return None


def newcomers(
    patient: UserID, bot: UserID, members_now: Iterable[UserID], changes: Iterable[tuple[UserID, str]]
) -> frozenset[UserID]:
    """Who, besides the bot and the patient, is in the chat now or joined or was invited during this sync
    batch (`changes`: (member, membership) of each membership event, in order). Anyone who was, even for a
    moment, may have received what the patient's app encrypted in that time."""
    seen = set(members_now) | {member for member, membership in changes if membership in _PRESENT}
    return frozenset(seen - {patient, bot})
