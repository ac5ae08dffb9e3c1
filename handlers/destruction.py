"""The one place stored images are destroyed: ledger entry, keys, row state, files, postings and media.

Used alike by a clinician's `!delete`, by a kept or edited photo's replaced versions, by the end of a
view-then-delete submission's viewing window and by the retention job. Every destruction follows the same
order: in one transaction the deletion-ledger entry (so a restored backup cannot bring the images back),
the destruction of the keys in the rows and the expiry of the submission's postings; only after the commit
are the vault files destroyed and the database's old pages shredded. A crash in between leaves files whose
keys are gone, which start-up sweeps.

A submission's deletion also takes back what was posted (the clinician room's messages and their uploads)
and returns a `DestructionReceipt`: exactly what was destroyed where. A crash while its files are being
destroyed (crash point `mid_delete`) leaves some files without keys, which start-up sweeps.

The callers hold the workspace lock: destruction never takes it itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.executor import CpuPool
from bot.faults import NO_FAULTS, FaultInjector
from bot.ids import RoomID
from bot.texts import Texts
from handlers.staff_media import StaffMedia
from storage.audit import AuditAction, AuditLog
from storage.deletion_ledger import DeletionLedger, LedgerKind, submission_image_ids
from storage.outbox import Outbox, derive_txn_id
from storage.postings import PostingRepository
from storage.practice_config import PracticeConfig
from storage.sql import Connection, Database
from storage.submissions import Status, Submission, SubmissionRepository
from storage.vault import ImageVault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DestructionReceipt:
    """Exactly what was destroyed where, for the clinician's reply and the audit entry."""

    vault_images: tuple[str, ...] = ()
    chat_messages_redacted: int = 0
    media: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        media = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.media.items())) or "none"
        return [
            f"vault: {len(self.vault_images)} image key(s) and file(s) destroyed"
            + (f" ({', '.join(self.vault_images)})" if self.vault_images else ""),
            f"clinician room: {self.chat_messages_redacted} posted image message(s) redacted",
            f"homeserver media of posted images: {media}",
            "patient chat: the patient's photo messages were redacted, and their uploads deleted, when the "
            "photos were accepted",
        ]


Record = Callable[[Connection], Awaitable[None]]


def patient_text(config: PracticeConfig, name: str, submission: Submission) -> str:
    """A text the patient sees about their submission, in the practice's current wording."""
    texts: Texts = config.patient_texts()
    return texts.fill(getattr(texts, name), practice=config.practice_name, reference=submission.reference)


@dataclass
class Destruction:
    database: Database
    submissions: SubmissionRepository
    postings: PostingRepository
    outbox: Outbox
    vault: ImageVault
    pool: CpuPool
    audit: AuditLog
    ledger: DeletionLedger  # every destruction is written there too: no restored backup brings it back
    media: StaffMedia
    faults: FaultInjector = NO_FAULTS

    async def delete_submission(
        self, submission: Submission, images: Sequence[str], now: datetime, record: Record
    ) -> DestructionReceipt:
        """A clinician's delete: keys, patient details and `record` (audit, notices) in one commit; then
        files, postings and media, and the receipt of what was done.

        Once the commit is made the delete cannot be half done: a crash after it leaves files whose keys are
        gone, which start-up sweeps, and postings already due for retraction."""
        async with self.database.transaction() as db:
            await self.mark_destroyed(db, submission, now, LedgerKind.SUBMISSION_DELETED)
            await self.submissions.set_status(db, submission.submission_id, Status.DELETED, now)
            await self.submissions.erase_patient_details(db, submission.submission_id)
            await record(db)
        destroyed = []
        for index, image in enumerate(images):
            if index:
                self.faults.hit("mid_delete")  # some of the submission's files are gone, not all
            if await self.pool.run(self.vault.destroy, image):
                destroyed.append(image)
        await self.database.shred_checkpoint()
        redacted = 0
        media: dict[str, int] = {}
        for posting in await self.postings.of_submission(submission.submission_id):
            if posting.status == "retracted":
                continue
            was_redacted, outcome = await self.media.retract(posting)
            redacted += was_redacted
            if posting.upload is not None:
                media[outcome] = media.get(outcome, 0) + 1
        return DestructionReceipt(tuple(destroyed), redacted, media)

    async def destroy_images(
        self,
        submission: Submission,
        now: datetime,
        action: AuditAction,
        details: dict[str, object],
        notes: Sequence[tuple[RoomID, dict[str, object]]],
    ) -> None:
        """Destroy a submission's images by the bot's own decision, telling `notes` (room, message payload).

        The caller holds the workspace lock; the posted copies are taken back by `retract_due`."""
        photos = await self.submissions.photos(submission.submission_id)
        async with self.database.transaction() as db:
            await self.mark_destroyed(db, submission, now)
            await self.audit.append(
                db, actor="bot", action=action, subject=submission.reference, details=details
            )
            for index, (room, payload) in enumerate(notes):
                source = f"{action.value}:{submission.submission_id}:{room}"
                await self.outbox.add(db, room, derive_txn_id(source, index), "message", payload)
        await self.destroy_files([image for photo in photos for image in photo.image_ids])
        log.info("purge: %s images destroyed (%s)", submission.reference, details.get("why", action.value))

    async def retract_due(self) -> None:
        """Take back the posted copies whose window has ended (a destruction ends them at once)."""
        await self.media.retract_due()

    async def mark_destroyed(
        self,
        db: Connection,
        submission: Submission,
        now: datetime,
        kind: LedgerKind = LedgerKind.SUBMISSION_IMAGES_DESTROYED,
    ) -> None:
        """The one place a submission's images are destroyed: ledger entry, keys, status, postings' windows."""
        images = await submission_image_ids(db, submission.submission_id)
        await self.ledger.record(db, kind, now, submission_id=submission.submission_id, image_ids=images)
        await self.submissions.images_destroyed(db, submission.submission_id, now)
        if submission.status in (Status.NEW, Status.CLAIMED):
            await self.submissions.set_status(db, submission.submission_id, Status.DONE, now)
        await self.postings.expire_now(db, submission.submission_id)

    async def ledger_images(
        self, db: Connection, submission: Submission, image_ids: Sequence[str], now: datetime
    ) -> None:
        """Some of a submission's images (an edit's original, a replaced version) go: into the ledger too.

        The caller changes their rows in the same transaction and calls `destroy_files` after the commit."""
        if image_ids:
            await self.ledger.record(
                db,
                LedgerKind.IMAGES_DESTROYED,
                now,
                submission_id=submission.submission_id,
                image_ids=list(image_ids),
            )

    async def destroy_files(self, image_ids: Sequence[str]) -> None:
        """After the commit that destroyed their keys: the vault files, then the database's old pages."""
        for image_id in image_ids:
            await self.pool.run(self.vault.destroy, image_id)
        if image_ids:
            await self.database.shred_checkpoint()
