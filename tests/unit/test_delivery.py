"""Delivery on its own: the outbox is sent room by room, in order, and nothing is lost when sending fails.

The outbox is the real one in a real SQLite database; Matrix is the in-memory fake behind the port
(tests/support/fake_matrix.py), told when the homeserver is away or refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.faults import FaultInjector
from bot.ids import EventID, RoomID, UserID
from bot.matrix.port import ForbiddenError, MatrixError, TransientMatrixError
from handlers.delivery import MAX_ATTEMPTS, PRIVATE, REMOVAL_REQUIRED, Delivery
from storage.outbox import Outbox, derive_txn_id
from tests.support.fake_matrix import FakeMatrix
from tests.support.real_storage import Storage, StorageTemplate, real_storage, unscraped_metrics

PATIENT = UserID("@pat:example.org")
ROOM = RoomID("!chat:example.org")
OTHER_ROOM = RoomID("!other:example.org")


@dataclass
class Sending:
    matrix: FakeMatrix
    outbox: Outbox
    delivery: Delivery
    storage: Storage
    queued: int = 0

    async def queue(self, room_id: RoomID, kind: str, payload: dict[str, Any]) -> None:
        self.queued += 1
        async with self.storage.database.transaction() as db:
            await self.outbox.add(db, room_id, derive_txn_id(f"$source{self.queued}", 0), kind, payload)

    async def say(self, room_id: RoomID, *texts: str) -> None:
        for words in texts:
            await self.queue(room_id, "message", {"text": words})


@pytest.fixture
async def sending(tmp_path: Path, migrated_database: StorageTemplate) -> AsyncIterator[Sending]:
    async with real_storage(tmp_path / "data", template=migrated_database) as storage:
        matrix = FakeMatrix()
        matrix.add_room(ROOM, PATIENT)
        matrix.add_room(OTHER_ROOM, PATIENT)
        outbox = Outbox(storage.database, storage.sealer, storage.clock)
        delivery = Delivery(outbox, matrix, FaultInjector(frozenset(), enabled=False), unscraped_metrics())
        yield Sending(matrix, outbox, delivery, storage)


async def test_queued_replies_are_sent_in_order_and_leave_the_outbox(sending: Sending) -> None:
    """Every room's queued replies reach it in the order they were queued, and are sent only once."""
    await sending.say(ROOM, "first", "second")
    await sending.say(OTHER_ROOM, "elsewhere")

    await sending.delivery.flush_all()
    await sending.delivery.flush_all()

    assert sending.matrix.messages(ROOM) == ["first", "second"]
    assert sending.matrix.messages(OTHER_ROOM) == ["elsewhere"]
    assert await sending.outbox.pending() == []


async def test_a_reply_to_a_room_not_synced_yet_waits_until_the_room_is_known(sending: Sending) -> None:
    """A reply for a chat the bot joined a moment ago stays queued until the room shows up, then is sent."""
    new_room = RoomID("!new:example.org")
    await sending.say(new_room, "Hello")

    await sending.delivery.flush(new_room)
    assert sending.matrix.sent == []

    sending.matrix.add_room(new_room, PATIENT)
    await sending.delivery.flush(new_room)
    assert sending.matrix.messages(new_room) == ["Hello"]


async def test_when_the_homeserver_is_away_replies_stay_queued_and_go_later_in_order(
    sending: Sending,
) -> None:
    """If the homeserver cannot be reached, nothing is lost or counted as a failure, and the replies are
    sent in their order on the next flush."""
    await sending.say(ROOM, "first", "second")
    sending.matrix.fail("send_message", TransientMatrixError("connection refused"))

    await sending.delivery.flush(ROOM)
    assert sending.matrix.sent == []
    assert [item.attempts for item in await sending.outbox.pending(ROOM)] == [0, 0]

    await sending.delivery.flush(ROOM)
    assert sending.matrix.messages(ROOM) == ["first", "second"]


async def test_a_refused_reply_is_retried_then_dropped_so_the_room_is_not_blocked(sending: Sending) -> None:
    """A reply the homeserver keeps refusing is tried a few times, then dropped, and the replies after it
    are sent; another room is served meanwhile."""
    await sending.say(ROOM, "refused", "after")
    await sending.say(OTHER_ROOM, "elsewhere")
    sending.matrix.fail("send_message", MatrixError("M_TOO_LARGE"), room_id=ROOM, times=MAX_ATTEMPTS)

    for _ in range(MAX_ATTEMPTS - 1):
        await sending.delivery.flush_all()
        assert sending.matrix.messages(ROOM) == []
    assert sending.matrix.messages(OTHER_ROOM) == ["elsewhere"]
    [waiting, _] = await sending.outbox.pending(ROOM)
    assert waiting.attempts == MAX_ATTEMPTS - 1

    await sending.delivery.flush_all()
    assert sending.matrix.messages(ROOM) == ["after"]
    assert await sending.outbox.pending() == []


async def test_a_message_showing_a_private_detail_is_removed_when_asked(sending: Sending) -> None:
    """The bot's message that read back an NHS number is redacted later by its tag, without knowing its
    event id in advance, and only once however often removal is asked for."""
    await sending.queue(ROOM, "message", {"text": "Is 999 123 4567 right?", PRIVATE: "nhs"})
    await sending.delivery.flush(ROOM)
    [shown] = sending.matrix.sent

    for _ in range(2):
        await sending.queue(ROOM, "redaction_own", {"reason": "private detail", PRIVATE: "nhs"})
        await sending.delivery.flush(ROOM)

    [removal] = sending.matrix.redactions
    assert (removal.room_id, removal.event_id) == (ROOM, shown.event_id)
    assert await sending.outbox.pending() == []


async def test_a_forbidden_required_removal_stops_the_room_and_says_nothing_after_it(
    sending: Sending,
) -> None:
    """When the bot may not remove a patient's message its chat depends on, the room's owner is told, and
    no later reply (one saying the message was removed) is sent."""
    told: list[tuple[RoomID, int]] = []
    sending.delivery.when_removal_refused(lambda room_id, item_id: told.append((room_id, item_id)))
    payload = {"event_id": "$patients-photo", "reason": "photo taken in", REMOVAL_REQUIRED: True}
    await sending.queue(ROOM, "redaction", payload)
    await sending.say(ROOM, "I removed your photo from this chat.")
    sending.matrix.fail("redact", ForbiddenError("M_FORBIDDEN"))

    await sending.delivery.flush(ROOM)

    [(room_id, item_id)] = told
    assert room_id == ROOM
    assert sending.matrix.sent == []
    [removal, reply] = await sending.outbox.pending(ROOM)  # both stay, for the room's owner to re-plan
    assert (removal.id, removal.kind, reply.kind) == (item_id, "redaction", "message")


async def test_the_bot_leaves_a_room_when_its_outbox_says_so(sending: Sending) -> None:
    """A queued leave takes the bot out of the room after the goodbye before it is sent."""
    await sending.say(ROOM, "Goodbye")
    await sending.queue(ROOM, "leave", {})

    await sending.delivery.flush(ROOM)

    assert sending.matrix.messages(ROOM) == ["Goodbye"]
    assert sending.matrix.left == [ROOM]
    assert not sending.matrix.room_known(ROOM)


async def test_a_redaction_of_a_patients_message_is_sent_with_its_reason(sending: Sending) -> None:
    """A queued removal of a patient's message reaches the homeserver with the reason the patient sees."""
    await sending.queue(ROOM, "redaction", {"event_id": "$nhs-number", "reason": "kept private"})

    await sending.delivery.flush(ROOM)

    [removal] = sending.matrix.redactions
    assert (removal.event_id, removal.reason) == (EventID("$nhs-number"), "kept private")
