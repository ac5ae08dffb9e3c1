"""Packages of a submission posted into a clinician room: the record package (`!export`) and a package to
share for a second opinion or teaching (`!share`, only with the patient's consent). Like viewed photos, a
package is taken back from the room when the viewing window ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.consent import PURPOSES as SHARING_PURPOSES
from bot.errors import UserFacingError
from handlers.commands import Invocation, Outcome, UsageError
from handlers.desk_support import DeskSupport, minutes, withheld
from handlers.staff_media import StaffMedia, outsiders
from storage.audit import AuditAction
from storage.consents import ConsentRepository
from storage.outbox import derive_txn_id
from storage.postings import PostingRepository
from storage.practice_config import LiveConfig
from storage.sql import Connection
from storage.submissions import Submission


@dataclass
class PackageDesk:
    support: DeskSupport
    postings: PostingRepository
    consents: ConsentRepository
    media: StaffMedia
    config: LiveConfig

    async def export(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd)
            kept = submission.decision is not None and submission.decision.kept
            if not kept and not (submission.view_then_delete and submission.description):
                raise UserFacingError(
                    f"Keep **{submission.reference}** first (`!keep {submission.reference} <reason>`), or, for "
                    "a view-then-delete submission, save a description."
                )
            return await self._package(cmd, submission, "record", AuditAction.EXPORT)

    async def share(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd)
            purpose = cmd.word(1, "The purpose (second-opinion or teaching)").lower()
            if purpose not in SHARING_PURPOSES:
                raise UsageError("The purpose is second-opinion or teaching.")
            if not submission.has_images:
                raise UserFacingError(f"{submission.reference} has no photos any more.")
            if await self.consents.granted(submission.submission_id, purpose) is None:
                raise UserFacingError(
                    f"Sharing refused: the patient has not agreed to {purpose} for **{submission.reference}**. "
                    f"Ask with `!consent {submission.reference} {purpose}`."
                )
            return await self._package(cmd, submission, purpose, AuditAction.SHARE)

    async def _package(
        self, cmd: Invocation, submission: Submission, purpose: str, action: AuditAction
    ) -> Outcome:
        present = outsiders(self.media.gateway, self.config, cmd.room_id)
        if present:
            return Outcome(withheld(present))
        who = await self.support.who(cmd.sender)

        async def work(db: Connection) -> None:
            await self.postings.add(
                db,
                submission_id=submission.submission_id,
                room_id=cmd.room_id,
                txn_id=derive_txn_id(cmd.event_id, 9),
                kind="export",
                content={"purpose": purpose, "by": cmd.sender},
                expires_at=cmd.now + self.config.current.viewing_window,
            )
            await self.support.record(db, cmd, action, submission, {"purpose": purpose})
            await self.support.edit_alerts(db, cmd, submission, f"{purpose} package exported by {who}")

        what = "record package" if purpose == "record" else f"{purpose} package"
        deidentified = " It carries no NHS number." if purpose == "teaching" else ""
        return Outcome(
            f"Here is the {what} of **{submission.reference}**.{deidentified} Save it into the clinical system; "
            f"it is removed from this room after {minutes(self.config.current.viewing_window)}.",
            work,
            after=self._post,
        )

    async def _post(self) -> None:
        await self.media.post_pending()
