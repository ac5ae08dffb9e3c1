"""Properties of any sequence of inputs: no crash, an answer every time, no photo both kept and destroyed,
no photo forgotten, and nothing `step` does outside the TRANSITIONS table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.conversation import (
    TRANSITIONS,
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
    Redact,
    Refuse,
    Reply,
    State,
    Submit,
    Text,
    Undecryptable,
    Unsupported,
    photo_admission,
    step,
)
from bot.ids import EventID
from tests.unit.test_conversation_support import MISTYPED_NHS_NUMBER, NHS_NUMBER, START_TIME

WORDS = [
    "help",
    "?",
    "cancel",
    "stop",
    "start",
    "yes",
    "y",
    "no",
    "nope",
    "1",
    "2",
    "done",
    "DONE",
    "keep",
    "thanks",
    "It's on my left arm, about 3 days",
    "my name is Jane Doe",
    "SW1A 1AA",
    "07700 900123",
    NHS_NUMBER,
    MISTYPED_NHS_NUMBER,
    "",
    "   ",
]
ISSUES = ["blurred", "too_dark", "too_bright", "too_small", "odd"]
REASONS = [
    "empty",
    "too_large",
    "too_many_pixels",
    "unsupported_type",
    "truncated",
    "corrupt",
    "download_failed",
    "unencrypted",
    "strange",
]
KINDS = ["video", "voice message", "audio", "sticker", "location", "file", "poll"]

# The answer that moves each step on ("yes"/"no" and "1"/"2" chosen by a coin), so that random scripts
# reach the photo step and beyond, not only the first questions.
PROGRESS: dict[State, tuple[str, str]] = {
    State.AWAITING_NHS_NUMBER: (NHS_NUMBER, NHS_NUMBER),
    State.CONFIRMING_NHS_NUMBER: ("yes", "yes"),
    State.SCREEN_INTIMATE: ("no", "yes"),
    State.SCREEN_UNDER_18: ("no", "yes"),
    State.SCREEN_WHO: ("1", "2"),
    State.STORAGE_CHOICE: ("1", "2"),
    State.AWAITING_PHOTOS: ("done", "keep"),
}

# What the patient or the handler may do next; the runner turns each into an input.
others = st.one_of(
    st.tuples(st.just("text"), st.one_of(st.sampled_from(WORDS), st.text(max_size=40))),
    st.tuples(st.just("photo"), st.lists(st.sampled_from(ISSUES), max_size=2).map(tuple)),
    st.tuples(st.just("stored anyway"), st.lists(st.sampled_from(ISSUES), max_size=2).map(tuple)),
    st.tuples(
        st.just("rejected"), st.tuples(st.sampled_from(REASONS), st.sampled_from([None, "PDF", "MP4 video"]))
    ),
    st.tuples(st.just("not expected"), st.none()),
    st.tuples(st.just("unsupported"), st.sampled_from(KINDS)),
    st.tuples(st.just("undecryptable"), st.none()),
    st.tuples(st.just("expire"), st.none()),
    st.tuples(st.just("begin"), st.sampled_from([None, "your left knee"])),
)
# Half the time the patient answers as expected, a third of the time sends a photo or other input.
actions = st.integers(0, 5).flatmap(
    lambda roll: (
        st.tuples(st.just("progress"), st.booleans())
        if roll < 3
        else st.tuples(st.just("photo"), st.lists(st.sampled_from(ISSUES), max_size=2).map(tuple))
        if roll == 3
        else others
    )
)
policies = st.builds(
    Policy,
    practice_name=st.just("Riverside Surgery"),
    max_photos=st.integers(1, 3),
    test_mode=st.just(True),
    media_purge_enabled=st.booleans(),
    max_notes=st.integers(0, 2),
)
LISTED = {(t.source, t.target) for t in TRANSITIONS}


@dataclass
class Ledger:
    """Where every stored photo went, as the handler would see it."""

    stored: set[str] = field(default_factory=set)
    destroyed: set[str] = field(default_factory=set)
    submitted: set[str] = field(default_factory=set)

    def record(self, effects: tuple[Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, DestroyPhotos):
                assert not set(effect.photo_ids) & self.submitted, "a submitted photo was destroyed"
                self.destroyed |= set(effect.photo_ids)
            if isinstance(effect, Submit):
                assert not set(effect.photo_ids) & self.destroyed, "a destroyed photo was submitted"
                self.submitted |= set(effect.photo_ids)


def to_input(action: tuple[str, object], conversation: Conversation, n: int, policy: Policy) -> Input:
    kind, value = action
    now = conversation.last_activity_at + timedelta(minutes=1)
    event_id = EventID(f"$e{n}")
    match kind:
        case "progress":
            assert isinstance(value, bool)
            return Text(event_id, PROGRESS.get(conversation.state, ("start", "start"))[value], now)
        case "text":
            assert isinstance(value, str)
            return Text(event_id, value, now)
        case "photo":
            assert isinstance(value, tuple)
            if isinstance(photo_admission(conversation, policy), Refuse):
                return PhotoNotExpected(event_id, now)
            return PhotoStored(event_id, f"p{n}", value, now)
        case "stored anyway":
            assert isinstance(value, tuple)
            return PhotoStored(event_id, f"p{n}", value, now)
        case "rejected":
            assert isinstance(value, tuple)
            return PhotoRejected(event_id, value[0], value[1], now)
        case "not expected":
            return PhotoNotExpected(event_id, now)
        case "unsupported":
            assert isinstance(value, str)
            return Unsupported(event_id, value, now)
        case "undecryptable":
            return Undecryptable(event_id, now)
        case "expire":
            return Expire(now + timedelta(days=1))
        case _:
            assert value is None or isinstance(value, str)
            return Begin(f"conv-{n}", now, requested_area=value)


# Answers that take a new conversation straight to the photo step (intimate adult, or not intimate).
TO_PHOTOS = {
    "greeting": (),
    "photo step": (NHS_NUMBER, "1", "no", "delete", "2"),
    "intimate photo step": (NHS_NUMBER, "2", "yes", "no"),
}


@settings(max_examples=400, deadline=None)
@given(policy=policies, start=st.sampled_from(sorted(TO_PHOTOS)), script=st.lists(actions, max_size=50))
def test_any_sequence_of_inputs_is_handled_safely(
    policy: Policy, start: str, script: list[tuple[str, object]]
) -> None:
    """Whatever arrives, in any order: no exception, a reply to everything but a late Expire, every photo
    message removed, no photo both accepted and destroyed, every stored photo held, submitted or
    destroyed, storage round trips, and only listed transitions."""
    conversation, effects = step(None, Begin("conv-0", START_TIME), policy)
    for n, answer in enumerate(TO_PHOTOS[start], start=1000):
        conversation, effects = step(conversation, Text(EventID(f"$s{n}"), answer, START_TIME), policy)
    ledger = Ledger()
    for n, action in enumerate(script, start=1):
        event = to_input(action, conversation, n, policy)
        before = conversation
        conversation, effects = step(conversation, event, policy)
        ledger.record(effects)
        if isinstance(event, PhotoStored):
            ledger.stored.add(event.photo_id)

        if isinstance(event, Expire) and before.state.finished:
            assert effects == ()
            assert conversation == before
        else:
            assert any(isinstance(effect, Reply) and effect.text.strip() for effect in effects)
        if isinstance(event, PhotoStored | PhotoRejected | PhotoNotExpected | Unsupported):
            assert event.event_id in {e.event_id for e in effects if isinstance(e, Redact)}

        held = set(conversation.all_photo_ids)
        assert not held & ledger.destroyed, "a photo is both accepted and destroyed"
        assert ledger.stored == held | ledger.submitted | ledger.destroyed, "a stored photo was lost track of"
        assert Conversation.from_dict(json.loads(json.dumps(conversation.to_dict()))) == conversation
        if conversation.state is not before.state or conversation.conversation_id != before.conversation_id:
            assert (before.state, conversation.state) in LISTED
