"""Consent to share a submission: asked by a clinician, answered by the patient or someone with authority."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.clock import iso
from storage.sql import Connection, Database


@dataclass(frozen=True)
class Consent:
    consent_id: str
    submission_id: str
    purpose: str
    asked_by: str
    asked_at: datetime
    answer: str | None  # None until answered, then 'yes' or 'no'
    given_by: str | None  # 'patient' or 'legal-authority'
    answered_at: datetime | None


class ConsentRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def ask(
        self,
        db: Connection,
        consent_id: str,
        *,
        submission_id: str,
        purpose: str,
        by: str,
        now: datetime,
    ) -> None:
        await db.execute(
            "INSERT INTO consents (consent_id, submission_id, purpose, asked_by, asked_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (consent_id) DO NOTHING",
            (consent_id, submission_id, purpose, by, iso(now)),
        )

    async def answer(
        self, db: Connection, consent_id: str, agreed: bool, given_by: str, now: datetime
    ) -> str | None:
        """Record the answer; the submission it belongs to (None if the question is unknown)."""
        await db.execute(
            "UPDATE consents SET answer = ?, given_by = ?, answered_at = ? WHERE consent_id = ?",
            ("yes" if agreed else "no", given_by, iso(now), consent_id),
        )
        async with db.execute(
            "SELECT submission_id FROM consents WHERE consent_id = ?", (consent_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def of_submission(self, submission_id: str) -> list[Consent]:
        async with self._db.connection.execute(
            "SELECT * FROM consents WHERE submission_id = ? ORDER BY asked_at", (submission_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Consent(
                consent_id=str(row["consent_id"]),
                submission_id=str(row["submission_id"]),
                purpose=str(row["purpose"]),
                asked_by=str(row["asked_by"]),
                asked_at=datetime.fromisoformat(row["asked_at"]),
                answer=row["answer"],
                given_by=row["given_by"],
                answered_at=datetime.fromisoformat(row["answered_at"]) if row["answered_at"] else None,
            )
            for row in rows
        ]

    async def granted(self, submission_id: str, purpose: str) -> Consent | None:
        """The latest answer for this purpose, if it is yes."""
        answered = [c for c in await self.of_submission(submission_id) if c.purpose == purpose and c.answer]
        latest = max(answered, key=lambda c: c.answered_at or c.asked_at, default=None)
        return latest if latest is not None and latest.answer == "yes" else None
