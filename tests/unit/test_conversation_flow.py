"""The flow diagram, the TRANSITIONS table and what `step` actually does all agree."""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bot.conversation import (
    TRANSITIONS,
    Begin,
    Conversation,
    Edit,
    Expire,
    Input,
    PhotoNotExpected,
    PhotoRejected,
    PhotoStored,
    Reaction,
    RoomUnsafe,
    State,
    Text,
    Undecryptable,
    Unsupported,
    step,
)
from bot.ids import EventID
from tests.unit.test_conversation_support import (
    MISTYPED_NHS_NUMBER,
    NHS_NUMBER,
    OTHER_NHS_NUMBER,
    POLICY,
    START_TIME,
)

DIAGRAM = Path(__file__).resolve().parents[2] / "docs" / "conversation-flow.md"
START = "[*]"

Edge = tuple[str, str, str]


def diagram_edges() -> tuple[set[Edge], set[str]]:
    """The transitions drawn in the Mermaid block (composite states expanded) and the states named."""
    text = DIAGRAM.read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert block is not None, "docs/conversation-flow.md has no mermaid block"
    lines = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    assert lines[0] == "stateDiagram-v2"
    composites: dict[str, list[str]] = {}
    raw: list[Edge] = []
    open_composite: str | None = None
    for line in lines[1:]:
        if match := re.fullmatch(r"state (\w+) \{", line):
            open_composite = match.group(1)
            composites[open_composite] = []
            continue
        if line == "}":
            open_composite = None
            continue
        match = re.fullmatch(r"(\[\*\]|\w+) --> (\w+): (.+)", line)
        assert match is not None, f"unexpected line in the diagram: {line!r}"
        source, target, label = match.groups()
        raw.append((source, target, label))
        if open_composite is not None:
            composites[open_composite] += [name for name in (source, target) if name != START]
    edges: set[Edge] = set()
    for source, target, label in raw:
        sources = sorted(set(composites[source])) if source in composites else [source]
        edges |= {(each, target, label) for each in sources}
    named = {name for edge in edges for name in edge[:2]} - {START}
    return edges, named


def table_edges() -> set[Edge]:
    return {(START if t.source is None else t.source.value, t.target.value, t.trigger) for t in TRANSITIONS}


def test_diagram_draws_exactly_the_transitions_of_the_table() -> None:
    """Every transition in TRANSITIONS is drawn with its label, and nothing else is drawn."""
    drawn, _ = diagram_edges()
    assert drawn == table_edges()


def test_diagram_names_every_state() -> None:
    """Every state of the code appears in the diagram, and the diagram has no state the code lacks."""
    _, named = diagram_edges()
    assert named == {state.value for state in State}


# Exploring `step` ----------------------------------------------------------------------------------------

EXPLORE_POLICY = replace(POLICY, max_photos=2, max_notes=1)


def vocabulary(counter: itertools.count[int]) -> list[Callable[[Conversation], Input]]:
    """Every kind of input, each a function of the conversation (for a fresh event id and a later time)."""

    def text(body: str) -> Callable[[Conversation], Input]:
        return lambda c: Text(EventID(f"$e{next(counter)}"), body, c.last_activity_at + timedelta(seconds=1))

    def stored(*issues: str) -> Callable[[Conversation], Input]:
        def make(c: Conversation) -> Input:
            n = next(counter)
            return PhotoStored(EventID(f"$e{n}"), f"p{n}", issues, c.last_activity_at + timedelta(seconds=1))

        return make

    def edit(body: str) -> Callable[[Conversation], Input]:
        def make(c: Conversation) -> Input:
            replaces = c.last_answer_id or EventID("$an-older-message")
            return Edit(
                EventID(f"$e{next(counter)}"), replaces, body, c.last_activity_at + timedelta(seconds=1)
            )

        return make

    def reaction(key: str) -> Callable[[Conversation], Input]:
        return lambda c: Reaction(
            EventID(f"$e{next(counter)}"), key, c.last_activity_at + timedelta(seconds=1)
        )

    def later(c: Conversation) -> Input:
        return Expire(c.last_activity_at + timedelta(days=1))

    words = [
        "help",
        "cancel",
        "start",
        "yes",
        "no",
        "1",
        "2",
        "done",
        "keep",
        "delete",
        "ok",
        "a note",
        "my name is Jane Doe",
        NHS_NUMBER,
        OTHER_NHS_NUMBER,
        MISTYPED_NHS_NUMBER,
    ]
    return [
        *(text(word) for word in words),
        *(edit(word) for word in ("yes", "no", "1", "2", "done", "delete", NHS_NUMBER, MISTYPED_NHS_NUMBER)),
        *(reaction(key) for key in ("👍", "👎", "1️⃣", "2️⃣")),
        stored(),
        stored("blurred"),
        lambda c: PhotoRejected(EventID(f"$e{next(counter)}"), "corrupt", None, c.last_activity_at),
        lambda c: PhotoNotExpected(EventID(f"$e{next(counter)}"), c.last_activity_at),
        lambda c: Unsupported(EventID(f"$e{next(counter)}"), "video", c.last_activity_at),
        lambda c: Undecryptable(EventID(f"$e{next(counter)}"), c.last_activity_at),
        lambda c: RoomUnsafe(c.last_activity_at),
        later,
        lambda c: Begin(f"conv-{next(counter)}", c.last_activity_at, requested_area="your arm"),
    ]


def shape(conversation: Conversation) -> Hashable:
    """What makes two conversations behave differently (ids and times aside)."""
    before = conversation.before_last_answer
    return (
        shape(before) if before is not None else None,
        conversation.state,
        conversation.nhs_number,
        bool(conversation.number_event_ids),
        conversation.intimate,
        conversation.under_18,
        conversation.acting_for_someone,
        conversation.keep_in_record,
        len(conversation.photo_ids),
        conversation.retake_photo_id is not None,
        len(conversation.notes),
        conversation.requested_area,
    )


def explored_transitions() -> set[tuple[State | None, State]]:
    """Every change of state `step` makes from any reachable conversation, for every kind of input."""
    counter = itertools.count(1)
    inputs = vocabulary(counter)
    first, _ = step(None, Begin("conv-0", START_TIME), EXPLORE_POLICY)
    found: set[tuple[State | None, State]] = {(None, first.state)}
    seen = {shape(first)}
    queue = deque([first])
    while queue:
        conversation = queue.popleft()
        for make in inputs:
            after, _ = step(conversation, make(conversation), EXPLORE_POLICY)
            if after.state is not conversation.state or after.conversation_id != conversation.conversation_id:
                found.add((conversation.state, after.state))
            if shape(after) not in seen:
                seen.add(shape(after))
                queue.append(after)
        assert len(seen) < 5000, "the exploration should be small"
    return found


def test_step_makes_exactly_the_transitions_of_the_table() -> None:
    """Exploring every reachable conversation with every kind of input finds each listed transition and
    no other."""
    listed = {(t.source, t.target) for t in TRANSITIONS}
    assert explored_transitions() == listed
