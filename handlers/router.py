"""Routes each sync batch to the right handler, one room at a time, never letting one event stop the rest.

- Invites: joined only from users on the practice's allowed homeservers, and a patient's chat only if it
  is private and can be made safe (`handlers.room_guard`); the greeting is queued in the outbox and sent
  once the room is known (after the next sync), so the sync loop never waits on it. An invite from any
  other server is refused with one explanation (`handlers.refusals`).
- A patient chat that gained a member is closed before any event of its batch is handled.
- Events of one room are handled in order under that room's lock; rooms are handled concurrently.
- Each event is handled at most once (the handled-events table) and at least once (the sync checkpoint
  advances only when the whole batch is committed).
- The error boundary: a transient failure (homeserver away, disk full) aborts the room's batch and the
  batch is replayed; anything unexpected is logged with a reference and the sender gets a kind reply
  carrying it, and the bot goes on serving everyone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.errors import TransientError, error_reference
from bot.ids import RoomID, UserID, server_name
from bot.matrix.events import Incoming, Invite, UndecryptableMessage
from bot.matrix.port import RoomPort, SyncBatch
from bot.metrics import BotMetrics
from handlers.delivery import Delivery
from handlers.room_locks import RoomLocks
from storage.handled_events import HandledEvents
from storage.rooms import Room, RoomKind, RoomRepository

log = logging.getLogger(__name__)

EventHandler = Callable[[Incoming], Awaitable[None]]
FailureReply = Callable[[Incoming, str], Awaitable[None]]


@dataclass(frozen=True)
class RoomHandlers:
    """What to do with an event in a room of one kind, and how to tell its sender something broke."""

    handle: EventHandler
    failed: FailureReply


class Router:
    def __init__(
        self,
        *,
        gateway: RoomPort,
        rooms: RoomRepository,
        handled: HandledEvents,
        delivery: Delivery,
        locks: RoomLocks,
        allowed_servers: frozenset[str],
        staff_kind: Callable[[RoomID], RoomKind | None],
        start_patient: Callable[[RoomID, UserID], Awaitable[None]],
        refuse_invite: Callable[[Invite], Awaitable[None]],
        handlers: dict[RoomKind, RoomHandlers],
        metrics: BotMetrics,
        admit_patient_room: Callable[[RoomID, UserID], Awaitable[bool]],
        still_private: Callable[[Room, list[Incoming]], Awaitable[bool]],
    ) -> None:
        self._gateway = gateway
        self._rooms = rooms
        self._handled = handled
        self._delivery = delivery
        self._locks = locks
        self._allowed_servers = allowed_servers
        self._staff_kind = staff_kind
        self._start_patient = start_patient
        self._refuse_invite = refuse_invite
        self._handlers = handlers
        self._metrics = metrics
        self._admit_patient_room = admit_patient_room  # a just-joined chat is private and can be made safe
        self._still_private = still_private  # a patient chat gained no member (checked before its events)

    async def handle_batch(self, batch: SyncBatch) -> bool:
        """Handle a batch; False if some of it must be replayed later (nothing was lost)."""
        results = await asyncio.gather(
            *(self._guard_invite(invite) for invite in batch.invites),
            *(self._guard_room(room_id, events) for room_id, events in batch.timelines.items()),
        )
        return all(results)

    async def _guard_room(self, room_id: RoomID, events: list[Incoming]) -> bool:
        """One room's failure never ends the sync loop: transient ones are replayed, others logged."""
        try:
            return await self._handle_room(room_id, events)
        except TransientError:
            return False
        except Exception:
            log.exception("a room's events could not be handled (ref %s)", error_reference())
            return True

    async def _guard_invite(self, invite: Invite) -> bool:
        try:
            await self._on_invite(invite)
        except TransientError:
            return False
        except Exception:
            log.exception("an invite could not be handled (ref %s)", error_reference())
        return True

    async def _on_invite(self, invite: Invite) -> None:
        if server_name(invite.inviter) not in self._allowed_servers:
            await self._refuse_invite(invite)  # told why and how else to reach the practice, never silently
            return
        await self._gateway.join(invite.room_id)
        staff_kind = self._staff_kind(invite.room_id)
        if staff_kind is not None:
            # A configured clinician or admin room: no patient conversation, never a greeting.
            async with self._rooms.transaction() as db:
                await self._rooms.add(db, invite.room_id, staff_kind, None)
            return
        if not await self._admit_patient_room(invite.room_id, invite.inviter):
            return  # refused: the patient is told why and the bot leaves
        await self._start_patient(invite.room_id, invite.inviter)

    async def _handle_room(self, room_id: RoomID, events: list[Incoming]) -> bool:
        async with self._locks(room_id):
            # A staff room is whatever the configuration in force says (an admin may change it at run time);
            # a room that was a staff room and no longer is gets no handler at all.
            kind = self._staff_kind(room_id)
            if kind is None:
                room = await self._rooms.get(room_id)
                if room is None:
                    room = await self._adopt(room_id, events)
                if room is None or room.kind is not RoomKind.PATIENT:
                    return True
                # Before anything of this batch is accepted: a chat that gained a member is closed now (and
                # a closed chat's events are never handled).
                if not await self._still_private(room, events):
                    return True
                kind = room.kind
            handlers = self._handlers.get(kind)
            if handlers is None:
                return True
            for event in events:
                if not await self._handle_one(handlers, event):
                    return False
        try:
            await self._delivery.flush(room_id)
        except Exception:
            log.exception("sending a room's replies failed (ref %s)", error_reference())
        return True

    async def _adopt(self, room_id: RoomID, events: list[Incoming]) -> Room | None:
        """A room we joined but never recorded (a crash between join and commit): start it now."""
        if self._staff_kind(room_id) is not None:
            return None
        others = self._gateway.room_members(room_id) - {self._gateway.user_id}
        senders = [event.sender for event in events if event.sender != self._gateway.user_id]
        patient = next(iter(sorted(others)), None) or next(iter(senders), None)
        if patient is None or server_name(patient) not in self._allowed_servers:
            return None
        if not await self._admit_patient_room(room_id, patient):
            return None
        log.info("resuming a patient room that was joined before a restart")
        await self._start_patient(room_id, patient)
        return await self._rooms.get(room_id)

    async def _handle_one(self, handlers: RoomHandlers, event: Incoming) -> bool:
        if await self._handled.seen(event.event_id):
            return True
        if isinstance(event, UndecryptableMessage):
            self._metrics.decrypt_failures_total.inc()
        with self._metrics.event_handling_seconds.time():
            try:
                await handlers.handle(event)
            except TransientError:
                log.info("a transient failure; the event will be handled again after the next sync")
                return False
            except Exception:  # a bug, or the homeserver refusing outright (MatrixError): same answer
                reference = error_reference()
                log.exception("handling an event failed (ref %s)", reference)
                await handlers.failed(event, reference)
        return True
