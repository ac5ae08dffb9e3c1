"""The patient's side: turns Matrix events into conversation inputs and commits each step.

For every event, under the room's lock (taken by the router):
  load the conversation -> (for a photo: admit, then `handlers.photo_intake` downloads, cleans and stores
  its file) -> `step` -> one transaction: handled-event mark + the effects' rows (`handlers.effects`:
  new state, outbox, photo/submission rows, media ledger) -> then, after the commit, `Effects.carry_out`:
  destroy vault files, send the outbox, purge media from the homeserver.
A crash anywhere before the commit replays the event from the sync checkpoint; after it, the outbox and
the media ledger finish the job. The photo id is derived from the event id, so a replay stores once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.clock import Clock, iso
from bot.conversation import (
    Admit,
    AskConsent,
    Begin,
    Conversation,
    Edit,
    Effect,
    Expire,
    Input,
    PhotoNotExpected,
    PhotoRejected,
    PhotoStored,
    Policy,
    Reaction,
    Refuse,
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
from bot.faults import FaultInjector
from bot.ids import EventID, RoomID, UserID
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
from bot.metrics import BotMetrics
from bot.room_safety import Unsafe
from handlers.delivery import NOTIFY
from handlers.effects import Effects
from handlers.effects import clinician_notice as clinician_notice  # noqa: PLC0414 - re-exported for the desk
from handlers.patient_policy import PolicyInForce
from handlers.photo_intake import PhotoIntake, RejectedPhoto, StoredPhoto
from handlers.room_locks import RoomLocks
from storage.conversations import ConversationRepository
from storage.database import database_busy
from storage.handled_events import HandledEvents
from storage.media_ledger import MediaLedger
from storage.outbox import Outbox, derive_txn_id
from storage.rooms import RoomKind, RoomRepository
from storage.sql import Connection, Database

log = logging.getLogger(__name__)

_UNSUPPORTED_KINDS = {MediaKind.VIDEO: "video", MediaKind.AUDIO: "voice message"}
# Photos downloaded, cleaned and stored at once, across all patients. Each holds ~20 MB at its peak (the
# ciphertext, the plaintext, the cleaned copy, the sealed copy), so the bot's memory is bounded by this, not
# by how many patients send at once (bench/: 490 MB for 50 patients without it). Twice the CPU pool's
# default workers keeps the pool busy while the next photos download.
PHOTOS_IN_FLIGHT = 4


@dataclass
class PatientHandler:
    database: Database
    rooms: RoomRepository
    conversations: ConversationRepository
    handled: HandledEvents
    locks: RoomLocks
    clock: Clock
    faults: FaultInjector  # the crash points before and after a step's commit
    policy_in_force: PolicyInForce
    intake: PhotoIntake
    effects: Effects
    metrics: BotMetrics
    _told_storage_full: set[EventID] = field(default_factory=set)  # told once per photo, per process
    _closing: dict[RoomID, asyncio.Task[None]] = field(default_factory=dict)  # rooms a refusal is closing
    _photos_in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(PHOTOS_IN_FLIGHT))

    @property
    def policy(self) -> Policy:
        """The practice's policy in force (rebuilt only when an admin changed the configuration)."""
        return self.policy_in_force.current

    @property
    def outbox(self) -> Outbox:
        """What is queued to send (the CLI, housekeeping and tests read it)."""
        return self.effects.outbox

    @property
    def media(self) -> MediaLedger:
        """The patients' uploads waiting to be purged from the homeserver."""
        return self.effects.media

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
            await self.effects.record(db, room_id, f"begin:{begin.conversation_id}", conversation, effects)

    async def start_requested(
        self,
        room_id: RoomID,
        patient: UserID,
        begin: Begin,
        record: Callable[[Connection], Awaitable[None]],
    ) -> None:
        """The bot opened this chat for a clinician's photo request: greet with who asked and what for."""
        conversation, effects = step(None, begin, self.policy)
        async with self.database.transaction() as db:
            await self.rooms.add(db, room_id, RoomKind.PATIENT, patient)
            await record(db)
            await self.effects.record(db, room_id, f"begin:{room_id}", conversation, effects)
        await self.effects.send(room_id)

    async def ask_consent(self, room_id: RoomID, ask: AskConsent, submission_id: str, asked_by: str) -> bool:
        """Put a clinician's consent question in the patient's chat; False if they are mid-conversation."""
        async with self.locks(room_id):
            conversation = await self._load(room_id)
            if conversation is None or not conversation.state.finished:
                return False
            new, effects = step(conversation, ask, self.policy)
            async with self.database.transaction() as db:
                await self.effects.consents.ask(db, ask, submission_id, asked_by)
                await self.effects.record(db, room_id, f"consent:{ask.consent_id}", new, effects)
        await self.effects.send(room_id)
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
                await self.effects.queue(db, room_id, derive_txn_id(source, 0), "message", payload)
            await self.effects.queue(db, room_id, derive_txn_id(source, 1), "leave", {})
        await self.effects.send(room_id)

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
                await self.effects.record(db, room_id, source, new, effects)
            await self.rooms.close(db, room_id, Unsafe.NOT_PRIVATE.value)
            await self.effects.queue(db, room_id, derive_txn_id(source, 999), "leave", {})
        log.info("a patient chat gained another member: the conversation was ended and the bot leaves it")
        await self.effects.carry_out(room_id, effects)
        await self.effects.purge_media()

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
                    await self.effects.give_up(item_id)  # already closed: the removal is given up
                    effects: tuple[Effect, ...] = ()
                else:
                    effects = await self._close_for_refused_removal(room_id)
            await self.effects.carry_out(room_id, effects)
        except Exception:
            log.exception("closing a chat after a refused removal failed (ref %s)", error_reference())

    async def _close_for_refused_removal(self, room_id: RoomID) -> tuple[Effect, ...]:
        conversation = await self._load(room_id)
        now = self.clock.now()
        source = f"cannot-remove:{room_id}:{iso(now)}"
        effects: tuple[Effect, ...] = ()
        async with self.database.transaction() as db:
            await self.effects.discard_queued(db, room_id)
            if conversation is not None:
                new, effects = step(conversation, RoomUnsafe(now, "cannot_remove"), self.policy)
                await self.effects.record(db, room_id, source, new, effects)
            await self.rooms.close(db, room_id, Unsafe.CANNOT_REMOVE.value)
            await self.effects.queue(db, room_id, derive_txn_id(source, 999), "leave", {})
        log.info(
            "the bot may not remove messages in a patient chat: the conversation was ended and it leaves"
        )
        return effects

    async def remove_from_closed_room(self, room_id: RoomID, patient: UserID, events: list[Incoming]) -> None:
        """What the patient sent to a closed chat before the bot left it: removed unread (uploads deleted)."""
        async with self.database.transaction() as db:
            if not await self._remove_unread(db, room_id, patient, events):
                return
        await self.effects.send(room_id)
        await self.effects.purge_media()

    async def _remove_unread(
        self, db: Connection, room_id: RoomID, patient: UserID, events: list[Incoming]
    ) -> int:
        """Queue the removal of each of the patient's messages among `events`; how many."""
        removed = 0
        for event in events:
            if event.sender != patient or isinstance(event, MembershipChange):
                continue
            payload = {"event_id": event.event_id, "reason": self.policy.texts.redact_reason_not_private}
            await self.effects.queue(db, room_id, derive_txn_id(event.event_id, 96), "redaction", payload)
            await self.effects.list_uploads(db, event)
            removed += 1
        return removed

    async def tell(self, room_id: RoomID, source: str, text: str) -> None:
        """A message to a patient from the practice's side (e.g. "your photos were deleted"), sent once."""
        async with self.database.transaction() as db:
            await self.effects.queue(
                db, room_id, derive_txn_id(source, 0), "message", {"text": text, NOTIFY: True}
            )
        await self.effects.send(room_id)

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
            await self.effects.queue(
                db, event.room_id, derive_txn_id(event.event_id, 99), "message", {"text": text, NOTIFY: True}
            )

    # ---- photos -------------------------------------------------------------------------------------

    async def _photo(self, conversation: Conversation | None, event: MediaMessage) -> None:
        now = self.clock.now()
        if conversation is None or not isinstance(photo_admission(conversation, self.policy), Admit):
            await self._apply(conversation, PhotoNotExpected(event.event_id, now), event)
            return
        try:
            taken = await self.intake.take(event, self.policy_in_force.limits)
        except StorageFullError:
            await self._tell_storage_full(event)
            raise
        match taken:
            case RejectedPhoto(reason=reason, detected=detected):
                await self._apply(conversation, PhotoRejected(event.event_id, reason, detected, now), event)
            case StoredPhoto():
                stored = PhotoStored(event.event_id, taken.photo_id, taken.quality_issues, now)
                await self._apply(conversation, stored, event, photo=taken)

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
                await self.effects.queue(db, event.room_id, txn_id, "message", {"text": text, NOTIFY: True})
        except (OSError, sqlite3.Error):
            log.warning("the disk is full and the patient could not be told yet; their photo will be retried")
            return
        log.warning("the disk is full: a photo could not be stored and will be retried")
        self._told_storage_full.add(event.event_id)
        await self.effects.send(event.room_id)

    # ---- committing a step ---------------------------------------------------------------------------

    async def _apply(
        self,
        conversation: Conversation | None,
        step_input: Input,
        event: Incoming,
        photo: StoredPhoto | None = None,
    ) -> None:
        new, effects = step(conversation, step_input, self.policy)
        self.faults.hit("before_commit")
        async with self.database.transaction() as db:
            if photo is not None:
                caption = event.caption if isinstance(event, MediaMessage) else None
                await self.effects.keep_photo(db, event.room_id, new, step_input, photo, caption=caption)
            await self.effects.list_uploads(db, event)
            await self.handled.mark(db, event.event_id, event.room_id)
            about_photo = isinstance(step_input, PhotoStored)
            await self.effects.record(
                db, event.room_id, event.event_id, new, effects, about_photo=about_photo
            )
        self.faults.hit("after_commit")
        self._count(conversation, step_input, effects)  # before the reply goes out: a scrape never lags it
        await self.effects.carry_out(event.room_id, effects)

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
                    await self.effects.record(
                        db, room_id, f"expire:{conversation.conversation_id}", new, effects
                    )
                await self.effects.carry_out(room_id, effects)
            expired += 1
        if expired:
            log.info("expired %d idle conversations", expired)
        return expired

    async def _load(self, room_id: RoomID) -> Conversation | None:
        data = await self.conversations.load(room_id)
        return Conversation.from_dict(data) if data is not None else None


def _new_id() -> str:
    return secrets.token_hex(16)
