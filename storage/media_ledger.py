"""Every upload a patient's photo message pointed at, and whether it was deleted from the homeserver.

Entries are written in the same transaction as the decision to delete; the purge runs after the commit
and is retried from here until the homeserver confirms (or says it is already gone), so a purge that
failed once is never forgotten. The URLs are sealed: with the attachment key (which we never keep) they
would lead to the photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiosqlite

from bot.clock import Clock, iso
from bot.ids import EventID, RoomID
from bot.keyring import Keyring, Sealer
from storage.database import Database

PENDING = "pending"


@dataclass(frozen=True)
class MediaEntry:
    id: int
    room_id: RoomID
    event_id: EventID
    url: str = field(repr=False)
    attempts: int


class MediaLedger:
    def __init__(self, database: Database, keyring: Keyring, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._keyring = keyring
        self._sealer = sealer
        self._clock = clock

    async def add(
        self, db: aiosqlite.Connection, room_id: RoomID, event_id: EventID, urls: tuple[str, ...]
    ) -> None:
        for url in urls:
            await db.execute(
                "INSERT INTO media_ledger (room_id, event_id, media_lookup, media, status, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (media_lookup) DO NOTHING",
                (
                    room_id,
                    event_id,
                    self._keyring.lookup_hash(url, purpose="media"),
                    self._sealer.seal(url.encode(), context="media"),
                    PENDING,
                    iso(self._clock.now()),
                ),
            )

    async def pending(self) -> list[MediaEntry]:
        async with self._db.connection.execute(
            "SELECT id, room_id, event_id, media, attempts FROM media_ledger WHERE status = ? ORDER BY id",
            (PENDING,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            MediaEntry(
                row["id"],
                RoomID(row["room_id"]),
                EventID(row["event_id"]),
                self._sealer.open(row["media"], context="media").decode(),
                row["attempts"],
            )
            for row in rows
        ]

    async def settle(self, entry_id: int, status: str) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE media_ledger SET status = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (status, iso(self._clock.now()), entry_id),
            )
