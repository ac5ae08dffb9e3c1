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
import time
from collections import defaultdict
from collections.abc import Callable

from bot.errors import TransientError, error_reference
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID
from bot.matrix.message_content import content_of
from bot.matrix.port import ForbiddenError, MatrixError, RoomPort
from bot.metrics import BotMetrics
from storage.alert_events import AlertEvents
from storage.outbox import Outbox, OutboxItem, derive_txn_id

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
ALERT_OF = "alert_of"  # a message payload's field: this alert announces that submission (its reference)
PHOTO_CONFIRMATION = "confirms_photo"  # a message payload's flag: this reply tells a patient a photo is safe
# A redaction payload's flag: the patient's chat cannot be kept safe if this removal is forbidden.
REMOVAL_REQUIRED = "removal_required"
NOTIFY = "notify"  # a message payload's flag: send as m.text, which default push rules notify for
# A message payload's tag: the message shows a private detail (an NHS number read back); its event id is
# remembered so a later 'redaction_own' item with the same tag removes it.
PRIVATE = "private"
# A message payload's flag: the first message in a new chat (the greeting). It waits until the bot knows the
# patient's devices, so it is encrypted for them (matrix-notes #6, #19), checked again every
# FIRST_CONTACT_RETRY seconds for at most FIRST_CONTACT_MAX_WAIT, then sent anyway.
FIRST_CONTACT = "first_contact"
FIRST_CONTACT_RETRY = 0.5
FIRST_CONTACT_MAX_WAIT = 10.0


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        gateway: RoomPort,
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
        self._first_seen: dict[int, float] = {}  # outbox item id -> when a first contact began waiting
        self._retries: dict[RoomID, asyncio.Task[None]] = {}

    def when_removal_refused(self, callback: Callable[[RoomID, int], None]) -> None:
        """Who is told when a required removal is forbidden; until they re-plan the room, its queue stops
        there, so nothing after it (a reply saying the message was removed) is ever sent."""
        self._removal_refused = callback

    async def flush(self, room_id: RoomID) -> None:
        async with self._locks[room_id]:
            for item in await self._outbox.pending(room_id):
                if not self._gateway.room_known(room_id):
                    return
                if item.payload.get(FIRST_CONTACT) and not await self._ready_for_first_contact(item):
                    self._retry_soon(room_id)
                    return
                if item.payload.get(PHOTO_CONFIRMATION):
                    self._faults.hit("before_confirmation_reply")
                await self._faults.pause("before_send")  # a test takes the homeserver away here
                try:
                    sent = await self._send(item)
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
                await self._outbox.done(item.id, private=sent)

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

    async def _ready_for_first_contact(self, item: OutboxItem) -> bool:
        if await self._gateway.member_keys_known(item.room_id):
            self._first_seen.pop(item.id, None)
            return True
        began = self._first_seen.setdefault(item.id, time.monotonic())
        if time.monotonic() - began < FIRST_CONTACT_MAX_WAIT:
            return False
        if began != float("-inf"):  # warned once; the entry stays, so a failed send does not wait again
            log.warning(
                "sending a greeting before the patient's device keys were known (waited %.0f s)",
                FIRST_CONTACT_MAX_WAIT,
            )
            self._first_seen[item.id] = float("-inf")
        return True

    def _retry_soon(self, room_id: RoomID) -> None:
        """Flush the room again shortly, without holding up the sync loop."""
        if room_id in self._retries and not self._retries[room_id].done():
            return

        async def later() -> None:
            await asyncio.sleep(FIRST_CONTACT_RETRY)
            try:
                await self.flush(room_id)
            except Exception:  # noqa: BLE001 (a failed retry is retried by the next flush; never crash the loop)
                log.info("a delayed greeting could not be sent yet; it stays in the outbox")

        self._retries[room_id] = asyncio.create_task(later())

    async def flush_all(self) -> None:
        rooms = await self._outbox.rooms_with_pending()
        await asyncio.gather(*(self.flush(room_id) for room_id in rooms))

    async def _send(self, item: OutboxItem) -> tuple[RoomID, str, EventID] | None:
        """Send one item; for a message showing a private detail, what to remember of it."""
        if item.kind == "message":
            # `plain`: the bot's own fixed words for a chat it is leaving because it cannot encrypt it.
            # `plain`: the bot's own fixed words for a chat it is leaving because it cannot encrypt it;
            # NOTIFY: a patient-facing question or outcome sent as m.text (see bot.matrix.message_content).
            unencrypted = bool(item.payload.get("plain"))
            payload = item.payload | ({"msgtype": "m.text"} if item.payload.get(NOTIFY) else {})
            event_id = await self._gateway.send_message(
                item.room_id, content_of(payload), item.txn_id, allow_unencrypted=unencrypted
            )
            reference = item.payload.get(ALERT_OF)
            if self._alerts is not None and isinstance(reference, str):
                # Before the item is done: a crash re-sends it under the same transaction id, the homeserver
                # answers with the same event id, and it is recorded then.
                await self._alerts.record(item.room_id, event_id, reference)
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
