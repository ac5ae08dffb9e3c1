"""The rooms the bot serves and what kind each is; the patient's user id is sealed, found by keyed hash."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import Enum

from bot.clock import Clock, iso
from bot.ids import RoomID, UserID
from bot.keyring import Keyring, Sealer
from storage.sql import Connection, Database


class RoomKind(Enum):
    PATIENT = "patient"
    CLINICIAN = "clinician"
    ADMIN = "admin"
    REFUSED = "refused"  # a patient on a homeserver the practice does not allow: told why, then left


@dataclass(frozen=True)
class Room:
    room_id: RoomID
    kind: RoomKind
    member: UserID | None  # the patient, in a patient room
    closed: bool = False  # a patient room the bot closed and left: none of its events are handled


class RoomRepository:
    def __init__(self, database: Database, keyring: Keyring, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._keyring = keyring
        self._sealer = sealer
        self._clock = clock

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        return self._db.transaction()

    def _lookup(self, user_id: UserID) -> str:
        return self._keyring.lookup_hash(user_id, purpose="room-member")

    async def get(self, room_id: RoomID) -> Room | None:
        async with self._db.connection.execute(
            "SELECT room_id, kind, member, closed_at FROM rooms WHERE room_id = ?", (room_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        member = (
            UserID(self._sealer.open(row["member"], context=f"room-member:{room_id}").decode())
            if row["member"] is not None
            else None
        )
        return Room(RoomID(row["room_id"]), RoomKind(row["kind"]), member, row["closed_at"] is not None)

    async def add(self, db: Connection, room_id: RoomID, kind: RoomKind, member: UserID | None) -> None:
        await db.execute(
            "INSERT INTO rooms (room_id, kind, member_lookup, member, joined_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (room_id) DO NOTHING",
            (
                room_id,
                kind.value,
                self._lookup(member) if member else None,
                self._sealer.seal(member.encode(), context=f"room-member:{room_id}") if member else None,
                iso(self._clock.now()),
            ),
        )

    async def close(self, db: Connection, room_id: RoomID, reason: str) -> None:
        """The bot stops serving this room (and leaves it): its events are no longer handled."""
        await db.execute(
            "UPDATE rooms SET closed_at = ?, closed_reason = ? WHERE room_id = ?",
            (iso(self._clock.now()), reason, room_id),
        )

    async def reopen(self, db: Connection, room_id: RoomID, member: UserID) -> None:
        """A closed room the bot was invited back into, found safe: served again, for this patient."""
        await db.execute(
            "UPDATE rooms SET closed_at = NULL, closed_reason = NULL, member_lookup = ?, member = ?"
            " WHERE room_id = ?",
            (
                self._lookup(member),
                self._sealer.seal(member.encode(), context=f"room-member:{room_id}"),
                room_id,
            ),
        )

    async def count_patient_rooms(self) -> int:
        """How many patient rooms the bot knows (for the start-up banner)."""
        async with self._db.connection.execute(
            "SELECT COUNT(*) FROM rooms WHERE kind = ?", (RoomKind.PATIENT.value,)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def latest_patient_room_of(self, member: UserID) -> RoomID | None:
        """The most recent open patient room of this user (found by keyed hash), or None."""
        async with self._db.connection.execute(
            "SELECT room_id FROM rooms WHERE member_lookup = ? AND kind = ? AND closed_at IS NULL"
            " ORDER BY joined_at DESC LIMIT 1",
            (self._lookup(member), RoomKind.PATIENT.value),
        ) as cursor:
            row = await cursor.fetchone()
        return RoomID(row[0]) if row else None
