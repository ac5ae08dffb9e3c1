"""Fuzzing the patient conversation with random text at every step: the step function answers every message
with a reply, removes a message carrying personal data without moving on, stays inside the transition table,
and its state survives storage. (test_conversation_properties.py fuzzes sequences of mixed inputs; this one
sends one arbitrary text, up to a few thousand characters of any script, to a conversation at each step.)"""

from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import event, given
from hypothesis import strategies as st

from bot.conversation import (
    TRANSITIONS,
    AskConsent,
    Begin,
    Conversation,
    Input,
    PhotoStored,
    Redact,
    Reply,
    State,
    Text,
    step,
)
from bot.ids import EventID
from bot.personal_data import find_personal_data
from tests.unit.test_conversation_properties import WORDS
from tests.unit.test_conversation_support import NHS_NUMBER, POLICY, START_TIME
from tests.unit.test_fuzz_support import CASES, fuzz_settings

LISTED = {(t.source, t.target) for t in TRANSITIONS}
NUMBER_STATES = (State.AWAITING_NHS_NUMBER, State.CONFIRMING_NHS_NUMBER)


def _after(inputs: list[Input]) -> Conversation:
    conversation, _ = step(None, Begin("conv-fuzz", START_TIME), POLICY)
    for item in inputs:
        conversation, _ = step(conversation, item, POLICY)
    return conversation


def _texts(*answers: str) -> list[Input]:
    return [
        Text(EventID(f"$a{n}"), answer, START_TIME + timedelta(seconds=n)) for n, answer in enumerate(answers)
    ]


def _photo(n: int) -> Input:
    return PhotoStored(EventID(f"$p{n}"), f"photo{n}", (), START_TIME + timedelta(minutes=1))


# A conversation at each step of the journey, and in each way it can end.
CONVERSATIONS: dict[str, Conversation] = {
    "greeting": _after([]),
    "requested photo": step(None, Begin("conv-req", START_TIME, requested_area="your left knee"), POLICY)[0],
    "confirming number": _after(_texts(NHS_NUMBER)),
    "intimate?": _after(_texts(NHS_NUMBER, "yes")),
    "under 18?": _after(_texts(NHS_NUMBER, "yes", "yes")),
    "whose number is it?": _after(_texts(NHS_NUMBER, "yes")),
    "keep or delete?": _after(_texts(NHS_NUMBER, "1", "no", "delete")),
    "photos, none yet": _after(_texts(NHS_NUMBER, "1", "no")),
    "photos, one sent": _after([*_texts(NHS_NUMBER, "1", "no"), _photo(1)]),
    "refused": _after(_texts(NHS_NUMBER, "yes", "yes", "yes")),
    "cancelled": _after(_texts(NHS_NUMBER, "cancel")),
    "submitted": _after([*_texts(NHS_NUMBER, "1", "no"), _photo(1), *_texts("done")]),
}
CONVERSATIONS["asked for consent"] = step(
    CONVERSATIONS["submitted"],
    AskConsent("consent-1", "second-opinion", "GP-7KQ2-M4XD", START_TIME + timedelta(minutes=5)),
    POLICY,
)[0]

patient_text = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=3000),
    st.lists(st.sampled_from([*WORDS, " ", "\n", "!", "\u200b", "\u0660"]), max_size=12).map(" ".join),
)


@fuzz_settings(CASES["patient conversation: any text at every step"])
@given(where=st.sampled_from(sorted(CONVERSATIONS)), body=patient_text)
def test_any_text_at_any_step_is_answered_and_handled_safely(where: str, body: str) -> None:
    """Whatever a patient types at any step, the bot replies; a message carrying personal data is removed
    and the step stays where it was; the conversation moves only along the transition table; and the
    new state survives being stored."""
    before = CONVERSATIONS[where]
    message = Text(EventID("$fuzz"), body, before.last_activity_at + timedelta(minutes=1))
    after, effects = step(before, message, POLICY)
    replies = [effect.text for effect in effects if isinstance(effect, Reply)]
    assert replies and all(text.strip() for text in replies), "every message gets a non-empty reply"
    if before.state is not after.state:
        assert (before.state, after.state) in LISTED
    if before.state not in NUMBER_STATES and not before.state.finished and find_personal_data(body):
        event("personal data removed")
        assert [e.event_id for e in effects if isinstance(e, Redact)] == [EventID("$fuzz")]
        assert after.state is before.state
    assert Conversation.from_dict(json.loads(json.dumps(after.to_dict()))) == after
    event(f"{before.state.value} -> {after.state.value}")
