"""Every upload a patient's photo message pointed at, and whether it was deleted from the homeserver.

Entries are written in the same transaction as the decision to delete; the purge runs after the commit
and is retried from here until the homeserver confirms (or says it is already gone), so a purge that
failed once is never forgotten. The URLs are sealed: with the attachment key (which we never keep) they
would lead to the photo.

A refused deletion (a wrong or revoked homeserver-admin credential, typically) is retried with backoff,
30 s after the first failure and doubling up to an hour (`retry_delay`), so a broken credential costs
the homeserver one request per upload per hour rather than one per housekeeping pass. `retry_now` starts
the backoff again (an admin has just changed the credential). For a pending entry, `attempts` counts the
refused attempts so far.

Only uploads on the bot's own homeserver are listed as waiting (`PENDING`): an upload on another server
cannot be deleted by this practice, so it is written down once as `REMOTE` and never retried or alarmed
about. Each entry keeps who sent the message (sealed) and when (`sent_at_ms`), so the purge can check with
the homeserver that this patient uploaded it, for this message, before deleting it (`handlers.media_purge`);
one that fails the check is settled as `NOT_OWNED` and left alone.

An operator is told once when deletions keep failing (`alert_change` says when to tell, and when to say
it works again); the told-or-not flag lives in `job_runs`, so a restart does not repeat the message.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from bot.clock import Clock, iso
from bot.ids import EventID, RoomID, UserID
from bot.keyring import Keyring, Sealer
from storage.sql import Connection, Database, Row

PENDING = "pending"
REMOTE = "on another server"  # cannot be deleted by this practice: never pending, never retried
NOT_OWNED = (
    "not the patient's upload"  # the homeserver says someone else uploaded it, or not for this message
)
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
ALERT_AFTER_FAILURES = 3  # refused attempts of one upload before an operator is told
_ALERT_JOB = "media-purge-alert"  # its row in job_runs exists while the operator has been told


def retry_delay(failures: int) -> timedelta:
    """How long after its `failures`-th refused attempt an upload is tried again: 30 s, 1 min, 2 min, ... 1 h."""
    if failures <= 0:
        return timedelta(0)
    doubled: timedelta = RETRY_FIRST * (2 ** min(failures - 1, 16))
    return min(RETRY_MAX, doubled)


@dataclass(frozen=True)
class MediaEntry:
    id: int
    room_id: RoomID
    event_id: EventID
    url: str = field(repr=False)
    attempts: int
    owner: UserID | None = field(repr=False)  # who sent the message (None: listed before owners were kept)
    sent_at_ms: int | None  # when the homeserver received the message


@dataclass(frozen=True)
class MediaBacklog:
    """What still waits to be deleted from the homeserver, for an operator (`photobot check`, alerts)."""

    waiting: int  # uploads not deleted yet
    failing: int  # of which the homeserver refused at least once
    most_failures: int  # the most refused attempts of any one upload


class AlertChange(Enum):
    """What the operator should be told after a purge pass, if anything."""

    FAILING = "failing"  # deletions keep failing: tell them once
    RECOVERED = "recovered"  # they had been told, and the backlog is now empty


class MediaLedger:
    def __init__(self, database: Database, keyring: Keyring, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._keyring = keyring
        self._sealer = sealer
        self._clock = clock

    async def add(
        self,
        db: Connection,
        room_id: RoomID,
        event_id: EventID,
        urls: tuple[str, ...],
        *,
        sender: UserID,
        sent_at_ms: int,
        remote: Collection[str] = (),
    ) -> None:
        """List the uploads `sender`'s message pointed at; those in `remote` are on another server."""
        for url in urls:
            local = url not in remote
            await db.execute(
                "INSERT INTO media_ledger (room_id, event_id, media_lookup, media, status, updated_at, owner,"
                " sent_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (media_lookup) DO NOTHING",
                (
                    room_id,
                    event_id,
                    self._keyring.lookup_hash(url, purpose="media"),
                    self._sealer.seal(url.encode(), context="media"),
                    PENDING if local else REMOTE,
                    iso(self._clock.now()),
                    self._sealer.seal(sender.encode(), context="media-owner"),
                    sent_at_ms,
                ),
            )

    async def remote_count(self) -> int:
        """Uploads on other servers, which this practice cannot delete (for `photobot check`)."""
        async with self._db.connection.execute(
            "SELECT COUNT(*) FROM media_ledger WHERE status = ?", (REMOTE,)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def pending(self) -> list[MediaEntry]:
        """Every upload not yet deleted, whether or not its retry time has come."""
        return [self._entry(row) for row in await self._pending_rows()]

    async def due(self) -> list[MediaEntry]:
        """The uploads to try now: never tried, or refused long enough ago (`retry_delay`)."""
        now = self._clock.now()
        return [
            self._entry(row)
            for row in await self._pending_rows()
            if datetime.fromisoformat(row["updated_at"]) + retry_delay(row["attempts"]) <= now
        ]

    async def _pending_rows(self) -> list[Row]:
        async with self._db.connection.execute(
            "SELECT id, room_id, event_id, media, attempts, updated_at, owner, sent_at_ms FROM media_ledger"
            " WHERE status = ?"
            " ORDER BY id",
            (PENDING,),
        ) as cursor:
            return list(await cursor.fetchall())

    def _entry(self, row: Row) -> MediaEntry:
        return MediaEntry(
            row["id"],
            RoomID(row["room_id"]),
            EventID(row["event_id"]),
            self._sealer.open(row["media"], context="media").decode(),
            row["attempts"],
            UserID(self._sealer.open(row["owner"], context="media-owner").decode()) if row["owner"] else None,
            row["sent_at_ms"],
        )

    async def settle(self, entry_id: int, status: str) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE media_ledger SET status = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (status, iso(self._clock.now()), entry_id),
            )

    async def failed(self, entry_id: int) -> None:
        """The homeserver refused to delete it: count the attempt; it is tried again after `retry_delay`."""
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE media_ledger SET attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = ?",
                (iso(self._clock.now()), entry_id, PENDING),
            )

    async def retry_now(self) -> int:
        """Forget the refusals so far (the credential changed): every waiting upload is due at once."""
        async with self._db.transaction() as db:
            cursor = await db.execute(
                "UPDATE media_ledger SET attempts = 0 WHERE status = ? AND attempts > 0", (PENDING,)
            )
            return cursor.rowcount

    async def backlog(self) -> MediaBacklog:
        async with self._db.connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0), COALESCE(MAX(attempts), 0)"
            " FROM media_ledger WHERE status = ?",
            (PENDING,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return MediaBacklog(0, 0, 0)
        return MediaBacklog(int(row[0]), int(row[1]), int(row[2]))

    async def alert_change(self, db: Connection) -> tuple[AlertChange, MediaBacklog] | None:
        """Inside the caller's transaction (which also queues the message): whether to tell the operator
        that deletions keep failing, or that they work again; None if nothing changed since they were told."""
        backlog = await self.backlog()
        async with db.execute("SELECT 1 FROM job_runs WHERE job = ?", (_ALERT_JOB,)) as cursor:
            told = await cursor.fetchone() is not None
        if not told and backlog.most_failures >= ALERT_AFTER_FAILURES:
            await db.execute(
                "INSERT INTO job_runs (job, last_run_at) VALUES (?, ?)", (_ALERT_JOB, iso(self._clock.now()))
            )
            return AlertChange.FAILING, backlog
        if told and backlog.waiting == 0:
            await db.execute("DELETE FROM job_runs WHERE job = ?", (_ALERT_JOB,))
            return AlertChange.RECOVERED, backlog
        return None
