"""Invitations refused because the patient's homeserver is not allowed: a count per server, and when that
server was last told why (so at most one explanation per server per window)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.clock import iso
from storage.sql import Connection


class RefusedInvites:
    async def record(self, db: Connection, server: str, now: datetime, window: timedelta) -> tuple[int, bool]:
        """Count one refusal from `server` in the caller's transaction: (refusals from it so far, whether to
        explain this time: only if it was not told within `window`)."""
        async with db.execute(
            "SELECT refusals, last_told_at FROM refused_invites WHERE server = ?", (server,)
        ) as cursor:
            row = await cursor.fetchone()
        refusals = (int(row["refusals"]) if row else 0) + 1
        last_told = datetime.fromisoformat(str(row["last_told_at"])) if row and row["last_told_at"] else None
        tell = last_told is None or not last_told <= now < last_told + window
        await db.execute(
            "INSERT INTO refused_invites (server, refusals, last_told_at) VALUES (?, ?, ?)"
            " ON CONFLICT (server) DO UPDATE SET refusals = excluded.refusals,"
            " last_told_at = COALESCE(?, refused_invites.last_told_at)",
            (server, refusals, iso(now) if tell else None, iso(now) if tell else None),
        )
        return refusals, tell
