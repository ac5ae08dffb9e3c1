"""Destructive commands waiting for their confirmation: one per clinician per room, for a minute.

`!delete` (and `!describe` of a view-then-delete submission) is not carried out at once: the command, as it
was typed (with the reference a thread supplied), is kept here, sealed, until the same clinician replies
"yes" or types the same command again within `CONFIRM_WITHIN`. Anything else leaves it to lapse.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.clock import iso
from bot.ids import RoomID, UserID
from bot.keyring import Sealer
from storage.sql import Connection, Database

CONFIRM_WITHIN = timedelta(minutes=1)


class PendingConfirmations:
    def __init__(self, database: Database, sealer: Sealer) -> None:
        self._db = database
        self._sealer = sealer

    @staticmethod
    def _key(room_id: RoomID, sender: UserID) -> str:
        return f"{room_id}|{sender}"

    async def ask(self, db: Connection, room_id: RoomID, sender: UserID, command: str, now: datetime) -> None:
        """Keep `command` (the full text, '!delete GP-... reason') until confirmed; replaces an older one."""
        key = self._key(room_id, sender)
        sealed = self._sealer.seal(command.encode("utf-8"), context=f"pending-command:{key}")
        await db.execute(
            "INSERT INTO pending_commands (key, command, asked_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET command = excluded.command, asked_at = excluded.asked_at",
            (key, sealed, iso(now)),
        )

    async def waiting(self, room_id: RoomID, sender: UserID, now: datetime) -> str | None:
        """The command this clinician was asked to confirm in this room, if asked within the last minute."""
        key = self._key(room_id, sender)
        async with self._db.connection.execute(
            "SELECT command, asked_at FROM pending_commands WHERE key = ?", (key,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or now - datetime.fromisoformat(row["asked_at"]) > CONFIRM_WITHIN:
            return None
        return self._sealer.open(row["command"], context=f"pending-command:{key}").decode("utf-8")

    async def done(self, db: Connection, room_id: RoomID, sender: UserID) -> None:
        await db.execute("DELETE FROM pending_commands WHERE key = ?", (self._key(room_id, sender),))
