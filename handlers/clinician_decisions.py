"""Clinicians' decisions on a submission: keep it for the record, describe it, undo a destruction, edit a photo.

Keeping an edited photo destroys its original, and an edit replaces the previous record version: both are
destroyed through `handlers/destruction.py` after the commit. A crop killed after writing its new version
and before the commit (crash point `mid_crop`) leaves a file start-up sweeps; the replay makes it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.errors import UserFacingError
from bot.executor import CpuPool
from bot.faults import NO_FAULTS, FaultInjector
from bot.images.edit import EditedImage, EditError, apply_edits, parse_edit
from bot.reminders import local_time
from handlers.commands import Invocation, Outcome, UsageError
from handlers.desk_support import DeskSupport, minutes
from handlers.destruction import Destruction
from storage.audit import AuditAction
from storage.practice_config import LiveConfig
from storage.sql import Connection
from storage.submissions import Decision, Photo, Status, Submission, SubmissionRepository
from storage.vault import ImageUnreadableError, ImageVault


@dataclass
class DecisionDesk:
    support: DeskSupport
    submissions: SubmissionRepository
    vault: ImageVault
    pool: CpuPool
    destruction: Destruction  # a kept photo's original, a replaced record version
    config: LiveConfig
    faults: FaultInjector = NO_FAULTS
    undo_window: timedelta = timedelta(minutes=2)  # a described view-then-delete's photos stay this long

    async def keep(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd, with_images=True)
            reason = cmd.rest(1, "The risk-benefit reason for keeping it")
            if submission.view_then_delete:
                why = (
                    "it is of an intimate area"
                    if submission.intimate
                    else "the patient chose view then delete"
                )
                raise UserFacingError(
                    f"{submission.reference} can't be kept: {why}. Describe it with "
                    f"`!describe {submission.reference} ...` and it will be destroyed."
                )
            photos = await self.submissions.photos(submission.submission_id)
            originals = [photo for photo in photos if photo.record_image_id and not photo.original_destroyed]
            decision = Decision(True, reason, cmd.sender, cmd.now)
            who = await self.support.who(cmd.sender)

            async def work(db: Connection) -> None:
                await self.submissions.decide(db, submission.submission_id, decision)
                await self.submissions.set_status(db, submission.submission_id, Status.DONE, cmd.now)
                for photo in originals:
                    await self.submissions.original_destroyed(db, photo.photo_id, cmd.now)
                await self.destruction.ledger_images(
                    db, submission, [photo.photo_id for photo in originals], cmd.now
                )
                await self.support.record(
                    db,
                    cmd,
                    AuditAction.KEEP,
                    submission,
                    {"reason": reason, "originals_destroyed": len(originals)},
                )
                await self.support.edit_alerts(db, cmd, submission, f"kept for the record by {who}")

            async def after() -> None:
                await self.destruction.destroy_files([photo.photo_id for photo in originals])

            extra = (
                f" The original of {len(originals)} edited photo(s) is destroyed; the record version stays."
                if originals
                else ""
            )
            return Outcome(
                f"**{submission.reference}** is kept for the record, with your reason.{extra} "
                f"`!export {submission.reference}` makes the record package.",
                work,
                after,
            )

    async def describe(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd)
            text = cmd.rest(1, "The description")
            destroy = (
                submission.view_then_delete
                and submission.first_viewed_at is not None
                and submission.has_images
            )
            if destroy and not cmd.confirmed:
                return Outcome(
                    f"Saving this description destroys the photos of **{submission.reference}** (view then delete)"
                    " once the undo window ends. Reply **yes** within a minute, or send the same command again, to"
                    " save it.",
                    confirm=cmd.typed,
                )
            destroy_at = cmd.now + self.undo_window

            who = await self.support.who(cmd.sender)

            async def work(db: Connection) -> None:
                await self.submissions.describe(db, submission.submission_id, text, cmd.now)
                await self.support.record(
                    db, cmd, AuditAction.DESCRIBE, submission, {"characters": len(text)}
                )
                gone = f"; photos destroyed at {local_time(destroy_at, self.support.zone)}" if destroy else ""
                await self.support.edit_alerts(db, cmd, submission, f"described by {who}{gone}")
                if destroy:
                    await self.submissions.schedule_destruction(db, submission.submission_id, destroy_at)

            if not destroy:
                return Outcome(f"Description saved for **{submission.reference}**.", work)
            return Outcome(
                f"Description saved for **{submission.reference}**. As a view-then-delete submission, its photos"
                f" are destroyed at {local_time(destroy_at, self.support.zone)} (in {minutes(self.undo_window)}) and removed"
                f" from this room; the patient is then told. `!undo {submission.reference}` before then keeps them.",
                work,
            )

    async def undo(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd, with_images=True)
            if submission.destroy_at is None or submission.destroy_at <= cmd.now:
                raise UserFacingError(
                    f"There is nothing to undo for {submission.reference}: its photos are not waiting to be destroyed."
                )

            async def work(db: Connection) -> None:
                await self.submissions.schedule_destruction(db, submission.submission_id, None)
                await self.support.record(db, cmd, AuditAction.UNDO, submission, {"kept": "photos"})
                await self.support.edit_alerts(
                    db, cmd, submission, f"destruction undone by {await self.support.who(cmd.sender)}"
                )

            window_end = (submission.first_viewed_at or cmd.now) + self.config.current.viewing_window
            return Outcome(
                f"The photos of **{submission.reference}** are kept; your description stays saved. As a view-then-"
                f"delete submission they are still destroyed when its viewing window ends"
                f" ({local_time(window_end, self.support.zone)}), or when you describe it again.",
                work,
            )

    async def edit(self, cmd: Invocation) -> Outcome:
        kind = cmd.name
        async with self.support.lock:
            submission = await self.support.find(cmd, with_images=True)
            photo = await self._photo(submission, cmd.word(1, "The photo number"))
            try:
                edit = parse_edit(kind, cmd.words[2:])
            except EditError as error:
                raise UsageError(str(error)) from None
            data = await self._read(photo)
            max_pixels = self.config.current.max_pixels
            try:
                edited: EditedImage = await self.pool.run(apply_edits, data, [edit], max_pixels=max_pixels)
            except EditError as error:
                raise UserFacingError(str(error)) from None
            del data
            new_id = f"{photo.photo_id}-r{len(photo.edits) + 1}"
            stored = await self.pool.run(self.vault.put, new_id, edited.data)
            # A crash here leaves a record-version file without a row: start-up sweeps it, and the
            # replayed command makes it again. The clinician sees the old version or the new, never both.
            self.faults.hit("mid_crop")
            described = f"{kind} {' '.join(cmd.words[2:])}"
            edits = (*photo.edits, described)
            kept = submission.decision is not None and submission.decision.kept
            previous = photo.record_image_id
            destroy_original = kept and not photo.original_destroyed
            doomed = ([previous] if previous else []) + ([photo.photo_id] if destroy_original else [])

            async def work(db: Connection) -> None:
                await self.submissions.set_record_version(
                    db,
                    photo.photo_id,
                    image_id=new_id,
                    wrapped_key=stored.wrapped_key,
                    size=stored.size,
                    digest=stored.digest,
                    edits=edits,
                )
                if destroy_original:
                    await self.submissions.original_destroyed(db, photo.photo_id, cmd.now)
                await self.destruction.ledger_images(db, submission, doomed, cmd.now)
                await self.support.record(
                    db,
                    cmd,
                    AuditAction.EDIT,
                    submission,
                    {
                        "photo": photo.number,
                        "edit": described,
                        "width": edited.width,
                        "height": edited.height,
                    },
                )

            async def after() -> None:
                await self.destruction.destroy_files(doomed)

            original = (
                " The original is destroyed."
                if destroy_original
                else " The original is destroyed when you keep it."
                if not photo.original_destroyed
                else ""
            )
            return Outcome(
                f"Photo {photo.number} of **{submission.reference}** is now {edited.width}x{edited.height} "
                f"(record version, {len(edits)} edit(s)).{original} `!view {submission.reference}` shows it.",
                work,
                after,
            )

    async def _photo(self, submission: Submission, number: str) -> Photo:
        photos = await self.submissions.photos(submission.submission_id)
        if not number.isdigit() or not 1 <= int(number) <= len(photos):
            raise UsageError(f"{submission.reference} has photos 1 to {len(photos)}.")
        return photos[int(number) - 1]

    async def _read(self, photo: Photo) -> bytes:
        try:
            return await self.pool.run(self.vault.get, photo.image_id, photo.image_key)
        except ImageUnreadableError:
            raise UserFacingError(
                "That photo can no longer be read (it was destroyed or is damaged)."
            ) from None
