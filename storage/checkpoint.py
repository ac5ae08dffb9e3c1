"""The bot's own sync checkpoint, saved only after a whole batch has been handled and committed.

nio would save its sync token before running callbacks (at-most-once: a crash loses the event). Ours is
written last, so a crash replays the batch instead, and handlers are idempotent on event id.
"""

from __future__ import annotations

from bot.clock import Clock, iso
from storage.sql import Connection, Database


class SyncCheckpoint:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def load(self) -> str | None:
        async with self._db.connection.execute("SELECT next_batch FROM sync_checkpoint") as cursor:
            row = await cursor.fetchone()
        return str(row["next_batch"]) if row else None

    async def save(self, next_batch: str) -> None:
        async with self._db.transaction() as db:
            await self.save_in(db, next_batch)

    async def save_in(self, db: Connection, next_batch: str) -> None:
        """Save within a caller's transaction (with what else must be committed together)."""
        await db.execute(
            "INSERT INTO sync_checkpoint (id, next_batch, saved_at) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET next_batch = excluded.next_batch, saved_at = excluded.saved_at",
            (next_batch, iso(self._clock.now())),
        )
