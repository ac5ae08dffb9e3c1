"""The cross-signing identity (master key) pinned for each staff member, and any change waiting for an admin.

A staff member's master public key is pinned the first time the bot sees it. A different key later (an
identity reset, as a password reset in Element offers, or someone else who got hold of the password) is
recorded as `changed_key` and trusted for nothing until an admin accepts it; accepting pins it.
Public keys only: nothing secret is stored here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock, iso
from bot.ids import UserID
from storage.sql import Connection, Database


@dataclass(frozen=True)
class PinnedIdentity:
    master_key: str
    changed_key: str | None  # a different master key seen since, not yet accepted by an admin


class StaffIdentities:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def get(self, user_id: UserID) -> PinnedIdentity | None:
        async with self._db.connection.execute(
            "SELECT master_key, changed_key FROM staff_identities WHERE user_id = ?", (user_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else PinnedIdentity(str(row[0]), None if row[1] is None else str(row[1]))

    async def pin(self, user_id: UserID, master_key: str) -> None:
        """Pin a first-seen identity (a no-op if one is pinned already)."""
        async with self._db.transaction() as db:
            await db.execute(
                "INSERT INTO staff_identities (user_id, master_key, pinned_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, master_key, iso(self._clock.now())),
            )

    async def note_change(self, user_id: UserID, master_key: str) -> bool:
        """Record a master key that differs from the pinned one; True if it was not already recorded."""
        async with self._db.transaction() as db:
            cursor = await db.execute(
                "UPDATE staff_identities SET changed_key = ?, changed_at = ?"
                " WHERE user_id = ? AND master_key != ? AND changed_key IS DISTINCT FROM ?",
                (master_key, iso(self._clock.now()), user_id, master_key, master_key),
            )
            return cursor.rowcount > 0

    async def accept(self, db: Connection, user_id: UserID, master_key: str) -> None:
        """Pin the changed identity an admin has accepted, inside the caller's transaction."""
        await db.execute(
            "UPDATE staff_identities SET master_key = ?, changed_key = NULL, changed_at = NULL, pinned_at = ?"
            " WHERE user_id = ? AND changed_key = ?",
            (master_key, iso(self._clock.now()), user_id, master_key),
        )
