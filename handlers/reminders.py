"""Nothing missed: a reminder for a request left unclaimed, and a short daily digest, in every clinician room.

A new submission nobody has claimed after `reminder_after` of working time (the practice's working days and
hours, in its time zone) gets one reminder, an alert naming the clinicians. At the digest's local time each
day the room gets counts by status, the oldest waiting request and the retention warnings standing. Neither
carries an NHS number or a patient's words: anyone in the room sees them. Runs from housekeeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.clock import Clock
from bot.reminders import ReminderPolicy, digest_due, local_time, reminder_due, waited, working_time_between
from handlers.alerts import alert
from storage.job_runs import last_run, save_run
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.sql import Database
from storage.submissions import Status, Submission, SubmissionRepository

log = logging.getLogger(__name__)

DIGEST = "digest"


@dataclass
class ReminderJob:
    database: Database
    submissions: SubmissionRepository
    outbox: Outbox
    config: LiveConfig
    clock: Clock
    policy: ReminderPolicy

    async def run(self) -> None:
        now = self.clock.now()
        waiting = await self.submissions.waiting()
        due = [
            s
            for s in waiting
            if s.status is Status.NEW
            and s.reminded_at is None
            and reminder_due(s.created_at, now, self.policy)
        ]
        last = await last_run(self.database, DIGEST)
        send_digest = digest_due(last, now, self.policy)
        if not due and not send_digest and last is not None:
            return
        config = self.config.current
        async with self.database.transaction() as db:
            for submission in due:
                await self.submissions.reminded(db, submission.submission_id, now)
                text = self._reminder(submission, now)
                for room in sorted(config.clinician_rooms):
                    txn = derive_txn_id(f"reminder:{submission.submission_id}:{room}", 0)
                    await self.outbox.add(db, room, txn, "message", alert(text, config))
            if send_digest:
                text = await self._digest(waiting, now)
                for room in sorted(config.clinician_rooms):
                    txn = derive_txn_id(f"digest:{now.date().isoformat()}:{room}", 0)
                    await self.outbox.add(db, room, txn, "message", {"text": text, "msgtype": "m.text"})
            if send_digest or last is None:
                await save_run(db, DIGEST, now)
        if due:
            log.info("reminded the clinician rooms of %d unclaimed request(s)", len(due))

    def _reminder(self, submission: Submission, now: datetime) -> str:
        working = working_time_between(submission.created_at, now, self.policy)
        return (
            f"**Reminder**: {submission.reference} has waited unclaimed for {waited(working)} of working time"
            f" (since {local_time(submission.created_at, self.policy.zone)}). `!claim {submission.reference}`"
            " to take it on."
        )

    async def _digest(self, waiting: list[Submission], now: datetime) -> str:
        counts = await self.submissions.status_counts()
        lines = [
            f"**Daily digest**, {local_time(now, self.policy.zone)}: "
            + ", ".join(
                f"{counts.get(status, 0)} {status.value}"
                for status in (Status.NEW, Status.CLAIMED, Status.DONE)
            )
            + "."
        ]
        if waiting:
            oldest = waiting[0]
            lines.append(
                f"Oldest waiting: {oldest.reference} ({oldest.status.value}), since"
                f" {local_time(oldest.created_at, self.policy.zone)} ({waited(now - oldest.created_at)})."
            )
        else:
            lines.append("Nothing is waiting.")
        warned = [s for s in await self.submissions.unkept_with_images() if s.retention_warned_at is not None]
        if warned:
            refs = ", ".join(s.reference for s in warned[:10])
            lines.append(f"Retention warnings standing: {len(warned)} ({refs}); `!keep` what must stay.")
        else:
            lines.append("No retention warnings.")
        return "\n".join(lines)
