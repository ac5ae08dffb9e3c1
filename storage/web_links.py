"""The web chat's links (table `web_links`): one row per minted link, keyed by the SHA-256 of its token.

The token itself is never stored: a copy of the database cannot be turned into working links. A request
link's details (the area, the clinician's note, the clinician) are sealed. A link is redeemed once (the
bot then made a single-use Synapse registration token for a username it chose); once the page is ready the
row names the chat the bot opened; when the account is deactivated and erased the row is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.clock import iso
from bot.ids import RoomID
from bot.keyring import Sealer
from storage.sql import Connection, Database, Row


@dataclass(frozen=True)
class WebLink:
    token_hash: str
    kind: str  # 'request' or 'poster'
    created_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    username: str | None
    room_id: RoomID | None
    account_until: datetime | None
    closed_at: datetime | None
    closed_reason: str | None
    details: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class OpenAccount:
    """A redeemed link whose account is not closed yet, with where its chat stands (for closing it)."""

    link: WebLink
    conversation_state: str | None  # None: no conversation (yet)
    last_activity: datetime | None  # the conversation's last step
    submission_status: str | None  # the status of the chat's latest submission, None if there is none
    images_destroyed: bool = False  # that submission's images are all destroyed
    exported: bool = False  # its record package was exported (an 'export' audit entry names it)
    consent_pending: bool = False  # a consent question about it waits for the patient's answer
    submission_reference: str | None = None  # that submission's reference (its closing is audited under it)


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value is not None else None


class WebLinkRepository:
    def __init__(self, database: Database, sealer: Sealer) -> None:
        self._db = database
        self._sealer = sealer

    def _link(self, row: Row) -> WebLink:
        details = (
            self._sealer.open_json(row["details"], context=f"web-link:{row['token_hash']}")
            if row["details"] is not None
            else {}
        )
        created, expires = _moment(row["created_at"]), _moment(row["expires_at"])
        assert created is not None  # NOT NULL column
        assert expires is not None  # NOT NULL column
        return WebLink(
            token_hash=str(row["token_hash"]),
            kind=str(row["kind"]),
            created_at=created,
            expires_at=expires,
            redeemed_at=_moment(row["redeemed_at"]),
            username=row["username"],
            room_id=RoomID(row["room_id"]) if row["room_id"] is not None else None,
            account_until=_moment(row["account_until"]),
            closed_at=_moment(row["closed_at"]),
            closed_reason=row["closed_reason"],
            details=details if isinstance(details, dict) else {},
        )

    async def add(
        self,
        db: Connection,
        token_hash: str,
        kind: str,
        *,
        created_at: datetime,
        expires_at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        sealed = (
            self._sealer.seal_json(details, context=f"web-link:{token_hash}") if details is not None else None
        )
        await db.execute(
            "INSERT INTO web_links (token_hash, kind, details, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash, kind, sealed, iso(created_at), iso(expires_at)),
        )

    async def get(self, token_hash: str) -> WebLink | None:
        async with self._db.connection.execute(
            "SELECT * FROM web_links WHERE token_hash = ?", (token_hash,)
        ) as cursor:
            row = await cursor.fetchone()
        return self._link(row) if row is not None else None

    async def redeem(self, token_hash: str, *, username: str, now: datetime, account_until: datetime) -> bool:
        """Mark the link redeemed for `username`, if nobody did before and it has not expired; whether it was."""
        async with self._db.transaction() as db:
            cursor = await db.execute(
                "UPDATE web_links SET redeemed_at = ?, username = ?, account_until = ? WHERE token_hash = ?"
                " AND redeemed_at IS NULL AND closed_at IS NULL AND expires_at > ?",
                (iso(now), username, iso(account_until), token_hash, iso(now)),
            )
            return cursor.rowcount == 1

    async def release(self, token_hash: str) -> None:
        """Undo a redemption the homeserver could not complete, so the patient can try the link again."""
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE web_links SET redeemed_at = NULL, username = NULL, account_until = NULL"
                " WHERE token_hash = ? AND room_id IS NULL AND closed_at IS NULL",
                (token_hash,),
            )

    async def set_room(self, db: Connection, token_hash: str, room_id: RoomID) -> None:
        await db.execute(
            "UPDATE web_links SET room_id = ? WHERE token_hash = ? AND room_id IS NULL", (room_id, token_hash)
        )

    async def close(self, db: Connection, token_hash: str, reason: str, now: datetime) -> bool:
        cursor = await db.execute(
            "UPDATE web_links SET closed_at = ?, closed_reason = ? WHERE token_hash = ? AND closed_at IS NULL",
            (iso(now), reason, token_hash),
        )
        return cursor.rowcount == 1

    async def posters_since(self, since: datetime) -> int:
        """How many poster links were minted since `since` (the per-day limit; it survives a restart)."""
        async with self._db.connection.execute(
            "SELECT COUNT(*) FROM web_links WHERE kind = 'poster' AND created_at >= ?", (iso(since),)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def open_accounts(self) -> list[OpenAccount]:
        """Every redeemed link whose account is not closed, with its chat's conversation state and latest
        submission status (read here, beside the link, so that deciding to close is one query)."""
        return await self._open_accounts(None)

    async def open_account(self, token_hash: str) -> OpenAccount | None:
        found = await self._open_accounts(token_hash)
        return found[0] if found else None

    async def _open_accounts(self, token_hash: str | None) -> list[OpenAccount]:
        async with self._db.connection.execute(
            "SELECT w.*, c.state AS conversation_state, c.last_activity_at, s.status AS submission_status,"
            " s.reference AS submission_reference,"
            " s.images_destroyed_at IS NOT NULL AS images_destroyed,"
            " EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'export' AND a.subject = s.reference)"
            "  AS exported,"
            " EXISTS (SELECT 1 FROM consents k WHERE k.submission_id = s.submission_id AND k.answer IS NULL)"
            "  AS consent_pending"
            " FROM web_links w LEFT JOIN conversations c ON c.room_id = w.room_id"
            " LEFT JOIN submissions s ON s.submission_id = (SELECT s2.submission_id FROM submissions s2"
            "  WHERE s2.room_id = w.room_id ORDER BY s2.created_at DESC LIMIT 1)"
            " WHERE w.redeemed_at IS NOT NULL AND w.closed_at IS NULL"
            " AND (CAST(? AS TEXT) IS NULL OR w.token_hash = ?) ORDER BY w.redeemed_at",
            (token_hash, token_hash),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            OpenAccount(
                self._link(row),
                row["conversation_state"],
                _moment(row["last_activity_at"]),
                row["submission_status"],
                bool(row["images_destroyed"]),
                bool(row["exported"]),
                bool(row["consent_pending"]),
                row["submission_reference"],
            )
            for row in rows
        ]
