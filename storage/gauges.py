"""The counts behind the scrape-time gauges (`/metrics`): one query each, read when scraped, never stored.

Only what the database holds: the states and statuses that exist in a row. Which states are listed even at
zero is for the caller (`bot.status`), which knows the conversation's states.
"""

from __future__ import annotations

from datetime import datetime

from bot.clock import iso
from storage.sql import Database


class Gauges:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def conversations_by_state(self) -> dict[str, float]:
        return await self._counts("SELECT state, COUNT(*) FROM conversations GROUP BY state")

    async def submissions_by_status(self) -> dict[str, float]:
        """Submissions not deleted, by status."""
        return await self._counts(
            "SELECT status, COUNT(*) FROM submissions WHERE status != 'deleted' GROUP BY status"
        )

    async def purge_backlog(self, now: datetime) -> float:
        """Uploads not yet deleted from the homeserver, and posted images past their viewing window."""
        return await self._count(
            "SELECT (SELECT COUNT(*) FROM media_ledger WHERE status = 'pending')"
            " + (SELECT COUNT(*) FROM postings WHERE status != 'retracted' AND expires_at <= ?)",
            iso(now),
        )

    async def outbox_backlog(self) -> float:
        return await self._count("SELECT COUNT(*) FROM outbox")

    async def _counts(self, sql: str) -> dict[str, float]:
        async with self._db.connection.execute(sql) as cursor:
            rows = await cursor.fetchall()
        return {str(row[0]): float(row[1]) for row in rows}

    async def _count(self, sql: str, *params: str) -> float:
        async with self._db.connection.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row is not None else 0.0
