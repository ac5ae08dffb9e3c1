"""Sends what the outbox holds, room by room, in order; keeps it when the homeserver is away.

A room's queue stops at the first item that cannot be sent yet (a room the bot joined a moment ago is
unknown until the next sync; the homeserver may be down), so replies never overtake each other. An item
the homeserver refuses outright is retried a few times and then dropped with a logged warning, so one
broken room never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from bot.errors import TransientError
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID
from bot.matrix.gateway import MatrixError, MatrixGateway
from bot.metrics import BotMetrics
from storage.outbox import Outbox, OutboxItem, derive_txn_id

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
PHOTO_CONFIRMATION = "confirms_photo"  # a message payload's flag: this reply tells a patient a photo is safe
NOTIFY = "notify"  # a message payload's flag: send as m.text, which default push rules notify for
# A message payload's tag: the message shows a private detail (an NHS number read back); its event id is
# remembered so a later 'redaction_own' item with the same tag removes it.
PRIVATE = "private"


class Delivery:
    def __init__(
        self, outbox: Outbox, gateway: MatrixGateway, faults: FaultInjector, metrics: BotMetrics
    ) -> None:
        self._outbox = outbox
        self._gateway = gateway
        self._faults = faults
        self._metrics = metrics
        self._locks: defaultdict[RoomID, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def flush(self, room_id: RoomID) -> None:
        async with self._locks[room_id]:
            for item in await self._outbox.pending(room_id):
                if not self._gateway.room_known(room_id):
                    return
                if item.payload.get(PHOTO_CONFIRMATION):
                    self._faults.hit("before_confirmation_reply")
                await self._faults.pause("before_send")  # a test takes the homeserver away here
                try:
                    sent = await self._send(item)
                except TransientError:
                    log.info("the homeserver is not reachable; %s will be retried", item.kind)
                    return
                except MatrixError as error:
                    await self._outbox.failed(item.id)
                    if item.attempts + 1 >= MAX_ATTEMPTS:
                        log.warning("dropping a %s after %d refusals: %s", item.kind, MAX_ATTEMPTS, error)
                        await self._outbox.done(item.id)
                        continue
                    return
                self._faults.hit("after_send_before_outbox_done")
                await self._outbox.done(item.id, private=sent)

    async def flush_all(self) -> None:
        rooms = await self._outbox.rooms_with_pending()
        await asyncio.gather(*(self.flush(room_id) for room_id in rooms))

    async def _send(self, item: OutboxItem) -> tuple[RoomID, str, EventID] | None:
        """Send one item; for a message showing a private detail, what to remember of it."""
        if item.kind == "message":
            notify = bool(item.payload.get(NOTIFY))
            text = str(item.payload["text"])
            event_id = await self._gateway.send_text(item.room_id, text, item.txn_id, notify=notify)
            self._metrics.replies_sent_total.inc()
            private = item.payload.get(PRIVATE)
            return (item.room_id, str(private), event_id) if private else None
        if item.kind == "redaction_own":
            reason = str(item.payload["reason"])
            for event_id in await self._outbox.private_sent(item.room_id, str(item.payload[PRIVATE])):
                txn_id = derive_txn_id(f"{item.txn_id}:{event_id}", 0)
                await self._gateway.redact(item.room_id, event_id, reason, txn_id)
                await self._outbox.forget_private(item.room_id, event_id)
            return None
        if item.kind == "leave":
            await self._gateway.leave(item.room_id)
            return None
        if item.kind == "redaction":
            await self._gateway.redact(
                item.room_id, EventID(str(item.payload["event_id"])), str(item.payload["reason"]), item.txn_id
            )
            return None
        raise MatrixError(f"unknown outbox item kind {item.kind!r}")
