"""A clinician's photo request: the bot opens an encrypted chat with the patient, says who asked and for
what, and the request expires after the practice's set time (an answer after that is refused politely)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.clock import Clock, iso
from bot.conversation import Begin
from bot.errors import UserFacingError
from bot.ids import UserID, server_name
from bot.keyring import Keyring, Sealer
from bot.matrix.port import MatrixPort
from handlers.patient import PatientHandler

log = logging.getLogger(__name__)


@dataclass
class PhotoRequests:
    gateway: MatrixPort
    patient: PatientHandler
    keyring: Keyring
    sealer: Sealer
    clock: Clock
    allowed_servers: frozenset[str]

    async def open(
        self, request_id: str, patient: UserID, area: str, *, note: str | None, by: UserID, expires: datetime
    ) -> str:
        if server_name(patient) not in self.allowed_servers:
            raise UserFacingError(
                f"I can only open chats with people on {', '.join(sorted(self.allowed_servers))}; not {patient}."
            )
        if patient == self.gateway.user_id:
            raise UserFacingError("That is my own id: give the patient's Matrix id.")
        if await self.gateway.user_exists(patient) is False:
            raise UserFacingError(
                f"There is no Matrix account {patient}, so I haven't opened a chat or sent anything. Check the "
                "id with the patient (it looks like @name:server) and try again."
            )
        requested_by = await self.gateway.display_name(by) or "A clinician"
        room_id = await self.gateway.create_direct_chat(patient, "Photo request")
        wanted = f"{area} (note from the practice: {note})" if note else area
        begin = Begin(
            secrets.token_hex(16),
            self.clock.now(),
            requested_area=wanted,
            requested_by=requested_by,
            request_id=request_id,
            request_expires_at=expires,
        )

        async def record(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO photo_requests (request_id, room_id, patient_lookup, patient, requested_by, details,"
                " status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)"
                " ON CONFLICT (request_id) DO NOTHING",
                (
                    request_id,
                    room_id,
                    self.keyring.lookup_hash(patient, purpose="room-member"),
                    self.sealer.seal(patient.encode(), context=f"photo-request-patient:{request_id}"),
                    by,
                    self.sealer.seal_json(
                        {"area": area, "note": note, "requested_by": requested_by},
                        context=f"photo-request:{request_id}",
                    ),
                    iso(self.clock.now()),
                    iso(expires),
                ),
            )

        await self.patient.start_requested(room_id, patient, begin, record)
        log.info("opened a chat for a clinician's photo request")
        return f"I've opened an encrypted chat with {patient} and asked for a photo of: {area}."
