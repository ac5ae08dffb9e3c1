"""The router on its own: invites, the order and once-only handling of events, and its error boundary.

The router is built as the wiring builds it, with the real database, outbox and delivery, and Matrix
replaced by the in-memory fake behind the port (tests/support/fake_matrix.py). The room handlers here are
small stand-ins that answer every text, so what the router decides shows as what a user would see: which
rooms the bot joins, which messages are answered, and in what order.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.errors import TransientError
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID, UserID
from bot.matrix.events import Incoming, Invite, TextMessage
from bot.matrix.port import SyncBatch
from handlers.delivery import Delivery
from handlers.room_locks import RoomLocks
from handlers.router import RoomHandlers, Router
from storage.handled_events import HandledEvents
from storage.outbox import Outbox, derive_txn_id
from storage.rooms import Room, RoomKind, RoomRepository
from tests.support.fake_matrix import FakeMatrix
from tests.support.real_storage import Storage, StorageTemplate, real_storage, unscraped_metrics

PATIENT = UserID("@pat:patients.example.org")
OTHER_PATIENT = UserID("@sam:patients.example.org")
STRANGER = UserID("@someone:elsewhere.example")
CLINICIAN = UserID("@dr.ada:example.org")
ROOM = RoomID("!chat:example.org")
OTHER_ROOM = RoomID("!other:example.org")
STAFF_ROOM = RoomID("!clinicians:example.org")
ALLOWED = frozenset({"patients.example.org", "example.org"})

_numbers = itertools.count()


def text(room_id: RoomID, body: str, sender: UserID = PATIENT) -> TextMessage:
    return TextMessage(EventID(f"$e{next(_numbers)}"), room_id, sender, 0, True, body=body)


@dataclass
class Bot:
    """The router and what it drives: the stand-in handlers answer "got: <text>" in the same transaction
    as the handled mark, as the real handlers do; "crash" raises a bug, "offline" a transient failure."""

    matrix: FakeMatrix
    router: Router
    rooms: RoomRepository
    outbox: Outbox
    handled: HandledEvents
    private: set[RoomID] = field(default_factory=set)  # patient rooms that still have only the patient
    refused: list[Invite] = field(default_factory=list)
    failures: list[tuple[EventID, str]] = field(default_factory=list)


@pytest.fixture
async def storage(tmp_path: Path, migrated_database: StorageTemplate) -> AsyncIterator[Storage]:
    async with real_storage(tmp_path / "data", template=migrated_database) as opened:
        yield opened


@pytest.fixture
def bot(storage: Storage) -> Bot:
    matrix = FakeMatrix()
    rooms = RoomRepository(storage.database, storage.keyring, storage.sealer, storage.clock)
    outbox = Outbox(storage.database, storage.sealer, storage.clock)
    handled = HandledEvents(storage.database, storage.clock)
    metrics = unscraped_metrics()
    delivery = Delivery(outbox, matrix, FaultInjector(frozenset(), enabled=False), metrics)
    state: dict[str, Bot] = {}

    async def start_patient(room_id: RoomID, patient: UserID) -> None:
        async with storage.database.transaction() as db:
            await rooms.add(db, room_id, RoomKind.PATIENT, patient)
            await outbox.add(db, room_id, derive_txn_id(f"greet{room_id}", 0), "message", {"text": "Hello"})

    async def refuse(invite: Invite) -> None:
        state["bot"].refused.append(invite)

    async def answer(event: Incoming) -> None:
        assert isinstance(event, TextMessage)
        if event.body == "crash":
            raise RuntimeError("a bug")
        if event.body == "offline":
            raise TransientError("the homeserver went away")
        async with storage.database.transaction() as db:
            await handled.mark(db, event.event_id, event.room_id)
            reply = {"text": f"got: {event.body}"}
            await outbox.add(db, event.room_id, derive_txn_id(event.event_id, 0), "message", reply)

    async def failed(event: Incoming, reference: str) -> None:
        state["bot"].failures.append((event.event_id, reference))
        async with storage.database.transaction() as db:
            await handled.mark(db, event.event_id, event.room_id, "failed")
            reply = {"text": f"Sorry, something went wrong (ref {reference})"}
            await outbox.add(db, event.room_id, derive_txn_id(event.event_id, 0), "message", reply)

    async def admit(room_id: RoomID, patient: UserID) -> bool:
        return True

    async def still_private(room: Room, events: list[Incoming]) -> bool:
        return room.room_id in state["bot"].private

    router = Router(
        gateway=matrix,
        rooms=rooms,
        handled=handled,
        delivery=delivery,
        locks=RoomLocks(),
        allowed_servers=ALLOWED,
        staff_kind=lambda room_id: RoomKind.CLINICIAN if room_id == STAFF_ROOM else None,
        start_patient=start_patient,
        refuse_invite=refuse,
        handlers={
            RoomKind.PATIENT: RoomHandlers(handle=answer, failed=failed),
            RoomKind.CLINICIAN: RoomHandlers(handle=answer, failed=failed),
        },
        metrics=metrics,
        admit_patient_room=admit,
        still_private=still_private,
    )
    state["bot"] = Bot(matrix, router, rooms, outbox, handled)
    return state["bot"]


def batch(*events: Incoming, invites: tuple[Invite, ...] = ()) -> SyncBatch:
    timelines: dict[RoomID, list[Incoming]] = {}
    for event in events:
        timelines.setdefault(event.room_id, []).append(event)
    return SyncBatch("next", invites, timelines, (), None)


async def patient_room(bot: Bot, room_id: RoomID = ROOM, patient: UserID = PATIENT) -> None:
    async with bot.rooms.transaction() as db:
        await bot.rooms.add(db, room_id, RoomKind.PATIENT, patient)
    bot.matrix.add_room(room_id, patient)
    bot.private.add(room_id)


async def test_an_invite_from_a_patient_is_joined_and_greeted_once_the_room_is_known(bot: Bot) -> None:
    """A patient's invite is accepted, and the greeting waits in the outbox until the room appears in a
    sync, then is sent."""
    assert await bot.router.handle_batch(batch(invites=(Invite(ROOM, PATIENT, is_direct=True),)))

    assert bot.matrix.joined == [ROOM]
    assert bot.matrix.sent == []
    bot.matrix.add_room(ROOM, PATIENT)
    bot.private.add(ROOM)
    assert await bot.router.handle_batch(batch(text(ROOM, "hi")))
    assert bot.matrix.messages(ROOM) == ["Hello", "got: hi"]


async def test_an_invite_from_a_server_the_practice_does_not_allow_is_refused_not_joined(bot: Bot) -> None:
    """An invite from another homeserver is refused (the inviter is told why) and never joined."""
    invite = Invite(ROOM, STRANGER, is_direct=True)

    assert await bot.router.handle_batch(batch(invites=(invite,)))

    assert bot.refused == [invite]
    assert bot.matrix.joined == []
    assert await bot.rooms.get(ROOM) is None


async def test_a_staff_room_invite_is_joined_and_recorded_without_a_greeting(bot: Bot) -> None:
    """A configured clinician room is joined and recorded as one, and nobody there is greeted."""
    bot.matrix.add_room(STAFF_ROOM, CLINICIAN)

    assert await bot.router.handle_batch(batch(invites=(Invite(STAFF_ROOM, CLINICIAN, is_direct=False),)))

    assert bot.matrix.joined == [STAFF_ROOM]
    room = await bot.rooms.get(STAFF_ROOM)
    assert room is not None and room.kind is RoomKind.CLINICIAN
    assert await bot.outbox.pending(STAFF_ROOM) == []


async def test_a_rooms_messages_are_answered_in_order_and_each_only_once(bot: Bot) -> None:
    """Messages are answered in the order they were sent, and a replayed batch is not answered again."""
    await patient_room(bot)
    replayed = batch(text(ROOM, "one"), text(ROOM, "two"), text(ROOM, "three"))

    assert await bot.router.handle_batch(replayed)
    assert await bot.router.handle_batch(replayed)

    assert bot.matrix.messages(ROOM) == ["got: one", "got: two", "got: three"]


async def test_a_bug_in_one_message_gets_a_reference_and_the_rest_are_still_served(bot: Bot) -> None:
    """A message whose handling breaks gets an apology with a reference, and the messages after it and in
    other rooms are still answered."""
    await patient_room(bot)
    await patient_room(bot, OTHER_ROOM, OTHER_PATIENT)
    broken = text(ROOM, "crash")

    done = await bot.router.handle_batch(
        batch(broken, text(ROOM, "after"), text(OTHER_ROOM, "elsewhere", OTHER_PATIENT))
    )

    assert done
    [(event_id, reference)] = bot.failures
    assert event_id == broken.event_id
    assert bot.matrix.messages(ROOM) == [f"Sorry, something went wrong (ref {reference})", "got: after"]
    assert bot.matrix.messages(OTHER_ROOM) == ["got: elsewhere"]


async def test_a_transient_failure_stops_the_room_and_the_batch_is_replayed_later(bot: Bot) -> None:
    """When the homeserver goes away mid-room the batch is reported for replay, nothing after the failed
    message is answered out of order, and another room is still answered."""
    await patient_room(bot)
    await patient_room(bot, OTHER_ROOM, OTHER_PATIENT)

    done = await bot.router.handle_batch(
        batch(text(ROOM, "offline"), text(ROOM, "after"), text(OTHER_ROOM, "elsewhere", OTHER_PATIENT))
    )

    assert not done
    assert bot.matrix.messages(ROOM) == []
    assert bot.failures == []
    assert bot.matrix.messages(OTHER_ROOM) == ["got: elsewhere"]


async def test_a_patient_chat_that_gained_a_member_has_none_of_its_messages_handled(bot: Bot) -> None:
    """Once a patient's chat is no longer private, nothing said in it is answered."""
    await patient_room(bot)
    bot.private.discard(ROOM)
    message = text(ROOM, "my NHS number is ...")

    assert await bot.router.handle_batch(batch(message))

    assert bot.matrix.sent == []
    assert not await bot.handled.seen(message.event_id)


async def test_a_room_joined_before_a_restart_but_never_recorded_is_taken_up(bot: Bot) -> None:
    """A chat the bot joined just before a crash (no record of it) is started for its other member when
    they write, so the patient is greeted and answered."""
    bot.matrix.add_room(ROOM, PATIENT)
    bot.private.add(ROOM)

    assert await bot.router.handle_batch(batch(text(ROOM, "hello?")))

    room = await bot.rooms.get(ROOM)
    assert room is not None and room.member == PATIENT
    assert bot.matrix.messages(ROOM) == ["Hello", "got: hello?"]
