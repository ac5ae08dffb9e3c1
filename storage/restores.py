"""The `restores` table: each `photobot restore`, until the bot has skipped to the homeserver's present.

A restored database holds an older sync checkpoint and older handled-event marks: syncing from that
checkpoint would hand the bot again every staff command and patient message it handled after the backup
was made (a clinician's `!request` opening a second chat with the patient). So a restore is recorded here,
and the bot's next start syncs without its checkpoint (the homeserver's present), handles only the events
sent after the restore, and marks the restore caught up in the same transaction as its new checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from bot.clock import iso
from storage.sql import Connection, Database


@dataclass(frozen=True)
class Restore:
    restore_id: int
    restored_at: datetime
    backup_made_at: str
    rolled_back: tuple[str, ...]  # names of run-time settings the restore rolled back


async def record_restore(
    db: Connection, restored_at: datetime, backup_made_at: str, rolled_back: tuple[str, ...]
) -> None:
    await db.execute(
        "INSERT INTO restores (restored_at, backup_made_at, rolled_back) VALUES (?, ?, ?)",
        (iso(restored_at), backup_made_at, json.dumps(list(rolled_back))),
    )


class Restores:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def awaiting_catch_up(self) -> Restore | None:
        """The latest restore the bot has not yet skipped past, if any."""
        async with self._db.connection.execute(
            "SELECT restore_id, restored_at, backup_made_at, rolled_back FROM restores"
            " WHERE caught_up_at IS NULL ORDER BY restore_id DESC LIMIT 1"
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return Restore(
            int(row[0]),
            datetime.fromisoformat(str(row[1])),
            str(row[2]),
            tuple(str(name) for name in json.loads(str(row[3]))),
        )

    async def caught_up(self, db: Connection, now: datetime) -> None:
        await db.execute("UPDATE restores SET caught_up_at = ? WHERE caught_up_at IS NULL", (iso(now),))
