"""Messages and redactions waiting to be sent, committed in the same transaction as the state change.

A handler never sends directly: it writes what to send here, commits, then the outbox is flushed. A crash
after the commit leaves the row, and the next flush sends it; a crash after sending but before the row is
deleted re-sends with the same transaction id, which the homeserver de-duplicates (for 24 hours).
Payloads are sealed: a reply can hold a patient's NHS number read back to them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock, iso
from bot.ids import EventID, RoomID
from bot.keyring import Sealer
from storage.sql import Connection, Database


def derive_txn_id(source: str, index: int) -> str:
    """A transaction id that is the same every time the same source (an event id) is answered."""
    digest = hashlib.sha256(f"{source}\x00{index}".encode()).hexdigest()[:32]
    return f"pb{digest}"


def derive_room_txn_id(source: str, room_id: RoomID, index: int) -> str:
    """A transaction id for one of several rooms told about the same source: each (source, room) pair has
    its own, since the outbox keeps one row per transaction id (one shared id reached only the first room)."""
    return derive_txn_id(f"{source}\x00{room_id}", index)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    room_id: RoomID
    txn_id: str
    kind: str  # 'message' | 'redaction' | 'redaction_own' (the bot's messages showing a private detail) | 'leave'
    payload: dict[str, Any] = field(repr=False)
    attempts: int


class Outbox:
    def __init__(self, database: Database, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock

    async def add(
        self, db: Connection, room_id: RoomID, txn_id: str, kind: str, payload: dict[str, Any]
    ) -> None:
        """Queue inside the caller's transaction. A repeated txn_id is ignored (already queued or sent)."""
        sealed = self._sealer.seal(json.dumps(payload).encode(), context=f"outbox:{txn_id}")
        await db.execute(
            "INSERT INTO outbox (room_id, txn_id, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (txn_id) DO NOTHING",
            (room_id, txn_id, kind, sealed, iso(self._clock.now())),
        )

    async def pending(self, room_id: RoomID | None = None) -> list[OutboxItem]:
        query = "SELECT id, room_id, txn_id, kind, payload, attempts FROM outbox"
        params: tuple[str, ...] = ()
        if room_id is not None:
            query += " WHERE room_id = ?"
            params = (room_id,)
        async with self._db.connection.execute(query + " ORDER BY id", params) as cursor:
            rows = await cursor.fetchall()
        return [
            OutboxItem(
                id=row["id"],
                room_id=RoomID(row["room_id"]),
                txn_id=row["txn_id"],
                kind=row["kind"],
                payload=json.loads(self._sealer.open(row["payload"], context=f"outbox:{row['txn_id']}")),
                attempts=row["attempts"],
            )
            for row in rows
        ]

    async def rooms_with_pending(self) -> list[RoomID]:
        async with self._db.connection.execute("SELECT DISTINCT room_id FROM outbox") as cursor:
            return [RoomID(row["room_id"]) for row in await cursor.fetchall()]

    async def done(self, item_id: int, *, private: tuple[RoomID, str, EventID] | None = None) -> None:
        """The item was sent. `private`: the sent message shows a private detail (room, tag, its event id),
        remembered in the same transaction so a later `redaction_own` item can remove it."""
        async with self._db.transaction() as db:
            await db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
            if private is not None:
                await db.execute(
                    "INSERT INTO private_sent (room_id, tag, event_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    private,
                )

    async def private_sent(self, room_id: RoomID, tag: str) -> list[EventID]:
        """The bot's own messages in the room that show `tag`'s detail and are not yet removed."""
        async with self._db.connection.execute(
            "SELECT event_id FROM private_sent WHERE room_id = ? AND tag = ? ORDER BY event_id",
            (room_id, tag),
        ) as cursor:
            return [EventID(row["event_id"]) for row in await cursor.fetchall()]

    async def forget_private(self, room_id: RoomID, event_id: EventID) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "DELETE FROM private_sent WHERE room_id = ? AND event_id = ?", (room_id, event_id)
            )

    async def discard_room(self, db: Connection, room_id: RoomID) -> None:
        """Drop everything still waiting for this room (inside the caller's transaction): the room's owner
        replaces it with what is true now."""
        await db.execute("DELETE FROM outbox WHERE room_id = ?", (room_id,))

    async def failed(self, item_id: int) -> None:
        async with self._db.transaction() as db:
            await db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
