"""Shared helpers for the conversation tests: a policy, synthetic NHS numbers, and a `Chat` that plays the
handler's part (it keeps the conversation, the clock and the event ids, and asks `photo_admission` before
"downloading" a photo). No tests here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.conversation import (
    AskConsent,
    Begin,
    Conversation,
    DestroyPhotos,
    Effect,
    Expire,
    Input,
    PhotoNotExpected,
    PhotoRejected,
    PhotoStored,
    Policy,
    PurgeMedia,
    Redact,
    Refuse,
    Reply,
    RoomUnsafe,
    State,
    Submit,
    Text,
    Undecryptable,
    Unsupported,
    photo_admission,
    step,
)
from bot.ids import EventID
from bot.nhs_number import with_check_digit

PRACTICE = "Riverside Surgery"
POLICY = Policy(PRACTICE, max_photos=3, test_mode=True, media_purge_enabled=True)
START_TIME = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def _test_number(nine: str) -> str:
    number = with_check_digit(nine)
    assert number is not None
    return number


# Synthetic numbers from the NHS test range (999...), accepted only in test mode.
NHS_NUMBER = _test_number("999000001")
OTHER_NHS_NUMBER = _test_number("999123457")
MISTYPED_NHS_NUMBER = NHS_NUMBER[:9] + str((int(NHS_NUMBER[9]) + 1) % 10)


def spaced(digits: str) -> str:
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def fill(template: str, policy: Policy = POLICY, **values: object) -> str:
    """A text as the patient reads it."""
    return policy.texts.fill(template, practice=policy.practice_name, **values)


# How to reach each state from the start, as the patient would.
SCRIPTS: dict[State, tuple[str, ...]] = {
    State.AWAITING_NHS_NUMBER: (),
    State.CONFIRMING_NHS_NUMBER: (NHS_NUMBER,),
    State.SCREEN_INTIMATE: (NHS_NUMBER, "1"),
    State.SCREEN_UNDER_18: (NHS_NUMBER, "1", "yes"),
    State.SCREEN_WHO: (NHS_NUMBER, "yes"),
    State.STORAGE_CHOICE: (NHS_NUMBER, "1", "no", "delete"),
    State.AWAITING_PHOTOS: (NHS_NUMBER, "1", "no"),
    State.REFUSED: (NHS_NUMBER, "1", "yes", "yes"),
    State.SUBMITTED: (NHS_NUMBER, "1", "no", "<photo>", "done"),
    State.CANCELLED: (NHS_NUMBER, "cancel"),
    State.EXPIRED: (NHS_NUMBER, "<expire>"),
}


@dataclass
class Chat:
    """One patient's chat, driven through `step` the way the handler drives it."""

    policy: Policy = POLICY
    conversation: Conversation | None = None
    now: datetime = START_TIME
    effects: tuple[Effect, ...] = ()
    history: list[tuple[Input, tuple[Effect, ...]]] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def begun(
        cls, policy: Policy = POLICY, requested_area: str | None = None, requested_by: str | None = None
    ) -> Chat:
        chat = cls(policy=policy)
        chat.send(Begin("conv-1", chat.tick(), requested_area=requested_area, requested_by=requested_by))
        return chat

    @classmethod
    def in_state(cls, state: State, policy: Policy = POLICY) -> Chat:
        chat = cls.begun(policy)
        for line in SCRIPTS[state]:
            if line == "<photo>":
                chat.photo()
            elif line == "<expire>":
                chat.expire()
            else:
                chat.say(line)
        assert chat.state is state
        return chat

    @property
    def current(self) -> Conversation:
        assert self.conversation is not None
        return self.conversation

    @property
    def state(self) -> State:
        return self.current.state

    def tick(self) -> datetime:
        self.now += timedelta(seconds=30)
        return self.now

    def event_id(self) -> EventID:
        return EventID(f"$event{next(self._counter)}")

    def send(self, event: Input) -> tuple[Effect, ...]:
        self.conversation, self.effects = step(self.conversation, event, self.policy)
        self.history.append((event, self.effects))
        return self.effects

    def say(self, body: str) -> tuple[Effect, ...]:
        return self.send(Text(self.event_id(), body, self.tick()))

    def photo(self, *issues: str) -> tuple[Effect, ...]:
        """A photo, admitted (and stored) or refused as the handler would."""
        event_id = self.event_id()
        admission = photo_admission(self.conversation, self.policy)
        if isinstance(admission, Refuse):
            return self.send(PhotoNotExpected(event_id, self.tick()))
        return self.send(PhotoStored(event_id, f"photo-{event_id[6:]}", issues, self.tick()))

    def stored(self, photo_id: str, *issues: str) -> tuple[Effect, ...]:
        """A stored photo, whatever `photo_admission` would have said."""
        return self.send(PhotoStored(self.event_id(), photo_id, issues, self.tick()))

    def rejected(self, reason: str, detected: str | None = None) -> tuple[Effect, ...]:
        return self.send(PhotoRejected(self.event_id(), reason, detected, self.tick()))

    def unsupported(self, kind: str) -> tuple[Effect, ...]:
        return self.send(Unsupported(self.event_id(), kind, self.tick()))

    def undecryptable(self) -> tuple[Effect, ...]:
        return self.send(Undecryptable(self.event_id(), self.tick()))

    def expire(self) -> tuple[Effect, ...]:
        return self.send(Expire(self.now + timedelta(days=2)))

    def last_event_id(self) -> EventID:
        event = self.history[-1][0]
        assert not isinstance(event, Begin | Expire | AskConsent | RoomUnsafe)
        return event.event_id

    # What the patient and the handler see after the last step.
    @property
    def reply(self) -> str:
        return "\n\n".join(effect.text for effect in self.effects if isinstance(effect, Reply))

    @property
    def redacted(self) -> list[EventID]:
        return [effect.event_id for effect in self.effects if isinstance(effect, Redact)]

    @property
    def purged(self) -> list[EventID]:
        return [effect.event_id for effect in self.effects if isinstance(effect, PurgeMedia)]

    @property
    def destroyed(self) -> list[str]:
        return [
            photo
            for effect in self.effects
            if isinstance(effect, DestroyPhotos)
            for photo in effect.photo_ids
        ]

    @property
    def submitted(self) -> Submit | None:
        found = [effect for effect in self.effects if isinstance(effect, Submit)]
        return found[0] if found else None

    def kinds(self) -> list[str]:
        return [type(effect).__name__ for effect in self.effects]
