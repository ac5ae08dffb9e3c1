"""Which events have been handled: every handler is idempotent on event id through this table."""

from __future__ import annotations

from bot.clock import Clock, iso
from bot.ids import EventID, RoomID
from storage.sql import Connection, Database


class HandledEvents:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def seen(self, event_id: EventID) -> bool:
        async with self._db.connection.execute(
            "SELECT 1 FROM handled_events WHERE event_id = ?", (event_id,)
        ) as cursor:
            return await cursor.fetchone() is not None

    async def mark(
        self, db: Connection, event_id: EventID, room_id: RoomID, outcome: str = "handled"
    ) -> None:
        """Record inside the caller's transaction, so the record and the work land together."""
        await db.execute(
            "INSERT INTO handled_events (event_id, room_id, outcome, handled_at) VALUES (?, ?, ?, ?)",
            (event_id, room_id, outcome, iso(self._clock.now())),
        )
