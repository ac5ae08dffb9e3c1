"""Sends what the outbox holds, room by room, in order; keeps it when the homeserver is away.

A room's queue stops at the first item that cannot be sent yet (a room the bot joined a moment ago is
unknown until the next sync; the homeserver may be down), so replies never overtake each other. An item
the homeserver refuses outright, or whose sending fails unexpectedly (logged with a reference), is retried
a few times and then dropped with a logged warning, so one broken room never blocks the others and no
error leaves the flush to end the sync loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from bot.errors import TransientError, error_reference
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID
from bot.matrix.gateway import ForbiddenError, MatrixError, MatrixGateway
from bot.matrix.message_content import content_of
from bot.metrics import BotMetrics
from storage.alert_events import AlertEvents
from storage.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
ALERT_OF = "alert_of"  # a message payload's field: this alert announces that submission (its reference)
PHOTO_CONFIRMATION = "confirms_photo"  # a message payload's flag: this reply tells a patient a photo is safe
# A redaction payload's flag: the patient's chat cannot be kept safe if this removal is forbidden.
REMOVAL_REQUIRED = "removal_required"


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        gateway: MatrixGateway,
        faults: FaultInjector,
        metrics: BotMetrics,
        alerts: AlertEvents | None = None,
    ) -> None:
        self._alerts = alerts  # where a sent alert's event id is kept: the root of the submission's thread
        self._outbox = outbox
        self._gateway = gateway
        self._faults = faults
        self._metrics = metrics
        self._locks: defaultdict[RoomID, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._removal_refused: Callable[[RoomID, int], None] | None = None

    def when_removal_refused(self, callback: Callable[[RoomID, int], None]) -> None:
        """Who is told when a required removal is forbidden; until they re-plan the room, its queue stops
        there, so nothing after it (a reply saying the message was removed) is ever sent."""
        self._removal_refused = callback

    async def flush(self, room_id: RoomID) -> None:
        async with self._locks[room_id]:
            for item in await self._outbox.pending(room_id):
                if not self._gateway.room_known(room_id):
                    return
                if item.payload.get(PHOTO_CONFIRMATION):
                    self._faults.hit("before_confirmation_reply")
                await self._faults.pause("before_send")  # a test takes the homeserver away here
                try:
                    await self._send(item)
                except TransientError:
                    log.info("the homeserver is not reachable; %s will be retried", item.kind)
                    return
                except Exception as error:  # refused, or a bug: counted, never out of the queue
                    if not isinstance(error, MatrixError):
                        log.exception("sending a %s failed (ref %s)", item.kind, error_reference())
                    elif self._required_removal_forbidden(item, error):
                        return
                    await self._outbox.failed(item.id)
                    if item.attempts + 1 >= MAX_ATTEMPTS:
                        log.warning("dropping a %s after %d refusals: %s", item.kind, MAX_ATTEMPTS, error)
                        await self._outbox.done(item.id)
                        continue
                    return
                self._faults.hit("after_send_before_outbox_done")
                await self._outbox.done(item.id)

    def _required_removal_forbidden(self, item: OutboxItem, error: MatrixError) -> bool:
        """A removal the patient's chat depends on was forbidden: the room's owner re-plans it (the item
        stays until then, so a restart asks again); no retries, no "removed" said after it."""
        callback = self._removal_refused
        if (
            not isinstance(error, ForbiddenError)
            or not item.payload.get(REMOVAL_REQUIRED)
            or callback is None
        ):
            return False
        log.warning("the bot may not remove a patient's message: the chat will be closed")
        callback(item.room_id, item.id)
        return True

    async def flush_all(self) -> None:
        rooms = await self._outbox.rooms_with_pending()
        await asyncio.gather(*(self.flush(room_id) for room_id in rooms))

    async def _send(self, item: OutboxItem) -> None:
        if item.kind == "message":
            # `plain`: the bot's own fixed words for a chat it is leaving because it cannot encrypt it.
            unencrypted = bool(item.payload.get("plain"))
            event_id = await self._gateway.send_message(
                item.room_id, content_of(item.payload), item.txn_id, allow_unencrypted=unencrypted
            )
            reference = item.payload.get(ALERT_OF)
            if self._alerts is not None and isinstance(reference, str):
                # Before the item is done: a crash re-sends it under the same transaction id, the homeserver
                # answers with the same event id, and it is recorded then.
                await self._alerts.record(item.room_id, event_id, reference)
            self._metrics.replies_sent_total.inc()
        elif item.kind == "leave":
            await self._gateway.leave(item.room_id)
        elif item.kind == "redaction":
            await self._gateway.redact(
                item.room_id, EventID(str(item.payload["event_id"])), str(item.payload["reason"]), item.txn_id
            )
        else:
            raise MatrixError(f"unknown outbox item kind {item.kind!r}")
