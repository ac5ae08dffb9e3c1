"""A patient whose homeserver the practice does not allow is told why, once, and never silently declined.

Join, one message (why, which server to make an account on, and how else to reach the practice), leave.
At most one explanation per server per `REFUSAL_WINDOW`: a second attempt from that server within it is
declined without a word, so nobody can make the bot message a server in a loop. Every refusal is counted,
and each explanation is reported to the admin room with the count so far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.clock import Clock
from bot.ids import server_name
from bot.matrix.events import Invite
from bot.matrix.port import RoomPort
from handlers.delivery import NOTIFY, Delivery
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.refused_invites import RefusedInvites
from storage.rooms import RoomKind, RoomRepository
from storage.sql import Database

log = logging.getLogger(__name__)

REFUSAL_WINDOW = timedelta(hours=1)


@dataclass
class InviteRefusals:
    database: Database
    rooms: RoomRepository
    refused: RefusedInvites
    outbox: Outbox
    delivery: Delivery
    gateway: RoomPort
    config: LiveConfig
    clock: Clock
    allowed_servers: frozenset[str]

    async def refuse(self, invite: Invite) -> None:
        server = server_name(invite.inviter)
        now = self.clock.now()
        async with self.database.transaction() as db:
            count, tell = await self.refused.record(db, server, now, REFUSAL_WINDOW)
        if not tell:
            log.info(
                "declined an invite from a homeserver the practice does not allow (told within the hour)"
            )
            await self.gateway.leave(invite.room_id)
            return
        await self.gateway.join(invite.room_id)
        current = self.config.current
        texts = current.patient_texts()
        servers = " or ".join(sorted(self.allowed_servers))
        text = texts.fill(texts.server_refused, practice=current.practice_name, servers=servers)
        source = f"refused:{invite.room_id}"
        async with self.database.transaction() as db:
            # Recorded as a refused room: its member's devices get the message's key, and nothing else is
            # ever handled there.
            await self.rooms.add(db, invite.room_id, RoomKind.REFUSED, invite.inviter)
            await self.outbox.add(
                db, invite.room_id, derive_txn_id(source, 0), "message", {"text": text, NOTIFY: True}
            )
            await self.outbox.add(db, invite.room_id, derive_txn_id(source, 1), "leave", {})
            if current.admin_room is not None:
                notice = (
                    f"Refused a chat from an account on **{server}**: the practice allows only {servers}. "
                    f"The person was told how else to reach the practice. Chats refused so far: **{count}**."
                )
                await self.outbox.add(
                    db, current.admin_room, derive_txn_id(source, 2), "message", {"text": notice}
                )
        log.info("told a patient on a homeserver the practice does not allow how else to reach it")
        await self.delivery.flush(invite.room_id)
        if current.admin_room is not None:
            await self.delivery.flush(current.admin_room)
