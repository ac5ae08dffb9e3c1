"""Fuzzing the whole staff-room dispatch, without a homeserver: commands (well-formed, malformed, unknown,
or any text) from clinicians, admins and strangers, in clinician rooms, the admin room and rooms the bot does
not serve, go through the real router, command table, handlers and database of a bot built by `open_app`.

Every command gets exactly one reply (in a sentence) queued for its room in the same transaction as the
handled-event mark, and anything else staff say gets none. Nothing here reaches the network: the gateway
points at a port nobody listens on, and the bot's rooms are unknown to its Matrix client, so replies stay in
the outbox where the test reads them. The database is a real SQLite file in a temporary directory.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.app import App
from bot.ids import EventID, RoomID, UserID
from bot.matrix.events import Incoming, TextMessage
from bot.matrix.gateway import SyncBatch
from bot.trust_policy import DeviceVerdict
from handlers.commands import parse_command
from storage.outbox import derive_txn_id
from tests.unit.test_fuzz_support import CASES, fuzz_settings, offline_app

CLINICIAN = UserID("@dr.ada:example.org")
ADMIN = UserID("@manager:example.org")
STRANGER = UserID("@visitor:example.org")
CLINIC_ROOM = RoomID("!clinicians:example.org")
ADMIN_ROOM = RoomID("!admin:example.org")
OTHER_ROOM = RoomID("!elsewhere:example.org")  # not a staff room, and no patient's: nobody is answered

COMMAND_NAMES = [
    "help", "queue", "claim", "view", "keep", "describe", "crop", "rotate", "blur", "export", "consent",
    "share", "delete", "request", "audit", "config", "set", "clinician", "admin", "room", "text",
    "retention-resume", "identity", "nonsense", "HELP", "Queue",
]  # fmt: skip
WORDS = [
    "GP-7KQ2-M4XD", "GP-0000-0000", "gp-7kq2-m4xd", "new", "claimed", "done", "open", "all", "0", "1", "2",
    "-1", "999999999999", "90", "180", "270", "45", "10", "50", "100", "101", "second-opinion", "teaching",
    "add", "remove", "accept", "promote", "reset", "clinician", "admin", "max_photos", "retention", "practice_name",
    "greeting", "@someone:patients.invalid", "@dr.bea:example.org", "!another:example.org", "--", "the",
    "lesion", "is", "changing", "\u202e", "🙂", "x" * 300,
]  # fmt: skip

command_text = st.one_of(
    st.builds(
        lambda name, words: " ".join(["!" + name, *words]),
        st.sampled_from(COMMAND_NAMES),
        st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=20)), max_size=6),
    ),
    st.text(max_size=120).map(lambda text: "!" + text),
    st.text(max_size=120),
)
# Mostly staff in their own rooms, where commands do something; then every other combination.
where = st.one_of(
    st.sampled_from([(CLINICIAN, CLINIC_ROOM), (CLINICIAN, CLINIC_ROOM), (ADMIN, ADMIN_ROOM)]),
    st.tuples(
        st.sampled_from([CLINICIAN, ADMIN, STRANGER]), st.sampled_from([CLINIC_ROOM, ADMIN_ROOM, OTHER_ROOM])
    ),
)
_event_numbers = itertools.count()


@pytest.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    """A practice's bot with a clinician room and an admin room, on a homeserver that is not there."""
    opened = await offline_app(
        tmp_path_factory.mktemp("staff-fuzz") / "data",
        CLINICIANS=CLINICIAN,
        ADMINS=ADMIN,
        CLINICIAN_ROOMS=CLINIC_ROOM,
        ADMIN_ROOM=ADMIN_ROOM,
        ALLOWED_SERVERS="patients.invalid",  # a photo request would open a chat: refused before any network
    )
    # Every command here comes from a device its sender signed, so it reaches the command table; the
    # signed-device rule has its own end-to-end tests (tests/e2e/test_device_trust.py).
    opened.staff.check_device = _from_a_signed_device
    try:
        yield opened
    finally:
        await opened.close()


async def _from_a_signed_device(event: Incoming) -> DeviceVerdict:
    return DeviceVerdict.SIGNED


@fuzz_settings(CASES["staff dispatch: commands from anyone in any staff room"])
@given(text=command_text, sender_and_room=where)
async def test_every_command_in_a_staff_room_gets_exactly_one_reply(
    app: App, text: str, sender_and_room: tuple[UserID, RoomID]
) -> None:
    """A command typed in a clinician or admin room, by anyone, is answered once, in a sentence, and marked
    handled; words that are not a command, and anything said in a room the bot does not serve, get nothing."""
    sender, room = sender_and_room
    event_id = EventID(f"$fuzz{next(_event_numbers)}")
    message = TextMessage(event_id, room, sender, 0, encrypted=True, body=text)
    complete = await app.sync.router.handle_batch(SyncBatch("s1", (), {room: [message]}, (), None))
    assert complete, "a staff command never leaves its batch to be replayed"

    outbox = app.patient.outbox
    queued = await outbox.pending(room)
    replies = [item for item in queued if item.txn_id == derive_txn_id(event_id, 0)]
    is_command = parse_command(text) is not None and room != OTHER_ROOM
    if is_command:
        assert len(replies) == 1, "exactly one reply per command"
        reply = str(replies[0].payload["text"])
        assert reply.strip() and len(reply) < 10_000
        assert await app.patient.handled.seen(event_id)
        event(reply[:32])
    else:
        assert replies == []
        event("not a command: ignored")
    for item in await outbox.pending():
        await outbox.done(item.id)
