"""Which message in which clinician room announced which submission: the root of that submission's thread.

A command sent in the thread of an alert, or as a reply to it, acts on that submission without a reference;
the alert is edited as the submission's status changes. Room and event ids are random identifiers and the
reference is what clinicians see in the room anyway: nothing here is sealed.
"""

from __future__ import annotations

from bot.clock import Clock, iso
from bot.ids import EventID, RoomID
from storage.sql import Database


class AlertEvents:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def record(self, room_id: RoomID, event_id: EventID, reference: str) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "INSERT INTO alert_events (room_id, event_id, reference, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (room_id, event_id) DO NOTHING",
                (room_id, event_id, reference, iso(self._clock.now())),
            )

    async def reference_of(self, room_id: RoomID, event_id: EventID) -> str | None:
        async with self._db.connection.execute(
            "SELECT reference FROM alert_events WHERE room_id = ? AND event_id = ?", (room_id, event_id)
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def of_reference(self, reference: str) -> list[tuple[RoomID, EventID]]:
        async with self._db.connection.execute(
            "SELECT room_id, event_id FROM alert_events WHERE reference = ? ORDER BY created_at", (reference,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [(RoomID(row[0]), EventID(row[1])) for row in rows]
