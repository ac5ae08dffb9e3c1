"""What the bot posted into staff rooms (viewed photos, exported packages), until it is taken back.

A posting goes pending -> posted -> retracted. It is recorded (pending) in the same transaction as the
command that asked for it; the upload (its URL and keys, sealed) is recorded before the message is sent, and
the message's transaction id is fixed, so a crash at any point neither posts twice nor leaves a posted image
the bot has forgotten. At `expires_at` (the viewing window) the message is redacted and the upload deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.clock import Clock, iso
from bot.ids import EventID, RoomID
from bot.keyring import Sealer
from storage.sql import Connection, Database, Row


@dataclass(frozen=True)
class Posting:
    id: int
    submission_id: str
    room_id: RoomID
    txn_id: str
    kind: str  # 'view' or 'export'
    content: dict[str, Any] = field(repr=False)
    upload: dict[str, Any] | None = field(repr=False)
    event_id: EventID | None
    status: str
    expires_at: datetime


class PostingRepository:
    def __init__(self, database: Database, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock

    async def add(
        self,
        db: Connection,
        *,
        submission_id: str,
        room_id: RoomID,
        txn_id: str,
        kind: str,
        content: dict[str, Any],
        expires_at: datetime,
    ) -> None:
        now = iso(self._clock.now())
        await db.execute(
            "INSERT INTO postings (submission_id, room_id, txn_id, kind, content, status, expires_at, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (txn_id) DO NOTHING",
            (
                submission_id,
                room_id,
                txn_id,
                kind,
                self._sealer.seal_json(content, context=f"posting:{txn_id}"),
                iso(expires_at),
                now,
                now,
            ),
        )

    def _row(self, row: Row) -> Posting:
        txn_id = str(row["txn_id"])
        upload = (
            self._sealer.open_json(row["upload"], context=f"posting-upload:{txn_id}")
            if row["upload"]
            else None
        )
        return Posting(
            id=int(row["id"]),
            submission_id=str(row["submission_id"]),
            room_id=RoomID(row["room_id"]),
            txn_id=txn_id,
            kind=str(row["kind"]),
            content=self._sealer.open_json(row["content"], context=f"posting:{txn_id}")
            if row["content"]
            else {},
            upload=upload,
            event_id=EventID(row["event_id"]) if row["event_id"] else None,
            status=str(row["status"]),
            expires_at=datetime.fromisoformat(row["expires_at"]),
        )

    async def _select(self, where: str, values: tuple[Any, ...]) -> list[Posting]:
        async with self._db.connection.execute(
            f"SELECT * FROM postings WHERE {where} ORDER BY id",  # noqa: S608 - fixed conditions only
            values,
        ) as cursor:
            rows = await cursor.fetchall()
        return [self._row(row) for row in rows]

    async def pending(self) -> list[Posting]:
        return await self._select("status = 'pending'", ())

    async def due(self, now: datetime) -> list[Posting]:
        """Not yet taken back, and past the end of the viewing window."""
        return await self._select("status != 'retracted' AND expires_at <= ?", (iso(now),))

    async def of_submission(self, submission_id: str) -> list[Posting]:
        return await self._select("submission_id = ?", (submission_id,))

    async def uploaded(self, posting_id: int, txn_id: str, upload: dict[str, Any]) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE postings SET upload = ?, updated_at = ? WHERE id = ?",
                (
                    self._sealer.seal_json(upload, context=f"posting-upload:{txn_id}"),
                    iso(self._clock.now()),
                    posting_id,
                ),
            )

    async def posted(self, posting_id: int, event_id: EventID) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE postings SET event_id = ?, status = 'posted', updated_at = ? WHERE id = ?",
                (event_id, iso(self._clock.now()), posting_id),
            )

    async def retracted(self, posting_id: int) -> None:
        """Taken back: the upload's keys are forgotten too."""
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE postings SET status = 'retracted', upload = NULL, content = ?, updated_at = ?"
                " WHERE id = ?",
                (b"", iso(self._clock.now()), posting_id),
            )

    async def expire_now(self, db: Connection, submission_id: str) -> None:
        """End the viewing window of every posting of this submission (deleted or destroyed)."""
        await db.execute(
            "UPDATE postings SET expires_at = ? WHERE submission_id = ? AND status != 'retracted'",
            (iso(self._clock.now()), submission_id),
        )
