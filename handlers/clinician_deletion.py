"""A clinician's `!delete`: a submission destroyed everywhere, for good, with a receipt of what was done where.

So that its receipt says what was done, a delete is carried out before its reply is committed: the keys'
destruction, the audit entry and the patient's notice are committed first, then the files are destroyed and
the reply is committed (`handlers/destruction.py`). A crash in between (crash point `mid_delete`) leaves
files without keys, which start-up sweeps, and the replayed command answers that the submission was already
deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserFacingError
from handlers.commands import Invocation, Outcome, format_rows
from handlers.desk_support import DeskSupport
from handlers.destruction import Destruction, DestructionReceipt, patient_text
from storage.audit import AuditAction
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.sql import Connection, Database
from storage.submissions import Status, Submission, SubmissionRepository


@dataclass
class DeletionDesk:
    support: DeskSupport
    database: Database
    submissions: SubmissionRepository
    outbox: Outbox
    destruction: Destruction
    config: LiveConfig

    async def delete(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd, deleted_ok=True)
            if submission.status is Status.DELETED:
                # Typed again, or replayed after the bot died half way through: the keys went with the
                # first commit and start-up swept the files; make sure no old database page keeps a key.
                await self.database.shred_checkpoint()
                raise UserFacingError(f"{submission.reference} was already deleted.")
            reason = cmd.rest(1, "The reason for deleting it")
            if not cmd.confirmed:
                return Outcome(
                    f"This destroys **{submission.reference}** everywhere, for good: its photos, their keys and "
                    "the patient's details. Reply **yes** within a minute, or send the same command again, to "
                    "delete it.",
                    confirm=cmd.typed,
                )
            photos = await self.submissions.photos(submission.submission_id)
            images = [image for photo in photos for image in photo.image_ids]
            # The destruction happens before the reply is queued, so the receipt is what was done.
            receipt = await self._delete_now(cmd, submission, images, reason)
            return Outcome(f"**Deleted {submission.reference}.** Receipt:\n" + format_rows(receipt.lines()))

    async def _delete_now(
        self, cmd: Invocation, submission: Submission, images: list[str], reason: str
    ) -> DestructionReceipt:
        """Keys, audit entry and the patient's notice in one commit; then files, postings and media."""
        who = await self.support.who(cmd.sender)

        async def record(db: Connection) -> None:
            await self.support.record(
                db,
                cmd,
                AuditAction.DELETE,
                submission,
                {"reason": reason, "vault_images": len(images)},
            )
            await self.support.edit_alerts(db, cmd, submission, f"deleted by {who}")
            notice = patient_text(self.config.current, "photos_deleted_by_practice", submission)
            await self.outbox.add(
                db, submission.room_id, derive_txn_id(cmd.event_id, 1), "message", {"text": notice}
            )

        return await self.destruction.delete_submission(submission, images, cmd.now, record)
