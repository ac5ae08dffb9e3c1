"""Fuzzing the patient handler, without a homeserver, and holding what it logs to the log-hygiene rule.

Scripts of patient messages (the NHS number as typed, personal details, menu answers, any text) go through
the real router, patient handler, conversation and database of a bot built by `open_app`. Every message is
marked handled and answered; a message with personal data is also removed from the chat. Meanwhile every
log record any logger writes at INFO and above, tracebacks included, is formatted without the bot's scrubber
and checked by `bot.leak_scan.scan_log_text`: the log calls themselves must never carry an NHS number, a
media URL, an attachment key or an event repr. The logging paths taken: an unexpected error (a stored
conversation the bot cannot read) with its traceback, idle conversations expiring, commands refused.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import App
from bot.conversation import State
from bot.ids import EventID, RoomID, UserID
from bot.leak_scan import scan_log_text
from bot.matrix.events import TextMessage
from bot.matrix.gateway import SyncBatch
from bot.personal_data import find_personal_data
from tests.unit.test_conversation_properties import WORDS
from tests.unit.test_conversation_support import NHS_NUMBER, spaced
from tests.unit.test_fuzz_support import CASES, fuzz_settings, offline_app

PATIENT = UserID("@patient:example.org")
_numbers = itertools.count()


class Records(logging.Handler):
    """Keeps every record it is given, formatted as a plain log line (with any traceback), unscrubbed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured_log() -> Iterator[Records]:
    """Every record written at INFO and above while the block runs, as the bot's log would hold it."""
    root = logging.getLogger()
    records, level = Records(), root.level
    root.addHandler(records)
    root.setLevel(logging.INFO)
    try:
        yield records
    finally:
        root.removeHandler(records)
        root.setLevel(level)


def assert_log_is_clean(records: Records) -> None:
    findings = scan_log_text("\n".join(records.lines) + "\n", Path("captured.log"))
    assert findings == [], [str(finding) for finding in findings]


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    opened = await offline_app(tmp_path_factory.mktemp("patient-fuzz") / "data")
    try:
        yield opened
    finally:
        await opened.close()


async def open_chat(app: App) -> RoomID:
    room_id = RoomID(f"!patient{next(_numbers)}:example.org")
    await app.patient.start(room_id, PATIENT)
    return room_id


async def say(app: App, room_id: RoomID, text: str) -> EventID:
    event_id = EventID(f"$patient{next(_numbers)}")
    message = TextMessage(event_id, room_id, PATIENT, 0, encrypted=True, body=text)
    assert await app.sync.router.handle_batch(SyncBatch("s", (), {room_id: [message]}, (), None))
    return event_id


message = st.one_of(
    st.sampled_from([NHS_NUMBER, spaced(NHS_NUMBER), "yes", "no", "1", "2", "help", "done"]),
    st.sampled_from(WORDS),
    st.sampled_from(["my name is Zofia Nowak", "call me on 07700 900123", "I live at 12 High Street"]),
    st.text(max_size=200),
)


# Where a message may be an NHS number, the number is taken out before the personal-data guard looks.
GUARDED_ELSEWHERE = (State.AWAITING_NHS_NUMBER, State.CONFIRMING_NHS_NUMBER)


async def state_of(app: App, room_id: RoomID) -> State:
    data = await app.patient.conversations.load(room_id)
    assert data is not None
    return State(data["state"])


@fuzz_settings(CASES["patient handler: scripts of messages"])
@given(script=st.lists(message, min_size=1, max_size=8))
async def test_every_message_is_answered_and_nothing_of_it_is_logged(app: App, script: list[str]) -> None:
    """Each message of any script is marked handled and answered; one carrying personal details is also
    removed from the chat; and no log line written meanwhile carries patient data, a key or an event repr."""
    with captured_log() as records:
        room_id = await open_chat(app)
        for text in script:
            state = await state_of(app, room_id)
            before = {item.txn_id for item in await app.patient.outbox.pending(room_id)}
            event_id = await say(app, room_id, text)
            new = [item for item in await app.patient.outbox.pending(room_id) if item.txn_id not in before]
            assert await app.patient.handled.seen(event_id)
            assert any(item.kind == "message" and str(item.payload["text"]).strip() for item in new)
            if state not in GUARDED_ELSEWHERE and find_personal_data(text):
                removed = [item.payload["event_id"] for item in new if item.kind == "redaction"]
                assert removed == [event_id], "a message with personal details is removed from the chat"
        unfinished = not (await state_of(app, room_id)).finished
        await app.patient.expire_idle(timedelta(0))
    if unfinished:
        assert any("expired 1 idle conversation" in line for line in records.lines)
    assert_log_is_clean(records)
    for item in await app.patient.outbox.pending():
        await app.patient.outbox.done(item.id)


async def test_an_unreadable_conversation_is_logged_with_a_reference_and_nothing_of_the_patient(
    app: App,
) -> None:
    """A conversation the bot cannot read (damaged in storage) makes the handler fail: the log gets the error
    reference and a traceback, the patient gets the same reference, and the log holds no NHS number."""
    room_id = await open_chat(app)
    await say(app, room_id, NHS_NUMBER)
    data = await app.patient.conversations.load(room_id)
    assert data is not None and data["nhs_number"] == NHS_NUMBER
    async with app.database.transaction() as db:
        damaged = data | {"state": "no-such-state"}
        await app.patient.conversations.save(
            db, room_id, State.CONFIRMING_NHS_NUMBER.value, damaged, "2030-01-01"
        )
    with captured_log() as records:
        event_id = await say(app, room_id, "yes")
    log = "\n".join(records.lines)
    assert "handling an event failed (ref " in log and "Traceback" in log
    reference = log.split("handling an event failed (ref ")[1][:4]
    replies = [str(item.payload.get("text", "")) for item in await app.patient.outbox.pending(room_id)]
    assert any(f"(ref {reference})" in reply for reply in replies)
    assert await app.patient.handled.seen(event_id)
    assert_log_is_clean(records)
