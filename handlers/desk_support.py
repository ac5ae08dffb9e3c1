"""What every group of clinician commands shares: finding the submission a command names, naming a person
as the room should see them, the audit entry, the edit of the submission's alert and the workspace lock.

All changes to submissions happen under the one workspace lock (commands, the viewing-window and retention
jobs), so two clinicians acting on one submission at once are serialised.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.conversation.effects import NotifyClinicians
from bot.errors import UserFacingError
from bot.ids import UserID
from bot.matrix.port import PeoplePort
from bot.reminders import local_time
from handlers.commands import Invocation
from handlers.patient import clinician_notice
from storage.alert_events import AlertEvents
from storage.audit import AuditAction, AuditLog
from storage.outbox import Outbox, derive_txn_id
from storage.sql import Connection
from storage.submissions import Status, Submission, SubmissionRepository


@dataclass
class DeskSupport:
    submissions: SubmissionRepository
    audit: AuditLog
    outbox: Outbox
    gateway: PeoplePort  # only to show a person by display name
    lock: asyncio.Lock  # the workspace lock
    alerts: AlertEvents | None = None  # each submission's alert, edited (m.replace) as its status changes
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))  # the practice's time zone

    async def who(self, user_id: UserID) -> str:
        """A person as the room should see them: display name, with the Matrix id that identifies them."""
        name = await self.gateway.display_name(user_id)
        return f"{name} ({user_id})" if name and name != user_id else str(user_id)

    async def find(
        self, cmd: Invocation, *, open_only: bool = False, with_images: bool = False, deleted_ok: bool = False
    ) -> Submission:
        """The submission the command's first word names, or a reply saying why it can't be acted on."""
        reference = cmd.word(0, "The reference (like GP-7KQ2-M4XD)")
        submission = await self.submissions.by_reference(reference)
        if submission is None:
            raise UserFacingError(f"I can't find a submission {reference[:20]!r}. `!queue` lists them.")
        if submission.status is Status.DELETED and not deleted_ok:
            raise UserFacingError(f"{submission.reference} was deleted.")
        if open_only and submission.status is Status.DONE:
            raise UserFacingError(f"{submission.reference} is already done.")
        if with_images and not submission.has_images:
            raise UserFacingError(f"{submission.reference} has no photos any more (they were destroyed).")
        return submission

    async def record(
        self,
        db: Connection,
        cmd: Invocation,
        action: AuditAction,
        submission: Submission | None,
        details: dict[str, object],
    ) -> None:
        """The command's audit entry, in its transaction."""
        await self.audit.append(
            db,
            actor=cmd.sender,
            action=action,
            subject=submission.reference if submission else "",
            details=details,
        )

    async def edit_alerts(self, db: Connection, cmd: Invocation, submission: Submission, status: str) -> None:
        """Edit (m.replace) the submission's alert in every clinician room to show its current status."""
        if self.alerts is None:
            return
        headline = clinician_notice(
            NotifyClinicians(
                submission.reference,
                submission.photo_count,
                submission.keep_in_record,
                submission.intimate,
                submission.acting_for_someone,
            )
        )
        text = f"{headline}\nStatus: **{status}**, {local_time(cmd.now, self.zone)}."
        for index, (room, event_id) in enumerate(await self.alerts.of_reference(submission.reference)):
            payload = {"text": text, "msgtype": "m.text", "replaces": event_id}
            await self.outbox.add(db, room, derive_txn_id(cmd.event_id, 60 + index), "message", payload)


def flags(submission: Submission) -> str:
    """What a clinician must know about how to treat a submission, as a parenthesis (or nothing)."""
    found = []
    if submission.intimate:
        found.append("intimate: describe, then destroy")
    elif not submission.keep_in_record:
        found.append("view then delete")
    if submission.acting_for_someone:
        found.append("sent by someone acting for the patient")
    if submission.request_id:
        found.append("answers a photo request")
    return f" ({'; '.join(found)})" if found else ""


def withheld(present: list[UserID]) -> str:
    names = ", ".join(present[:5])
    return (
        f"I won't post images in this room while {names} (not on the practice's clinician list) "
        "is a member. Remove them, or ask an admin to add them as a clinician, then try again."
    )


def minutes(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{seconds // 60} minutes"
