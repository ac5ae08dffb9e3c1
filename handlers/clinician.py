"""The clinicians' workspace: reading the queue and a submission's audit trail, claiming, viewing.

The commands of a clinician room are grouped by concern, each group a small desk sharing `DeskSupport`
(finding a submission, the audit entry, the alert edits, the workspace lock):
- reading (this module): `!queue`, `!audit`, `!claim`, `!view`;
- deciding (`handlers/clinician_decisions.py`): `!keep`, `!describe`, `!undo`, `!crop`, `!rotate`, `!blur`;
- packages (`handlers/clinician_packages.py`): `!export`, `!share`;
- asking the patient (`handlers/clinician_requests.py`): `!consent`, `!request`;
- deleting (`handlers/clinician_deletion.py`): `!delete`, with a receipt.
`ClinicianDesk` holds the five; the command table (`handlers/staff.py`) maps each command to its desk.

Every command that changes something does so in one transaction with its audit entry, the handled-event
mark and the reply; vault files are destroyed and images posted or taken back only after the commit. All
changes to submissions happen under one workspace lock (commands, the viewing-window and retention jobs),
so two clinicians acting on one submission at once are serialised.

Photos are destroyed (rules 5, 6 and 8) when:
- a clinician deletes the submission (with a reason; the reply is a receipt of what was destroyed where);
- a view-then-delete or intimate submission has been viewed and described, or its viewing window ends
  (`handlers/viewing_windows.py`);
- a record version is kept: the original is destroyed, only the edited record version stays.
Each destruction is carried out by `handlers/destruction.py`, the one place keys, files and rows go together.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.ids import UserID
from bot.reminders import local_time
from handlers.clinician_decisions import DecisionDesk
from handlers.clinician_deletion import DeletionDesk
from handlers.clinician_packages import PackageDesk
from handlers.clinician_requests import RequestDesk
from handlers.commands import Invocation, Outcome, UsageError, format_rows
from handlers.desk_support import DeskSupport, flags, minutes, withheld
from handlers.identity import identity_header
from handlers.staff_media import StaffMedia, outsiders
from storage.audit import AuditAction, AuditLog
from storage.outbox import derive_txn_id
from storage.postings import PostingRepository
from storage.practice_config import LiveConfig
from storage.sql import Connection
from storage.submissions import Photo, Status, Submission, SubmissionRepository

_QUEUE_FILTERS = {
    "new": (Status.NEW,),
    "claimed": (Status.CLAIMED,),
    "done": (Status.DONE,),
    "open": (Status.NEW, Status.CLAIMED),
    "all": (Status.NEW, Status.CLAIMED, Status.DONE),
}


@dataclass(frozen=True)
class ClinicianDesk:
    """Every command of a clinician room, by concern; `command_table` maps each command to one of them."""

    reading: ReadingDesk
    decisions: DecisionDesk
    packages: PackageDesk
    requests: RequestDesk
    deletion: DeletionDesk


@dataclass
class ReadingDesk:
    support: DeskSupport
    submissions: SubmissionRepository
    postings: PostingRepository
    audit: AuditLog
    media: StaffMedia
    config: LiveConfig

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
        people = {
            row.claimed_by: await self.support.who(UserID(row.claimed_by)) for row in rows if row.claimed_by
        }
        lines = [_summary(row, self.support.zone, people.get(row.claimed_by or "")) for row in rows]
        more = f" Page {page} of {pages}: `!queue {which} {page + 1}` for more." if page < pages else ""
        return Outcome(f"**{total} {which}** (newest first).{more}\n" + format_rows(lines))

    async def audit_trail(self, cmd: Invocation) -> Outcome:
        submission = await self.support.find(cmd)
        entries = await self.audit.entries(submission.reference)
        if not entries:
            return Outcome(f"No audit entries for {submission.reference}.")
        lines = [
            f"{entry.seq}. {entry.at.astimezone(self.support.zone):%Y-%m-%d %H:%M:%S} {entry.actor}: {entry.action}"
            + (f" ({_details(entry.details)})" if entry.details else "")
            for entry in entries
        ]
        zone = f"times in {self.support.zone.key}"
        return Outcome(f"**Audit trail of {submission.reference}** ({zone})\n" + format_rows(lines))

    # ---- claiming and viewing -----------------------------------------------------------------------

    async def claim(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd, open_only=True)
            if submission.claimed_by == cmd.sender:
                return Outcome(f"You have already claimed {submission.reference}.")
            before = submission.claimed_by

            who = await self.support.who(cmd.sender)

            async def work(db: Connection) -> None:
                await self.submissions.claim(db, submission.submission_id, cmd.sender, cmd.now)
                await self.support.record(
                    db, cmd, AuditAction.CLAIM, submission, {"previously": before or ""}
                )
                await self.support.edit_alerts(db, cmd, submission, f"claimed by {who}")

            note = f" (it was claimed by {before})" if before else ""
            return Outcome(f"You've claimed **{submission.reference}**{note}.", work)

    async def view(self, cmd: Invocation) -> Outcome:
        async with self.support.lock:
            submission = await self.support.find(cmd, with_images=True)
            present = outsiders(self.media.gateway, self.config, cmd.room_id)
            if present:
                return Outcome(withheld(present))
            photos = await self.submissions.photos(submission.submission_id)
            warnings = await self.submissions.warnings(submission.submission_id)
            window = self.config.current.viewing_window
            expires = cmd.now + window

            async def work(db: Connection) -> None:
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
                await self.support.record(db, cmd, AuditAction.VIEW, submission, {"photos": len(photos)})

            destroy_note = (
                " This is a VIEW THEN DELETE submission: it is destroyed once you save a description "
                f"(!describe {submission.reference} ...) or when the window ends."
                if submission.view_then_delete
                else ""
            )
            header = await self._identity(submission, photos)
            header[1:1] = [f"⚠️ {warning}" for warning in warnings]  # flags first, before the details
            shown = (
                f"Showing {len(photos)} photo(s) of {submission.reference}{flags(submission)} below. They are "
                f"removed from this room after {minutes(window)}.{destroy_note}"
            )

            async def work_and_audit(db: Connection) -> None:
                await work(db)
                await self.support.record(db, cmd, AuditAction.IDENTITY_SHOWN, submission, {"where": "view"})

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

    async def _post(self) -> None:
        await self.media.post_pending()


def _summary(submission: Submission, zone: ZoneInfo, claimed_by: str | None) -> str:
    when = local_time(submission.created_at, zone)
    photos = f"{submission.photo_count} photo(s)" if submission.has_images else "photos destroyed"
    claimed = f", claimed by {claimed_by or submission.claimed_by}" if submission.claimed_by else ""
    kept = ", kept" if submission.decision and submission.decision.kept else ""
    return f"**{submission.reference}** {when}, {photos}, {submission.status.value}{claimed}{kept}{flags(submission)}"


def _details(details: dict[str, object]) -> str:
    return ", ".join(f"{key}: {str(value)[:80]}" for key, value in sorted(details.items()))
