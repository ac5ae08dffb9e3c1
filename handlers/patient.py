"""The patient's side: turns Matrix events into conversation inputs, commits each step, carries out effects.

For every event, under the room's lock (taken by the router):
  load the conversation -> (for a photo: admit, download, clean, encrypt into the vault) -> `step` ->
  one transaction: new state + handled-event mark + outbox rows + photo/submission rows + media ledger ->
  then, after the commit: destroy vault files, send the outbox, purge media from the homeserver.
A crash anywhere before the commit replays the event from the sync checkpoint; after it, the outbox and
the media ledger finish the job. The photo id is derived from the event id, so a replay stores once.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from bot.clock import Clock, iso
from bot.conversation import (
    Admit,
    AskConsent,
    Begin,
    Conversation,
    DestroyPhotos,
    Edit,
    Effect,
    Expire,
    Input,
    NotifyClinicians,
    PhotoNotExpected,
    PhotoRejected,
    PhotoStored,
    Policy,
    PurgeMedia,
    Reaction,
    RecordConsent,
    Redact,
    RedactOwn,
    Refuse,
    Reply,
    RoomUnsafe,
    State,
    Submit,
    Text,
    Undecryptable,
    Unsupported,
    photo_admission,
    step,
)
from bot.errors import StorageFullError, TransientError, error_reference
from bot.executor import CpuPool
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID, UserID
from bot.images import CleanPhoto, Limits, Rejected, process_photo
from bot.keyring import Keyring, Sealer
from bot.matrix.attachments import AttachmentError
from bot.matrix.events import (
    EditMessage,
    Incoming,
    MediaKind,
    MediaMessage,
    MembershipChange,
    OtherMessage,
    ReactionMessage,
    TextMessage,
    UndecryptableMessage,
)
from bot.matrix.gateway import MatrixGateway, decrypt_file
from bot.matrix.mxc import is_local
from bot.metrics import BotMetrics, PhotoTiming
from bot.reminders import local_time
from bot.room_safety import Unsafe
from handlers.alerts import alert
from handlers.attachment_fetch import AttachmentUnavailable, fetch_attachment
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
from handlers.room_locks import RoomLocks
from storage.audit import AuditAction, AuditLog
from storage.consents import ConsentRepository
from storage.conversations import ConversationRepository
from storage.database import Database, database_busy
from storage.deletion_ledger import DeletionLedger, LedgerKind
from storage.handled_events import HandledEvents
from storage.media_ledger import MediaLedger
from storage.outbox import Outbox, derive_room_txn_id, derive_txn_id
from storage.photo_requests import PhotoRequestRepository
from storage.photos import PhotoRepository
from storage.practice_config import LiveConfig, PracticeConfig
from storage.rooms import RoomKind, RoomRepository
from storage.submissions import SubmissionRepository
from storage.vault import StoredImage, Vault

log = logging.getLogger(__name__)

_UNSUPPORTED_KINDS = {MediaKind.VIDEO: "video", MediaKind.AUDIO: "voice message"}
# A photo that cannot be written for one of these is kept unhandled and tried again, not refused.
_STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# Photos downloaded, cleaned and stored at once, across all patients. Each holds ~20 MB at its peak (the
# ciphertext, the plaintext, the cleaned copy, the sealed copy), so the bot's memory is bounded by this, not
# by how many patients send at once (bench/: 490 MB for 50 patients without it). Twice the CPU pool's
# default workers keeps the pool busy while the next photos download.
PHOTOS_IN_FLIGHT = 4


def patient_policy(config: PracticeConfig, *, test_mode: bool) -> Policy:
    return Policy(
        practice_name=config.practice_name,
        max_photos=config.max_photos,
        test_mode=test_mode,
        media_purge_enabled=bool(config.homeserver_admin_token),
        texts=config.patient_texts(),
        screening_memory=config.screening_memory,
    )


def photo_id_for(event_id: EventID) -> str:
    """The same id every time the same event is handled: a replay overwrites, never duplicates."""
    digest = hashlib.sha256(b"photo\x00" + event_id.encode()).digest()[:20]
    return base64.b32encode(digest).decode().rstrip("=").lower()


@dataclass
class PatientHandler:
    database: Database
    keyring: Keyring
    sealer: Sealer
    conversations: ConversationRepository
    rooms: RoomRepository
    handled: HandledEvents
    outbox: Outbox
    media: MediaLedger
    delivery: Delivery
    gateway: MatrixGateway
    vault: Vault
    pool: CpuPool
    clock: Clock
    faults: FaultInjector
    config: LiveConfig
    test_mode: bool
    locks: RoomLocks
    consents: ConsentRepository
    audit: AuditLog
    metrics: BotMetrics
    ledger: DeletionLedger  # dropped photos are written there too: no restored backup brings them back
    photos: PhotoRepository
    submissions: SubmissionRepository
    requests: PhotoRequestRepository
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))  # the practice's time zone
    _policy: tuple[PracticeConfig, Policy] | None = None
    _told_storage_full: set[EventID] = field(default_factory=set)  # told once per photo, per process
    _closing: dict[RoomID, asyncio.Task[None]] = field(default_factory=dict)  # rooms a refusal is closing
    _photos_in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(PHOTOS_IN_FLIGHT))

    @property
    def policy(self) -> Policy:
        """The practice's policy in force (rebuilt only when an admin changed the configuration)."""
        current = self.config.current
        if self._policy is None or self._policy[0] is not current:
            self._policy = (current, patient_policy(current, test_mode=self.test_mode))
        return self._policy[1]

    @property
    def limits(self) -> Limits:
        current = self.config.current
        return Limits(max_bytes=current.max_photo_bytes, max_pixels=current.max_pixels)

    @property
    def clinician_rooms(self) -> frozenset[RoomID]:
        return self.config.current.clinician_rooms

    # ---- entry points ---------------------------------------------------------------------------------

    async def start(self, room_id: RoomID, patient: UserID) -> None:
        """The bot joined a patient's chat: record the room and greet (sent once the room is known).
        A room the bot closed earlier and was invited back into (found safe again) starts afresh."""
        room = await self.rooms.get(room_id)
        if room is not None and not room.closed:
            return
        begin = Begin(_new_id(), self.clock.now())
        earlier = await self._load(room_id) if room is not None else None
        conversation, effects = step(earlier, begin, self.policy)
        async with self.database.transaction() as db:
            if room is None:
                await self.rooms.add(db, room_id, RoomKind.PATIENT, patient)
            else:
                await self.rooms.reopen(db, room_id, patient)
            await self._commit(db, room_id, f"begin:{begin.conversation_id}", conversation, effects)

    async def start_requested(
        self,
        room_id: RoomID,
        patient: UserID,
        begin: Begin,
        record: Callable[[aiosqlite.Connection], Awaitable[None]],
    ) -> None:
        """The bot opened this chat for a clinician's photo request: greet with who asked and what for."""
        conversation, effects = step(None, begin, self.policy)
        async with self.database.transaction() as db:
            await self.rooms.add(db, room_id, RoomKind.PATIENT, patient)
            await record(db)
            await self._commit(db, room_id, f"begin:{room_id}", conversation, effects)
        await self.delivery.flush(room_id)

    async def ask_consent(self, room_id: RoomID, ask: AskConsent, submission_id: str, asked_by: str) -> bool:
        """Put a clinician's consent question in the patient's chat; False if they are mid-conversation."""
        async with self.locks(room_id):
            conversation = await self._load(room_id)
            if conversation is None or not conversation.state.finished:
                return False
            new, effects = step(conversation, ask, self.policy)
            async with self.database.transaction() as db:
                await self.consents.ask(
                    db,
                    ask.consent_id,
                    submission_id=submission_id,
                    purpose=ask.purpose,
                    by=asked_by,
                    now=ask.now,
                )
                await self._commit(db, room_id, f"consent:{ask.consent_id}", new, effects)
        await self.delivery.flush(room_id)
        return True

    # ---- chats that are not private, or cannot be made safe (see bot.room_safety) ---------------------

    async def refuse_room(
        self, room_id: RoomID, patient: UserID, problem: Unsafe, *, encrypted: bool
    ) -> None:
        """A chat just joined that cannot hold the journey: say why (in clear only if the chat is not
        encrypted: these words carry nothing about anyone), then leave. Nothing is asked, nothing kept."""
        texts = self.policy.texts
        wording = {
            Unsafe.NOT_PRIVATE: texts.room_not_private,
            Unsafe.CANNOT_REMOVE: texts.room_cannot_remove,
            Unsafe.NOT_ENCRYPTED: texts.room_not_encrypted,
        }.get(problem)  # CANNOT_SEND: the bot may not post at all, so it leaves without a word
        source = f"refuse:{room_id}:{iso(self.clock.now())}"
        async with self.database.transaction() as db:
            await self.rooms.add(db, room_id, RoomKind.PATIENT, patient)
            await self.rooms.close(db, room_id, problem.value)
            if wording is not None:
                text = texts.fill(wording, practice=self.policy.practice_name)
                payload = {"text": text, "plain": not encrypted}
                await self.outbox.add(db, room_id, derive_txn_id(source, 0), "message", payload)
            await self.outbox.add(db, room_id, derive_txn_id(source, 1), "leave", {})
        await self.delivery.flush(room_id)

    async def close_room(self, room_id: RoomID, patient: UserID, events: list[Incoming]) -> None:
        """Someone else joined or was invited (called under the room's lock, before any event of the batch
        is handled): the conversation ends and everything the bot holds of it is destroyed, the patient's
        messages of this batch are removed unread (a photo's upload deleted too), the patient is told
        why, and the bot leaves. A submission already made belongs to the practice and stays."""
        conversation = await self._load(room_id)
        now = self.clock.now()
        effects: tuple[Effect, ...] = ()
        new: Conversation | None = None
        if conversation is not None:
            new, effects = step(conversation, RoomUnsafe(now), self.policy)
        source = f"unsafe:{room_id}:{iso(now)}"
        async with self.database.transaction() as db:
            await self._remove_unread(db, room_id, patient, events)
            if new is not None:
                await self._commit(db, room_id, source, new, effects)
            await self.rooms.close(db, room_id, Unsafe.NOT_PRIVATE.value)
            await self.outbox.add(db, room_id, derive_txn_id(source, 999), "leave", {})
        log.info("a patient chat gained another member: the conversation was ended and the bot leaves it")
        await self._after_commit(room_id, effects)
        await purge_pending_media(self.media, self.gateway)

    def removal_refused(self, room_id: RoomID, item_id: int) -> None:
        """Delivery's word that the homeserver forbade a required removal: the chat is closed in a task of
        its own, under the room's lock (delivery may run under it now). Once per room at a time."""
        if room_id in self._closing:
            return
        task = asyncio.create_task(self._close_after_refusal(room_id, item_id))
        self._closing[room_id] = task
        task.add_done_callback(lambda _: self._closing.pop(room_id, None))

    async def _close_after_refusal(self, room_id: RoomID, item_id: int) -> None:
        """The bot may no longer remove the patient's messages: say so honestly (never "removed"), destroy
        what it holds, and leave. Everything still queued for the room is replaced by that."""
        try:
            async with self.locks(room_id):
                room = await self.rooms.get(room_id)
                if room is None or room.kind is not RoomKind.PATIENT or room.closed:
                    await self.outbox.done(item_id)  # already closed: the removal is given up
                    effects: tuple[Effect, ...] = ()
                else:
                    effects = await self._close_for_refused_removal(room_id)
            await self._after_commit(room_id, effects)
        except Exception:
            log.exception("closing a chat after a refused removal failed (ref %s)", error_reference())

    async def _close_for_refused_removal(self, room_id: RoomID) -> tuple[Effect, ...]:
        conversation = await self._load(room_id)
        now = self.clock.now()
        source = f"cannot-remove:{room_id}:{iso(now)}"
        effects: tuple[Effect, ...] = ()
        async with self.database.transaction() as db:
            await self.outbox.discard_room(db, room_id)
            if conversation is not None:
                new, effects = step(conversation, RoomUnsafe(now, "cannot_remove"), self.policy)
                await self._commit(db, room_id, source, new, effects)
            await self.rooms.close(db, room_id, Unsafe.CANNOT_REMOVE.value)
            await self.outbox.add(db, room_id, derive_txn_id(source, 999), "leave", {})
        log.info(
            "the bot may not remove messages in a patient chat: the conversation was ended and it leaves"
        )
        return effects

    async def remove_from_closed_room(self, room_id: RoomID, patient: UserID, events: list[Incoming]) -> None:
        """What the patient sent to a closed chat before the bot left it: removed unread (uploads deleted)."""
        async with self.database.transaction() as db:
            if not await self._remove_unread(db, room_id, patient, events):
                return
        await self.delivery.flush(room_id)
        await purge_pending_media(self.media, self.gateway)

    async def _remove_unread(
        self, db: aiosqlite.Connection, room_id: RoomID, patient: UserID, events: list[Incoming]
    ) -> int:
        """Queue the removal of each of the patient's messages among `events`; how many."""
        removed = 0
        for event in events:
            if event.sender != patient or isinstance(event, MembershipChange):
                continue
            payload = {"event_id": event.event_id, "reason": self.policy.texts.redact_reason_not_private}
            await self.outbox.add(db, room_id, derive_txn_id(event.event_id, 96), "redaction", payload)
            await self._list_uploads(db, event)
            removed += 1
        return removed

    async def tell(self, room_id: RoomID, source: str, text: str) -> None:
        """A message to a patient from the practice's side (e.g. "your photos were deleted"), sent once."""
        async with self.database.transaction() as db:
            await self.outbox.add(
                db, room_id, derive_txn_id(source, 0), "message", {"text": text, NOTIFY: True}
            )
        await self.delivery.flush(room_id)

    async def handle(self, event: Incoming) -> None:
        """Handle one event; a database locked by another process is transient: the event comes again."""
        try:
            await self._handle(event)
        except sqlite3.OperationalError as error:
            if not database_busy(error):
                raise
            raise TransientError("the database is locked by another process") from error

    async def _handle(self, event: Incoming) -> None:
        room = await self.rooms.get(event.room_id)
        if room is None or event.sender != room.member:
            return  # only the patient of this room is listened to
        conversation = await self._load(event.room_id)
        now = self.clock.now()
        match event:
            case TextMessage():
                await self._apply(conversation, Text(event.event_id, event.body, now), event)
            case EditMessage():
                await self._apply(conversation, Edit(event.event_id, event.replaces, event.body, now), event)
            case ReactionMessage():
                await self._apply(conversation, Reaction(event.event_id, event.key, now), event)
            case MediaMessage(kind=MediaKind.IMAGE | MediaKind.FILE):
                async with self._photos_in_flight:
                    await self._photo(conversation, event)
            case MediaMessage():
                await self._apply(
                    conversation, Unsupported(event.event_id, _UNSUPPORTED_KINDS[event.kind], now), event
                )
            case OtherMessage():
                await self._apply(conversation, Unsupported(event.event_id, event.kind, now), event)
            case UndecryptableMessage():
                await self._apply(conversation, Undecryptable(event.event_id, now), event)
            case _:
                return

    async def failed(self, event: Incoming, reference: str) -> None:
        """The error boundary's reply: mark the event handled and say something went wrong, with a reference."""
        texts = self.policy.texts
        text = texts.fill(texts.something_went_wrong, practice=self.policy.practice_name, reference=reference)
        async with self.database.transaction() as db:
            await self.handled.mark(db, event.event_id, event.room_id, outcome="failed")
            await self.outbox.add(
                db, event.room_id, derive_txn_id(event.event_id, 99), "message", {"text": text, NOTIFY: True}
            )

    # ---- photos -------------------------------------------------------------------------------------

    async def _photo(self, conversation: Conversation | None, event: MediaMessage) -> None:
        now = self.clock.now()
        if conversation is None or not isinstance(photo_admission(conversation, self.policy), Admit):
            await self._apply(conversation, PhotoNotExpected(event.event_id, now), event)
            return
        if event.file is None:
            await self._apply(conversation, PhotoRejected(event.event_id, "unencrypted", None, now), event)
            return
        if event.declared_size is not None and event.declared_size > self.limits.max_bytes:
            await self._apply(conversation, PhotoRejected(event.event_id, "too_large", None, now), event)
            return
        await self.faults.pause("before_download")
        try:
            ciphertext = await fetch_attachment(self.gateway, event.file)
        except AttachmentUnavailable as unavailable:
            rejected = PhotoRejected(event.event_id, unavailable.reason, None, now)
            await self._apply(conversation, rejected, event)
            return
        self.faults.hit("after_download")
        timing = PhotoTiming(self.metrics)
        try:
            data = await self.pool.run(timing.cpu(decrypt_file), ciphertext, event.file)
        except AttachmentError:
            await self._apply(
                conversation, PhotoRejected(event.event_id, "download_failed", None, now), event
            )
            return
        del ciphertext
        self.faults.hit("after_decrypt")
        result = await self.pool.run(timing.cpu(process_photo), data, self.limits)
        del data
        if isinstance(result, Rejected):
            timing.done()
            rejected = PhotoRejected(event.event_id, result.reason.value, result.detected, now)
            await self._apply(conversation, rejected, event)
            return
        photo_id = photo_id_for(event.event_id)
        try:
            self.faults.hit("before_vault_write")
            stored = await self.pool.run(
                timing.cpu(self.vault.put),
                photo_id,
                result.data,
                part_written=lambda: self.faults.hit("during_vault_write"),
            )
        except OSError as error:
            if error.errno not in _STORAGE_FULL:
                raise
            await self._tell_storage_full(event)
            raise StorageFullError("the vault cannot be written; the photo will be tried again") from error
        timing.done()
        self.faults.hit("after_vault_rename")
        issues = tuple(issue.value for issue in result.quality.issues)
        await self._apply(
            conversation,
            PhotoStored(event.event_id, photo_id, issues, now),
            event,
            photo=(result, stored),
        )

    async def _tell_storage_full(self, event: MediaMessage) -> None:
        """The disk is full: tell the patient once, kindly, that we will keep trying. The photo's event stays
        unhandled, so the sync checkpoint does not pass it and it is stored (once) when there is room again:
        the patient need not send it again, and nothing depends on them doing so."""
        if event.event_id in self._told_storage_full:
            return
        texts = self.policy.texts
        text = texts.fill(texts.photo_not_stored_yet, practice=self.policy.practice_name)
        try:
            async with self.database.transaction() as db:
                txn_id = derive_txn_id(event.event_id, 97)  # the same notice on a replay: sent once
                await self.outbox.add(db, event.room_id, txn_id, "message", {"text": text, NOTIFY: True})
        except (OSError, sqlite3.Error):
            log.warning("the disk is full and the patient could not be told yet; their photo will be retried")
            return
        log.warning("the disk is full: a photo could not be stored and will be retried")
        self._told_storage_full.add(event.event_id)
        await self.delivery.flush(event.room_id)

    # ---- committing a step ---------------------------------------------------------------------------

    async def _apply(
        self,
        conversation: Conversation | None,
        step_input: Input,
        event: Incoming,
        photo: tuple[CleanPhoto, StoredImage] | None = None,
    ) -> None:
        new, effects = step(conversation, step_input, self.policy)
        self.faults.hit("before_commit")
        async with self.database.transaction() as db:
            if photo is not None:
                caption = event.caption if isinstance(event, MediaMessage) else None
                await self._insert_photo(db, event.room_id, new, step_input, photo, caption=caption)
            await self._list_uploads(db, event)
            await self.handled.mark(db, event.event_id, event.room_id)
            about_photo = isinstance(step_input, PhotoStored)
            await self._commit(db, event.room_id, event.event_id, new, effects, about_photo=about_photo)
        self.faults.hit("after_commit")
        self._count(conversation, step_input, effects)  # before the reply goes out: a scrape never lags it
        await self._after_commit(event.room_id, effects)

    async def _list_uploads(self, db: aiosqlite.Connection, event: Incoming) -> None:
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

    def _count(self, before: Conversation | None, step_input: Input, effects: tuple[Effect, ...]) -> None:
        """Metrics of a committed step: photos received, accepted or rejected (by reason code), submissions."""
        m = self.metrics
        match step_input:
            case PhotoStored():
                m.photos_received_total.inc()
                m.photos_accepted_total.inc()
            case PhotoRejected(reason=reason):
                m.photos_received_total.inc()
                m.photos_rejected_total.inc(reason=reason)
                if reason == "download_failed":  # the attachment did not match its event: undecryptable
                    m.decrypt_failures_total.inc()
            case PhotoNotExpected():
                refusal = photo_admission(before, self.policy)  # why it was not downloaded
                reason = refusal.reason if isinstance(refusal, Refuse) else "not_expected"
                m.photos_received_total.inc()
                m.photos_rejected_total.inc(reason=reason)
        if any(isinstance(effect, Submit) for effect in effects):
            m.submissions_total.inc()

    async def expire_idle(self, timeout: timedelta) -> int:
        """Expire every unfinished conversation idle for longer than `timeout`: photos destroyed, patient told."""
        now = self.clock.now()
        unfinished = [state.value for state in State if not state.finished]
        expired = 0
        for room_id, last_activity in await self.conversations.rooms_in_states(unfinished):
            if datetime.fromisoformat(last_activity) + timeout > now:
                continue
            async with self.locks(room_id):
                conversation = await self._load(room_id)
                if conversation is None or conversation.state.finished:
                    continue
                if conversation.last_activity_at + timeout > now:
                    continue
                new, effects = step(conversation, Expire(now), self.policy)
                async with self.database.transaction() as db:
                    await self._commit(db, room_id, f"expire:{conversation.conversation_id}", new, effects)
                await self._after_commit(room_id, effects)
            expired += 1
        if expired:
            log.info("expired %d idle conversations", expired)
        return expired

    async def _commit(
        self,
        db: aiosqlite.Connection,
        room_id: RoomID,
        source: str,
        conversation: Conversation,
        effects: tuple[Effect, ...],
        *,
        about_photo: bool = False,
    ) -> None:
        """`about_photo`: the replies answer a stored photo (they tell the patient it is safe), which the
        outbox marks for delivery's `before_confirmation_reply` crash point."""
        await self.conversations.save(
            db, room_id, conversation.state.value, conversation.to_dict(), iso(conversation.last_activity_at)
        )
        for index, effect in enumerate(effects):
            txn_id = derive_txn_id(source, index)
            match effect:
                case Reply(text=text, private=private):
                    # Every reply to a patient is a question or an outcome: it notifies (issue 15).
                    payload: dict[str, Any] = {"text": text, NOTIFY: True}
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
                    await self.ledger.record(
                        db, LedgerKind.IMAGES_DESTROYED, self.clock.now(), image_ids=photo_ids
                    )
                    for photo_id in photo_ids:
                        await self.photos.delete(db, photo_id)
                case Submit():
                    await self._insert_submission(db, room_id, effect)
                    log.info("submission %s recorded: %d photo(s)", effect.reference, len(effect.photo_ids))
                case NotifyClinicians():
                    for clinician_room in sorted(self.clinician_rooms):
                        text = clinician_notice(effect)
                        room_txn_id = derive_room_txn_id(source, clinician_room, index)
                        payload = alert(text, self.config.current) | {ALERT_OF: effect.reference}
                        await self.outbox.add(db, clinician_room, room_txn_id, "message", payload)
                case PurgeMedia():
                    pass  # the media ledger already lists the event's uploads; purged after the commit
                case RecordConsent():
                    await self._record_consent(db, effect, source, index)

    async def _record_consent(
        self, db: aiosqlite.Connection, effect: RecordConsent, source: str, index: int
    ) -> None:
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
        for clinician_room in sorted(self.clinician_rooms):
            txn_id = derive_room_txn_id(source, clinician_room, index)
            await self.outbox.add(db, clinician_room, txn_id, "message", alert(text, self.config.current))

    async def _after_commit(self, room_id: RoomID, effects: tuple[Effect, ...]) -> None:
        destroyed = [
            photo_id
            for effect in effects
            if isinstance(effect, DestroyPhotos)
            for photo_id in effect.photo_ids
        ]
        for photo_id in destroyed:
            await self.pool.run(self.vault.destroy, photo_id)
        if destroyed:
            await self.database.shred_checkpoint()
        await self.delivery.flush(room_id)
        if any(isinstance(effect, NotifyClinicians | RecordConsent) for effect in effects):
            for clinician_room in self.clinician_rooms:
                await self.delivery.flush(clinician_room)
        if any(isinstance(effect, PurgeMedia) for effect in effects):
            await purge_pending_media(self.media, self.gateway)

    async def _insert_photo(
        self,
        db: aiosqlite.Connection,
        room_id: RoomID,
        conversation: Conversation,
        step_input: Input,
        photo: tuple[CleanPhoto, StoredImage],
        *,
        caption: str | None = None,
    ) -> None:
        if not isinstance(step_input, PhotoStored) or step_input.photo_id not in conversation.all_photo_ids:
            return  # the step did not keep it (over the limit, cancelled): its file is destroyed below
        clean, stored = photo
        await self.photos.upsert(
            db,
            step_input.photo_id,
            room_id=room_id,
            conversation_id=conversation.conversation_id,
            wrapped_key=stored.wrapped_key,
            size=stored.size,
            digest=stored.digest,
            mime=clean.mime,
            source_format=clean.source_format.value,
            quality=step_input.quality_issues,
            created_at=step_input.now,
            caption=caption,
        )

    async def _insert_submission(self, db: aiosqlite.Connection, room_id: RoomID, submit: Submit) -> None:
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

    async def _load(self, room_id: RoomID) -> Conversation | None:
        data = await self.conversations.load(room_id)
        return Conversation.from_dict(data) if data is not None else None


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


def _new_id() -> str:
    return secrets.token_hex(16)
