"""The retention job: unreviewed submissions are destroyed after the practice's retention period.

"Unreviewed" means no clinician kept it for the record. Clinicians are warned first, in every clinician
room; a submission is destroyed only after its warning has stood for at least a day (or the whole warning
period, if shorter), so a sudden change never destroys without notice. Each run destroys at most
`retention_max_per_run` submissions.

The job refuses to act on a clock it cannot trust: if the time went backwards since its last run, or
jumped forward by more than the retention period itself (which could destroy every unreviewed submission
at once), it destroys nothing, says so in the clinician and admin rooms and the audit log, and waits for an
admin to confirm the clock (`!retention-resume`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock, iso
from bot.durations import format_duration
from handlers.alerts import alert
from handlers.destruction import Destruction
from storage.audit import AuditAction, AuditLog
from storage.job_runs import clear_run, last_run, save_run
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.sql import Connection, Database
from storage.submissions import Submission, SubmissionRepository

log = logging.getLogger(__name__)

JOB = "retention"
REFUSED = "retention-refused"
BACKWARDS_TOLERANCE = timedelta(minutes=5)
MIN_NOTICE = timedelta(days=1)


@dataclass(frozen=True)
class RetentionPlan:
    warn: tuple[Submission, ...] = ()
    destroy: tuple[Submission, ...] = ()
    left_for_later: int = 0
    refused: str | None = None  # why the clock is not trusted


def plan_retention(
    submissions: list[Submission],
    *,
    now: datetime,
    last_run: datetime | None,
    retention: timedelta,
    warning: timedelta,
    max_per_run: int,
) -> RetentionPlan:
    """What this run should do. Pure: the tests drive it with any clock."""
    if last_run is not None:
        if now < last_run - BACKWARDS_TOLERANCE:
            return RetentionPlan(refused=f"the clock went back from {iso(last_run)} to {iso(now)}")
        if now - last_run > retention:
            return RetentionPlan(
                refused=f"the clock jumped forward from {iso(last_run)} to {iso(now)}, more than the "
                f"retention period ({format_duration(retention)})"
            )
    unreviewed = [s for s in submissions if s.has_images and not (s.decision and s.decision.kept)]
    warn = tuple(
        s for s in unreviewed if s.retention_warned_at is None and now >= s.created_at + retention - warning
    )
    due = [
        s
        for s in unreviewed
        if s.retention_warned_at is not None
        and now >= s.created_at + retention
        and now >= s.retention_warned_at + min(warning, MIN_NOTICE)
    ]
    return RetentionPlan(
        warn=warn, destroy=tuple(due[:max_per_run]), left_for_later=max(0, len(due) - max_per_run)
    )


@dataclass
class RetentionJob:
    database: Database
    submissions: SubmissionRepository
    audit: AuditLog
    outbox: Outbox
    destruction: Destruction
    config: LiveConfig
    clock: Clock
    lock: asyncio.Lock

    async def run(self) -> RetentionPlan:
        now = self.clock.now()
        config = self.config.current
        async with self.lock:
            plan = plan_retention(
                await self.submissions.unkept_with_images(),
                now=now,
                last_run=await last_run(self.database, JOB),
                retention=config.retention,
                warning=config.retention_warning,
                max_per_run=config.retention_max_per_run,
            )
            if plan.refused is not None:
                await self._refuse(plan.refused, now)
                return plan
            async with self.database.transaction() as db:
                for submission in plan.warn:
                    await self.submissions.warned(db, submission.submission_id, now)
                    await self._audit(db, AuditAction.RETENTION_WARNING, submission)
                if plan.warn:
                    await self._tell(
                        db,
                        f"retention-warn:{iso(now)}",
                        _warning(plan.warn, now, config.retention, config.retention_warning),
                    )
                await save_run(db, JOB, now)
        for submission in plan.destroy:
            await self._destroy(submission, now)
        if plan.destroy:
            async with self.database.transaction() as db:
                more = f" {plan.left_for_later} more wait for the next run." if plan.left_for_later else ""
                refs = ", ".join(s.reference for s in plan.destroy)
                text = f"Retention: destroyed the photos of {len(plan.destroy)} unreviewed submission(s): {refs}.{more}"
                await self._tell(db, f"retention-destroy:{iso(now)}", text)
            log.info("retention destroyed %d unreviewed submissions", len(plan.destroy))
        return plan

    async def _destroy(self, submission: Submission, now: datetime) -> None:
        async with self.lock:
            current = await self.submissions.by_id(submission.submission_id)
            if current is None or not current.has_images or (current.decision and current.decision.kept):
                return  # kept or destroyed meanwhile
            await self.destruction.destroy_images(
                current, now, AuditAction.RETENTION_DESTROY, {"why": "unreviewed"}, []
            )
        await self.destruction.retract_due()

    async def _refuse(self, why: str, now: datetime) -> None:
        log.warning("the retention job did not run: %s", why)
        if await last_run(self.database, REFUSED) is not None:
            return  # already reported; an admin's !retention-resume clears it
        async with self.database.transaction() as db:
            await self.audit.append(
                db, actor="bot", action=AuditAction.RETENTION_REFUSED, subject="", details={"why": why}
            )
            text = (
                f"**The retention job did not run**: {why}. Nothing was destroyed. If the clock is right, an admin "
                "can confirm it with `!retention-resume` in the admin room."
            )
            await self._tell(db, f"retention-refused:{iso(now)}", text, admins=True)
            await save_run(db, REFUSED, now)

    async def resume(self, db: Connection) -> None:
        await resume_retention(db, self.clock.now())

    async def _tell(self, db: Connection, source: str, text: str, *, admins: bool = False) -> None:
        config = self.config.current
        rooms = sorted(config.clinician_rooms) + ([config.admin_room] if admins and config.admin_room else [])
        for room in rooms:
            await self.outbox.add(
                db, room, derive_txn_id(f"{source}:{room}", 0), "message", alert(text, config)
            )

    async def _audit(self, db: Connection, action: AuditAction, submission: Submission) -> None:
        await self.audit.append(db, actor="bot", action=action, subject=submission.reference, details={})


async def resume_retention(db: Connection, now: datetime) -> None:
    """An admin confirmed the clock: from now on, jumps are judged against the present time."""
    await clear_run(db, REFUSED)
    await save_run(db, JOB, now)


def _warning(
    submissions: tuple[Submission, ...], now: datetime, retention: timedelta, warning: timedelta
) -> str:
    lines = []
    for submission in submissions:
        when = max(submission.created_at + retention, now + min(warning, MIN_NOTICE))
        lines.append(f"- **{submission.reference}**: destroyed after {iso(when)[:16].replace('T', ' ')} UTC")
    return (
        f"**Retention warning**: {len(submissions)} unreviewed submission(s) will be destroyed unless a clinician "
        "keeps them (`!keep REF <reason>`):\n" + "\n".join(lines)
    )
