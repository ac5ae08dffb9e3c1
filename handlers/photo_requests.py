"""A clinician's photo request: the bot opens an encrypted chat with the patient, says who asked and for
what, and the request expires after the practice's set time (an answer after that is refused politely)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from bot.clock import Clock
from bot.conversation import Begin
from bot.errors import UserFacingError
from bot.ids import UserID, server_name
from bot.matrix.port import MatrixPort
from handlers.patient import PatientHandler
from storage.photo_requests import PhotoRequestRepository
from storage.sql import Connection

log = logging.getLogger(__name__)


@dataclass
class PhotoRequests:
    gateway: MatrixPort
    patient: PatientHandler
    requests: PhotoRequestRepository
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

        async def record(db: Connection) -> None:
            await self.requests.open(
                db,
                request_id,
                room_id=room_id,
                patient=patient,
                requested_by=by,
                details={"area": area, "note": note, "requested_by": requested_by},
                created_at=self.clock.now(),
                expires_at=expires,
            )

        await self.patient.start_requested(room_id, patient, begin, record)
        log.info("opened a chat for a clinician's photo request")
        return f"I've opened an encrypted chat with {patient} and asked for a photo of: {area}."
