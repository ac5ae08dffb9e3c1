"""The clinicians' workspace: the commands of a clinician room, each audited.

Every command that changes something does so in one transaction with its audit entry, the handled-event
mark and the reply; vault files are destroyed and images posted or taken back only after the commit. All
changes to submissions happen under one workspace lock (commands, the viewing-window and retention jobs),
so two clinicians acting on one submission at once are serialised.

A delete is the exception, so that its receipt says what was done: the keys' destruction, the audit entry
and the patient's notice are committed first, then the files are destroyed and the reply is committed. A
crash in between (crash point `mid_delete`) leaves files without keys, which start-up sweeps, and the
replayed command answers that the submission was already deleted. A crop killed after writing its new
version and before the commit (`mid_crop`) leaves a file start-up sweeps; the replay makes it again.

Photos are destroyed (rules 5, 6 and 8) when:
- a clinician deletes the submission (with a reason; the reply is a receipt of what was destroyed where);
- a view-then-delete or intimate submission has been viewed and described, or its viewing window ends;
- a record version is kept: the original is destroyed, only the edited record version stays.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import aiosqlite

from bot.clock import Clock, iso
from bot.conversation.consent import PURPOSES as SHARING_PURPOSES
from bot.conversation.effects import NotifyClinicians
from bot.errors import UserFacingError
from bot.executor import CpuPool
from bot.faults import NO_FAULTS, FaultInjector
from bot.ids import RoomID, UserID
from bot.images.edit import EditedImage, EditError, apply_edits, parse_edit
from bot.reminders import local_time
from bot.texts import Texts
from handlers.alerts import alert
from handlers.commands import Invocation, Outcome, UsageError, format_rows
from handlers.identity import identity_header
from handlers.patient import clinician_notice
from handlers.request_links import RequestLinks, request_link
from handlers.staff_media import StaffMedia, outsiders
from storage.alert_events import AlertEvents
from storage.audit import AuditAction, AuditLog
from storage.consents import ConsentRepository
from storage.database import Database
from storage.deletion_ledger import DeletionLedger, LedgerKind, submission_image_ids
from storage.outbox import Outbox, derive_txn_id
from storage.postings import PostingRepository
from storage.practice_config import LiveConfig
from storage.submissions import Decision, Photo, Status, Submission, SubmissionRepository
from storage.vault import ImageUnreadableError, Vault

log = logging.getLogger(__name__)

_QUEUE_FILTERS = {
    "new": (Status.NEW,),
    "claimed": (Status.CLAIMED,),
    "done": (Status.DONE,),
    "open": (Status.NEW, Status.CLAIMED),
    "all": (Status.NEW, Status.CLAIMED, Status.DONE),
}


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
class ClinicianDesk:
    database: Database
    submissions: SubmissionRepository
    postings: PostingRepository
    consents: ConsentRepository
    outbox: Outbox
    vault: Vault
    pool: CpuPool
    audit: AuditLog
    clock: Clock
    config: LiveConfig
    media: StaffMedia
    lock: asyncio.Lock
    ask_patient_consent: PatientConsentAsker
    open_request: RequestOpener
    ledger: DeletionLedger  # every destruction is written there too: no restored backup brings it back
    faults: FaultInjector = NO_FAULTS
    alerts: AlertEvents | None = None  # each submission's alert, edited (m.replace) as its status changes
    undo_window: timedelta = timedelta(minutes=2)  # a described view-then-delete's photos stay this long
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))  # the practice's time zone
    request_links: RequestLinks | None = None  # `!request link`: None when the web chat is off

    # ---- looking ------------------------------------------------------------------------------------

    async def queue(self, cmd: Invocation) -> Outcome:
        which = cmd.words[0].lower() if cmd.words else "open"
        if which.isdigit():
            which, page_word = "open", which
        else:
            page_word = cmd.words[1] if len(cmd.words) > 1 else "1"
        if which not in _QUEUE_FILTERS:
            raise UsageError(f"I can list {', '.join(_QUEUE_FILTERS)}; not {which[:20]!r}.")
        if not page_word.isdigit() or int(page_word) < 1:
            raise UsageError("The page is a number, like 2.")
        page = int(page_word)
        rows, total = await self.submissions.queue(_QUEUE_FILTERS[which], page)
        if not rows:
            return Outcome(f"No {which} submissions" + (f" on page {page}." if page > 1 else "."))
        pages = (total + 9) // 10
        people = {row.claimed_by: await self._who(UserID(row.claimed_by)) for row in rows if row.claimed_by}
        lines = [_summary(row, self.zone, people.get(row.claimed_by or "")) for row in rows]
        more = f" Page {page} of {pages}: `!queue {which} {page + 1}` for more." if page < pages else ""
        return Outcome(f"**{total} {which}** (newest first).{more}\n" + format_rows(lines))

    async def audit_trail(self, cmd: Invocation) -> Outcome:
        submission = await self._find(cmd)
        entries = await self.audit.entries(submission.reference)
        if not entries:
            return Outcome(f"No audit entries for {submission.reference}.")
        lines = [
            f"{entry.seq}. {entry.at.astimezone(self.zone):%Y-%m-%d %H:%M:%S} {entry.actor}: {entry.action}"
            + (f" ({_details(entry.details)})" if entry.details else "")
            for entry in entries
        ]
        zone = f"times in {self.zone.key}"
        return Outcome(f"**Audit trail of {submission.reference}** ({zone})\n" + format_rows(lines))

    # ---- claiming and viewing -----------------------------------------------------------------------

    async def claim(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd, open_only=True)
            if submission.claimed_by == cmd.sender:
                return Outcome(f"You have already claimed {submission.reference}.")
            before = submission.claimed_by

            who = await self._who(cmd.sender)

            async def work(db: aiosqlite.Connection) -> None:
                await self.submissions.claim(db, submission.submission_id, cmd.sender, cmd.now)
                await self._audit(db, cmd, AuditAction.CLAIM, submission, {"previously": before or ""})
                await self._edit_alerts(db, cmd, submission, f"claimed by {who}")

            note = f" (it was claimed by {before})" if before else ""
            return Outcome(f"You've claimed **{submission.reference}**{note}.", work)

    async def view(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd, with_images=True)
            present = outsiders(self.media.gateway, self.config, cmd.room_id)
            if present:
                return Outcome(_withheld(present))
            photos = await self.submissions.photos(submission.submission_id)
            warnings = await self.submissions.warnings(submission.submission_id)
            window = self.config.current.viewing_window
            expires = cmd.now + window

            async def work(db: aiosqlite.Connection) -> None:
                for index, photo in enumerate(photos):
                    await self.postings.add(
                        db,
                        submission_id=submission.submission_id,
                        room_id=cmd.room_id,
                        txn_id=derive_txn_id(cmd.event_id, 10 + index),
                        kind="view",
                        content={
                            "photo_id": photo.photo_id,
                            "reference": submission.reference,
                            "of": len(photos),
                        },
                        expires_at=expires,
                    )
                await self.submissions.mark_viewed(db, submission.submission_id, cmd.now)
                await self._audit(db, cmd, AuditAction.VIEW, submission, {"photos": len(photos)})

            destroy_note = (
                " This is a VIEW THEN DELETE submission: it is destroyed once you save a description "
                f"(!describe {submission.reference} ...) or when the window ends."
                if submission.view_then_delete
                else ""
            )
            header = await self._identity(submission, photos)
            header[1:1] = [f"⚠️ {warning}" for warning in warnings]  # flags first, before the details
            shown = (
                f"Showing {len(photos)} photo(s) of {submission.reference}{_flags(submission)} below. They are "
                f"removed from this room after {_minutes(window)}.{destroy_note}"
            )

            async def work_and_audit(db: aiosqlite.Connection) -> None:
                await work(db)
                await self._audit(db, cmd, AuditAction.IDENTITY_SHOWN, submission, {"where": "view"})

            # Plain text: the header quotes the patient verbatim (no HTML, no mentions).
            return Outcome("\n".join([*header, "", shown]), work_and_audit, after=self._post, plain=True)

    async def _identity(self, submission: Submission, photos: list[Photo]) -> list[str]:
        try:
            nhs_number: str | None = await self.submissions.nhs_number(submission.submission_id)
        except LookupError:
            nhs_number = None
        requester = None
        if submission.request_id:
            requester_id = await self.submissions.requester(submission.request_id)
            if requester_id is not None:
                name = await self.media.gateway.display_name(UserID(requester_id))
                requester = f"{name} ({requester_id})" if name and name != requester_id else requester_id
        words = await self.submissions.patient_words(submission.submission_id)
        return identity_header(
            submission, nhs_number=nhs_number, words=words, photos=photos, requester=requester
        )

    # ---- deciding -----------------------------------------------------------------------------------

    async def keep(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd, with_images=True)
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
            who = await self._who(cmd.sender)

            async def work(db: aiosqlite.Connection) -> None:
                await self.submissions.decide(db, submission.submission_id, decision)
                await self.submissions.set_status(db, submission.submission_id, Status.DONE, cmd.now)
                for photo in originals:
                    await self.submissions.original_destroyed(db, photo.photo_id, cmd.now)
                await self._ledger_images(db, submission, [photo.photo_id for photo in originals], cmd.now)
                await self._audit(
                    db,
                    cmd,
                    AuditAction.KEEP,
                    submission,
                    {"reason": reason, "originals_destroyed": len(originals)},
                )
                await self._edit_alerts(db, cmd, submission, f"kept for the record by {who}")

            async def after() -> None:
                await self._destroy_files([photo.photo_id for photo in originals])

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
        async with self.lock:
            submission = await self._find(cmd)
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

            who = await self._who(cmd.sender)

            async def work(db: aiosqlite.Connection) -> None:
                await self.submissions.describe(db, submission.submission_id, text, cmd.now)
                await self._audit(db, cmd, AuditAction.DESCRIBE, submission, {"characters": len(text)})
                gone = f"; photos destroyed at {local_time(destroy_at, self.zone)}" if destroy else ""
                await self._edit_alerts(db, cmd, submission, f"described by {who}{gone}")
                if destroy:
                    await self.submissions.schedule_destruction(db, submission.submission_id, destroy_at)

            if not destroy:
                return Outcome(f"Description saved for **{submission.reference}**.", work)
            return Outcome(
                f"Description saved for **{submission.reference}**. As a view-then-delete submission, its photos"
                f" are destroyed at {local_time(destroy_at, self.zone)} (in {_minutes(self.undo_window)}) and removed"
                f" from this room; the patient is then told. `!undo {submission.reference}` before then keeps them.",
                work,
            )

    async def undo(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd, with_images=True)
            if submission.destroy_at is None or submission.destroy_at <= cmd.now:
                raise UserFacingError(
                    f"There is nothing to undo for {submission.reference}: its photos are not waiting to be destroyed."
                )

            async def work(db: aiosqlite.Connection) -> None:
                await self.submissions.schedule_destruction(db, submission.submission_id, None)
                await self._audit(db, cmd, AuditAction.UNDO, submission, {"kept": "photos"})
                await self._edit_alerts(
                    db, cmd, submission, f"destruction undone by {await self._who(cmd.sender)}"
                )

            window_end = (submission.first_viewed_at or cmd.now) + self.config.current.viewing_window
            return Outcome(
                f"The photos of **{submission.reference}** are kept; your description stays saved. As a view-then-"
                f"delete submission they are still destroyed when its viewing window ends"
                f" ({local_time(window_end, self.zone)}), or when you describe it again.",
                work,
            )

    async def edit(self, cmd: Invocation) -> Outcome:
        kind = cmd.name
        async with self.lock:
            submission = await self._find(cmd, with_images=True)
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

            async def work(db: aiosqlite.Connection) -> None:
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
                await self._ledger_images(db, submission, doomed, cmd.now)
                await self._audit(
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
                await self._destroy_files(doomed)

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

    # ---- packages -----------------------------------------------------------------------------------

    async def export(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd)
            kept = submission.decision is not None and submission.decision.kept
            if not kept and not (submission.view_then_delete and submission.description):
                raise UserFacingError(
                    f"Keep **{submission.reference}** first (`!keep {submission.reference} <reason>`), or, for "
                    "a view-then-delete submission, save a description."
                )
            return await self._package(cmd, submission, "record", AuditAction.EXPORT)

    async def share(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd)
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
            return Outcome(_withheld(present))
        who = await self._who(cmd.sender)

        async def work(db: aiosqlite.Connection) -> None:
            await self.postings.add(
                db,
                submission_id=submission.submission_id,
                room_id=cmd.room_id,
                txn_id=derive_txn_id(cmd.event_id, 9),
                kind="export",
                content={"purpose": purpose, "by": cmd.sender},
                expires_at=cmd.now + self.config.current.viewing_window,
            )
            await self._audit(db, cmd, action, submission, {"purpose": purpose})
            await self._edit_alerts(db, cmd, submission, f"{purpose} package exported by {who}")

        what = "record package" if purpose == "record" else f"{purpose} package"
        deidentified = " It carries no NHS number." if purpose == "teaching" else ""
        return Outcome(
            f"Here is the {what} of **{submission.reference}**.{deidentified} Save it into the clinical system; "
            f"it is removed from this room after {_minutes(self.config.current.viewing_window)}.",
            work,
            after=self._post,
        )

    # ---- consent and requests -------------------------------------------------------------------------

    async def consent(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd)
            purpose = cmd.word(1, "The purpose (second-opinion or teaching)").lower()
            if purpose not in SHARING_PURPOSES:
                raise UsageError("The purpose is second-opinion or teaching.")
            consent_id = derive_txn_id(cmd.event_id, 0)
            asked = await self.ask_patient_consent(submission, consent_id, purpose, cmd.sender, cmd.now)
            if not asked:
                return Outcome(
                    f"The patient of {submission.reference} is in the middle of sending photos; ask again later."
                )

            async def work(db: aiosqlite.Connection) -> None:
                await self._audit(db, cmd, AuditAction.CONSENT_ASKED, submission, {"purpose": purpose})

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

        async def work(db: aiosqlite.Connection) -> None:
            await self._audit(
                db, cmd, AuditAction.REQUEST, None, {"request": request_id, "expires_at": iso(expires)}
            )

        return Outcome(
            f"{opened} The request expires {local_time(expires, self.zone)}; the submission will show "
            "it answers your request.",
            work,
        )

    # ---- deleting ---------------------------------------------------------------------------------------

    async def delete(self, cmd: Invocation) -> Outcome:
        async with self.lock:
            submission = await self._find(cmd, deleted_ok=True)
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
        """Keys, audit entry and the patient's notice in one commit; then files, postings and media.

        Once the commit is made the delete cannot be half done: a crash after it leaves files whose keys are
        gone, which start-up sweeps, and postings already due for retraction."""
        who = await self._who(cmd.sender)
        async with self.database.transaction() as db:
            await self._mark_destroyed(db, submission, cmd.now, LedgerKind.SUBMISSION_DELETED)
            await self.submissions.set_status(db, submission.submission_id, Status.DELETED, cmd.now)
            await self.submissions.erase_patient_details(db, submission.submission_id)
            await self._audit(
                db,
                cmd,
                AuditAction.DELETE,
                submission,
                {"reason": reason, "vault_images": len(images)},
            )
            await self._edit_alerts(db, cmd, submission, f"deleted by {who}")
            notice = self._patient_text("photos_deleted_by_practice", submission)
            await self.outbox.add(
                db, submission.room_id, derive_txn_id(cmd.event_id, 1), "message", {"text": notice}
            )
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

    # ---- the viewing window -----------------------------------------------------------------------------

    async def end_viewing_windows(self) -> int:
        """View-then-delete submissions whose viewing window has ended: destroyed, patient told."""
        now = self.clock.now()
        window = self.config.current.viewing_window
        finished = 0
        async with self.lock:
            for submission in await self.submissions.due_for_destruction(now):
                told = [(submission.room_id, self._patient_text("photos_viewed_and_deleted", submission))]
                await self._destroy_images(
                    submission, now, AuditAction.IMAGES_DESTROYED, {"why": "viewed and described"}, told
                )
                finished += 1
            for submission in await self.submissions.viewed_view_then_delete():
                viewed = submission.first_viewed_at
                if viewed is None or viewed + window > now:
                    continue
                notes: list[tuple[RoomID, str]] = [
                    (submission.room_id, self._patient_text("photos_viewed_and_deleted", submission))
                ]
                if submission.description is None:
                    text = (
                        f"**{submission.reference}** (view then delete) was destroyed at the end of its viewing "
                        "window **without a description**."
                    )
                    notes += [(room, text) for room in sorted(self.config.current.clinician_rooms)]
                await self._destroy_images(
                    submission, now, AuditAction.IMAGES_DESTROYED, {"why": "viewing window ended"}, notes
                )
                finished += 1
        if finished:
            await self.media.retract_due()
        return finished

    async def destroy_for_retention(self, submission: Submission, now: datetime) -> None:
        async with self.lock:
            current = await self.submissions.by_id(submission.submission_id)
            if current is None or not current.has_images or (current.decision and current.decision.kept):
                return  # kept or destroyed meanwhile
            await self._destroy_images(current, now, AuditAction.RETENTION_DESTROY, {"why": "unreviewed"}, [])
        await self.media.retract_due()

    async def _destroy_images(
        self,
        submission: Submission,
        now: datetime,
        action: AuditAction,
        details: dict[str, object],
        notes: list[tuple[RoomID, str]],
    ) -> None:
        """Destroy a submission's images by the bot's own decision (the caller holds the lock)."""
        photos = await self.submissions.photos(submission.submission_id)
        async with self.database.transaction() as db:
            await self._mark_destroyed(db, submission, now)
            await self.audit.append(
                db, actor="bot", action=action, subject=submission.reference, details=details
            )
            for index, (room, text) in enumerate(notes):
                source = f"{action.value}:{submission.submission_id}:{room}"
                payload = {"text": text} if room == submission.room_id else alert(text, self.config.current)
                await self.outbox.add(db, room, derive_txn_id(source, index), "message", payload)
        await self._destroy_files([image for photo in photos for image in photo.image_ids])
        log.info("purge: %s images destroyed (%s)", submission.reference, details.get("why", action.value))

    # ---- helpers ------------------------------------------------------------------------------------

    async def _who(self, user_id: UserID) -> str:
        """A person as the room should see them: display name, with the Matrix id that identifies them."""
        name = await self.media.gateway.display_name(user_id)
        return f"{name} ({user_id})" if name and name != user_id else str(user_id)

    async def _edit_alerts(
        self, db: aiosqlite.Connection, cmd: Invocation, submission: Submission, status: str
    ) -> None:
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

    async def _post(self) -> None:
        await self.media.post_pending()

    async def _ledger_images(
        self, db: aiosqlite.Connection, submission: Submission, image_ids: list[str], now: datetime
    ) -> None:
        """Some of a submission's images (an edit's original, a replaced version) go: into the ledger too."""
        if image_ids:
            await self.ledger.record(
                db,
                LedgerKind.IMAGES_DESTROYED,
                now,
                submission_id=submission.submission_id,
                image_ids=image_ids,
            )

    async def _mark_destroyed(
        self,
        db: aiosqlite.Connection,
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

    async def _destroy_files(self, image_ids: list[str]) -> None:
        for image_id in image_ids:
            await self.pool.run(self.vault.destroy, image_id)
        if image_ids:
            await self.database.shred_checkpoint()

    async def _find(
        self, cmd: Invocation, *, open_only: bool = False, with_images: bool = False, deleted_ok: bool = False
    ) -> Submission:
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

    async def _audit(
        self,
        db: aiosqlite.Connection,
        cmd: Invocation,
        action: AuditAction,
        submission: Submission | None,
        details: dict[str, object],
    ) -> None:
        await self.audit.append(
            db,
            actor=cmd.sender,
            action=action,
            subject=submission.reference if submission else "",
            details=details,
        )

    def _patient_text(self, name: str, submission: Submission) -> str:
        texts: Texts = self.config.current.patient_texts()
        return texts.fill(
            getattr(texts, name), practice=self.config.current.practice_name, reference=submission.reference
        )


def _summary(submission: Submission, zone: ZoneInfo, claimed_by: str | None) -> str:
    when = local_time(submission.created_at, zone)
    photos = f"{submission.photo_count} photo(s)" if submission.has_images else "photos destroyed"
    claimed = f", claimed by {claimed_by or submission.claimed_by}" if submission.claimed_by else ""
    kept = ", kept" if submission.decision and submission.decision.kept else ""
    return f"**{submission.reference}** {when}, {photos}, {submission.status.value}{claimed}{kept}{_flags(submission)}"


def _flags(submission: Submission) -> str:
    flags = []
    if submission.intimate:
        flags.append("intimate: describe, then destroy")
    elif not submission.keep_in_record:
        flags.append("view then delete")
    if submission.acting_for_someone:
        flags.append("sent by someone acting for the patient")
    if submission.request_id:
        flags.append("answers a photo request")
    return f" ({'; '.join(flags)})" if flags else ""


def _withheld(present: list[UserID]) -> str:
    names = ", ".join(present[:5])
    return (
        f"I won't post images in this room while {names} (not on the practice's clinician list) "
        "is a member. Remove them, or ask an admin to add them as a clinician, then try again."
    )


def _minutes(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{seconds // 60} minutes"


def _details(details: dict[str, object]) -> str:
    return ", ".join(f"{key}: {str(value)[:80]}" for key, value in sorted(details.items()))
