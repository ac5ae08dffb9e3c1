"""Clinicians asking a patient: consent to share a submission (`!consent`), a photo of an area (`!request`).

Both reach the patient through the patient side, passed in as callables so this desk knows nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.clock import iso
from bot.conversation.consent import PURPOSES as SHARING_PURPOSES
from bot.ids import UserID
from bot.reminders import local_time
from handlers.commands import Invocation, Outcome, UsageError
from handlers.desk_support import DeskSupport
from handlers.request_links import RequestLinks, request_link
from storage.audit import AuditAction
from storage.outbox import derive_txn_id
from storage.practice_config import LiveConfig
from storage.sql import Connection
from storage.submissions import Submission


class PatientConsentAsker(Protocol):
    """Puts a consent question in the patient's chat; False if the patient is mid-conversation."""

    async def __call__(
        self, submission: Submission, consent_id: str, purpose: str, asked_by: UserID, now: datetime
    ) -> bool: ...


class RequestOpener(Protocol):
    """Opens a chat with a patient for a clinician's photo request; a sentence for the clinician."""

    async def __call__(
        self, request_id: str, patient: UserID, area: str, *, note: str | None, by: UserID, expires: datetime
    ) -> str: ...


@dataclass
class RequestDesk:
    support: DeskSupport
    config: LiveConfig
    ask_patient_consent: PatientConsentAsker
    open_request: RequestOpener
    request_links: RequestLinks | None = None  # `!request link`: None when the web chat is off

    async def consent(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd)
            purpose = cmd.word(1, "The purpose (second-opinion or teaching)").lower()
            if purpose not in SHARING_PURPOSES:
                raise UsageError("The purpose is second-opinion or teaching.")
            consent_id = derive_txn_id(cmd.event_id, 0)
            asked = await self.ask_patient_consent(submission, consent_id, purpose, cmd.sender, cmd.now)
            if not asked:
                return Outcome(
                    f"The patient of {submission.reference} is in the middle of sending photos; ask again later."
                )

            async def work(db: Connection) -> None:
                await self.support.record(
                    db, cmd, AuditAction.CONSENT_ASKED, submission, {"purpose": purpose}
                )

            return Outcome(
                f"I've asked the patient of **{submission.reference}** for consent to {purpose}. "
                "Their answer will be posted here.",
                work,
            )

    async def request(self, cmd: Invocation) -> Outcome:
        if (
            cmd.words and cmd.words[0].lower() == "link"
        ):  # a web chat link instead (handlers/request_links.py)
            return await request_link(self.request_links, cmd)
        patient = cmd.word(0, "The patient's Matrix id")
        if not (patient.startswith("@") and ":" in patient):
            raise UsageError(f"{patient[:40]!r} is not a Matrix id like @name:server.")
        text = cmd.rest(1, "What area to photograph")
        area, _, note = text.partition("--")
        area = " ".join(area.split())
        if not 2 <= len(area) <= 120:
            raise UsageError("Say which area, in 2 to 120 characters (a note may follow after --).")
        expires = cmd.now + self.config.current.request_expiry
        request_id = derive_txn_id(cmd.event_id, 0)
        opened = await self.open_request(
            request_id,
            UserID(patient),
            area,
            note=" ".join(note.split()) or None,
            by=cmd.sender,
            expires=expires,
        )

        async def work(db: Connection) -> None:
            await self.support.record(
                db, cmd, AuditAction.REQUEST, None, {"request": request_id, "expires_at": iso(expires)}
            )

        return Outcome(
            f"{opened} The request expires {local_time(expires, self.support.zone)}; the submission will show "
            "it answers your request.",
            work,
        )
