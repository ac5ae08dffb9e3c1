"""Carrying out a patient conversation's effects, in one place.

In the step's transaction (`record`): the conversation's new state, then one row per effect: the outbox
(replies, redactions, leaving, clinician alerts), the photos the step dropped (rows and keys, with the
deletion ledger), the submission (with its photos and the request it answers), a consent answer. After
the commit (`carry_out`): the dropped photos' files, the outbox sent, the uploads purged from the
homeserver. A crash between the two is finished by the outbox, the media ledger and the vault's sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import iso
from bot.conversation import (
    AskConsent,
    Conversation,
    DestroyPhotos,
    Effect,
    Input,
    NotifyClinicians,
    PhotoStored,
    PurgeMedia,
    RecordConsent,
    Redact,
    RedactOwn,
    Reply,
    Submit,
)
from bot.ids import RoomID
from bot.keyring import Keyring
from bot.matrix.events import Incoming, MediaMessage, OtherMessage
from bot.matrix.message_content import CHOICES
from bot.matrix.mxc import is_local
from bot.matrix.port import MatrixPort
from bot.reminders import local_time
from handlers.alerts import alert
from handlers.delivery import (
    ALERT_OF,
    FIRST_CONTACT,
    NOTIFY,
    PHOTO_CONFIRMATION,
    PRIVATE,
    REMOVAL_REQUIRED,
    Delivery,
)
from handlers.media_purge import purge_pending_media
from handlers.photo_intake import StoredPhoto
from storage.audit import AuditAction, AuditLog
from storage.consents import ConsentRepository
from storage.conversations import ConversationRepository
from storage.media_ledger import MediaLedger
from storage.outbox import Outbox, derive_room_txn_id, derive_txn_id
from storage.photo_requests import PhotoRequestRepository
from storage.photo_store import PhotoStore
from storage.practice_config import LiveConfig
from storage.sql import Connection
from storage.submissions import SubmissionRepository

log = logging.getLogger(__name__)


def clinician_notice(notice: NotifyClinicians) -> str:
    """What the clinician room is told: no image, no NHS number, no patient words."""
    storage = "may be kept in the record" if notice.keep_in_record else "view then delete"
    flags = []
    if notice.intimate:
        flags.append("**intimate area**: describe, then destroy")
    if notice.acting_for_someone:
        flags.append("sent by someone acting for the patient")
    extra = f" ({'; '.join(flags)})" if flags else ""
    photos = "1 photo" if notice.photo_count == 1 else f"{notice.photo_count} photos"
    warnings = "".join(f"\n⚠️ {warning}" for warning in notice.warnings)
    return f"New photo request **{notice.reference}**: {photos}, {storage}{extra}.{warnings}"


@dataclass
class SubmissionRecords:
    """A patient's submission: its row, its photos tied to it, the clinician's request it answers."""

    submissions: SubmissionRepository
    requests: PhotoRequestRepository
    photos: PhotoStore
    keyring: Keyring

    async def record(self, db: Connection, room_id: RoomID, submit: Submit) -> None:
        submission_id = submit.conversation_id
        details: dict[str, Any] = {
            "notes": list(submit.notes),
            "requested_area": submit.requested_area,
            "warnings": list(submit.warnings),
            "earlier_screenings": [screening.to_dict() for screening in submit.earlier_screenings],
        }
        await self.submissions.insert(
            db,
            submission_id,
            reference=submit.reference,
            room_id=room_id,
            nhs_number=submit.nhs_number,
            nhs_lookup=self.keyring.lookup_hash(submit.nhs_number, purpose="nhs-number"),
            keep_in_record=submit.keep_in_record,
            intimate=submit.intimate,
            acting_for_someone=submit.acting_for_someone,
            details=details,
            created_at=submit.submitted_at,
            request_id=submit.request_id,
        )
        if submit.request_id is not None:
            await self.requests.answered(db, submit.request_id)
        await self.photos.attach(db, submission_id, submit.photo_ids)


@dataclass
class ConsentRecords:
    """A clinician's consent question and the patient's answer: their rows, the audit entry, the alert."""

    consents: ConsentRepository
    audit: AuditLog
    outbox: Outbox
    config: LiveConfig
    zone: ZoneInfo  # the practice's time zone, for the time of an answer shown to clinicians

    async def ask(self, db: Connection, ask: AskConsent, submission_id: str, asked_by: str) -> None:
        """The clinician's question, recorded as it is put in the patient's chat."""
        await self.consents.ask(
            db, ask.consent_id, submission_id=submission_id, purpose=ask.purpose, by=asked_by, now=ask.now
        )

    async def answer(self, db: Connection, effect: RecordConsent, source: str, index: int) -> None:
        submission_id = await self.consents.answer(
            db, effect.consent_id, effect.agreed, effect.given_by, effect.answered_at
        )
        if submission_id is None:
            return  # a question from a deleted submission: nothing to record against
        answer = "yes" if effect.agreed else "no"
        await self.audit.append(
            db,
            actor="patient",
            action=AuditAction.CONSENT_ANSWERED,
            subject=effect.reference,
            details={"purpose": effect.purpose, "answer": answer, "given_by": effect.given_by},
        )
        who = (
            "the patient" if effect.given_by == "patient" else "a person with legal authority for the patient"
        )
        text = (
            f"Consent to **{effect.purpose}** for **{effect.reference}**: **{answer}**, given by {who} "
            f"at {local_time(effect.answered_at, self.zone)} ({self.zone.key})."
        )
        for clinician_room in sorted(self.config.current.clinician_rooms):
            txn_id = derive_room_txn_id(source, clinician_room, index)
            await self.outbox.add(db, clinician_room, txn_id, "message", alert(text, self.config.current))


@dataclass
class Effects:
    conversations: ConversationRepository
    outbox: Outbox
    photos: PhotoStore
    submissions: SubmissionRecords
    consents: ConsentRecords
    config: LiveConfig
    delivery: Delivery
    media: MediaLedger
    gateway: MatrixPort

    # ---- in the step's transaction ------------------------------------------------------------------

    async def record(
        self,
        db: Connection,
        room_id: RoomID,
        source: str,
        conversation: Conversation,
        effects: tuple[Effect, ...],
        *,
        about_photo: bool = False,
    ) -> None:
        """The conversation's new state and a row for each effect. `about_photo`: the replies answer a
        stored photo (they tell the patient it is safe), which the outbox marks for delivery's
        `before_confirmation_reply` crash point."""
        await self.conversations.save(
            db, room_id, conversation.state.value, conversation.to_dict(), iso(conversation.last_activity_at)
        )
        for index, effect in enumerate(effects):
            txn_id = derive_txn_id(source, index)
            match effect:
                case Reply(text=text, private=private, choices=choices):
                    # Every reply to a patient is a question or an outcome: it notifies (issue 15).
                    payload: dict[str, Any] = {"text": text, NOTIFY: True}
                    if choices:  # buttons for clients that show them (the web chat); Element ignores them
                        payload[CHOICES] = [{"label": c.label, "answer": c.answer} for c in choices]
                    if private is not None:
                        payload[PRIVATE] = private
                    if source.startswith("begin:"):
                        payload[FIRST_CONTACT] = True  # waits until the patient's device keys are known
                    if about_photo:
                        payload[PHOTO_CONFIRMATION] = True
                    await self.outbox.add(db, room_id, txn_id, "message", payload)
                case Redact(event_id=event_id, reason=reason):
                    # Required: if the homeserver forbids it, the chat is closed and nothing after it
                    # (such as "I've removed your message") is ever sent.
                    redaction = {"event_id": event_id, "reason": reason, REMOVAL_REQUIRED: True}
                    await self.outbox.add(db, room_id, txn_id, "redaction", redaction)
                case RedactOwn(private=private, reason=reason):
                    await self.outbox.add(
                        db, room_id, txn_id, "redaction_own", {PRIVATE: private, "reason": reason}
                    )
                case DestroyPhotos(photo_ids=photo_ids):
                    await self.photos.drop(db, photo_ids)
                case Submit():
                    await self.submissions.record(db, room_id, effect)
                    log.info("submission %s recorded: %d photo(s)", effect.reference, len(effect.photo_ids))
                case NotifyClinicians():
                    for clinician_room in sorted(self.config.current.clinician_rooms):
                        text = clinician_notice(effect)
                        room_txn_id = derive_room_txn_id(source, clinician_room, index)
                        payload = alert(text, self.config.current) | {ALERT_OF: effect.reference}
                        await self.outbox.add(db, clinician_room, room_txn_id, "message", payload)
                case PurgeMedia():
                    pass  # the media ledger already lists the event's uploads; purged after the commit
                case RecordConsent():
                    await self.consents.answer(db, effect, source, index)

    async def keep_photo(
        self,
        db: Connection,
        room_id: RoomID,
        conversation: Conversation,
        step_input: Input,
        photo: StoredPhoto,
        *,
        caption: str | None = None,
    ) -> None:
        """The stored photo's row, if the step kept it (over the limit or cancelled: its file is destroyed
        as the step's `DestroyPhotos` says)."""
        if not isinstance(step_input, PhotoStored) or step_input.photo_id not in conversation.all_photo_ids:
            return
        await self.photos.keep(
            db,
            photo.image,
            room_id=room_id,
            conversation_id=conversation.conversation_id,
            mime=photo.mime,
            source_format=photo.source_format,
            quality=step_input.quality_issues,
            created_at=step_input.now,
            caption=caption,
        )

    async def list_uploads(self, db: Connection, event: Incoming) -> None:
        """List the uploads a removed message pointed at in the media ledger, with who sent it and when, so
        the purge can check with the homeserver that they are the patient's (`handlers.media_purge`)."""
        if isinstance(event, MediaMessage | OtherMessage) and event.media_urls:
            await self.media.add(
                db,
                event.room_id,
                event.event_id,
                event.media_urls,
                sender=event.sender,
                sent_at_ms=event.timestamp_ms,
                remote=[url for url in event.media_urls if not is_local(url, self.gateway.server_name)],
            )

    async def queue(
        self, db: Connection, room_id: RoomID, txn_id: str, kind: str, payload: dict[str, Any]
    ) -> None:
        """One outbox item outside a step (a refusal, a notice, a removal, leaving), sent by `send`."""
        await self.outbox.add(db, room_id, txn_id, kind, payload)

    async def discard_queued(self, db: Connection, room_id: RoomID) -> None:
        """Everything still queued for the room is given up (the chat is being closed)."""
        await self.outbox.discard_room(db, room_id)

    async def give_up(self, item_id: int) -> None:
        """An outbox item that can no longer be carried out."""
        await self.outbox.done(item_id)

    # ---- after the commit ----------------------------------------------------------------------------

    async def carry_out(self, room_id: RoomID, effects: tuple[Effect, ...]) -> None:
        """After the commit: destroy dropped photos' files, send the outbox, purge uploads."""
        destroyed: Sequence[str] = [
            photo_id
            for effect in effects
            if isinstance(effect, DestroyPhotos)
            for photo_id in effect.photo_ids
        ]
        await self.photos.destroy_files(destroyed)
        await self.delivery.flush(room_id)
        if any(isinstance(effect, NotifyClinicians | RecordConsent) for effect in effects):
            for clinician_room in self.config.current.clinician_rooms:
                await self.delivery.flush(clinician_room)
        if any(isinstance(effect, PurgeMedia) for effect in effects):
            await self.purge_media()

    async def send(self, room_id: RoomID) -> None:
        """Send what the room's outbox holds."""
        await self.delivery.flush(room_id)

    async def purge_media(self) -> None:
        """Delete from the homeserver the patient's uploads the media ledger lists."""
        await purge_pending_media(self.media, self.gateway)
