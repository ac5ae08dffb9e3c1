"""A clinician's photo request (`photo_requests`): opened with the chat the bot made for it, answered when
the patient sends. The patient's id and the request's details are sealed; a keyed hash finds the patient."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.clock import iso
from bot.ids import RoomID, UserID
from bot.keyring import Keyring, Sealer
from storage.sql import Connection


class PhotoRequestRepository:
    def __init__(self, keyring: Keyring, sealer: Sealer) -> None:
        self._keyring = keyring
        self._sealer = sealer

    async def open(
        self,
        db: Connection,
        request_id: str,
        *,
        room_id: RoomID,
        patient: UserID,
        requested_by: UserID,
        details: dict[str, Any],
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        """Record an open request (once: a replay of the same request id changes nothing)."""
        await db.execute(
            "INSERT INTO photo_requests (request_id, room_id, patient_lookup, patient, requested_by, details,"
            " status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)"
            " ON CONFLICT (request_id) DO NOTHING",
            (
                request_id,
                room_id,
                self._keyring.lookup_hash(patient, purpose="room-member"),
                self._sealer.seal(patient.encode(), context=f"photo-request-patient:{request_id}"),
                requested_by,
                self._sealer.seal_json(details, context=f"photo-request:{request_id}"),
                iso(created_at),
                iso(expires_at),
            ),
        )

    async def answered(self, db: Connection, request_id: str) -> None:
        """The patient sent photos for this request."""
        await db.execute("UPDATE photo_requests SET status = 'answered' WHERE request_id = ?", (request_id,))
