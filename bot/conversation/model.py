"""The patient conversation's data: its states, the conversation itself, and the practice's policy.

A `Conversation` is immutable and holds everything the next step needs, so a restart of the bot resumes
it exactly where it was. `to_dict` gives JSON-safe values; the dict contains the NHS number, so the
handler seals it before storing. Neither the repr nor any error message here shows the NHS number or the
patient's own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from bot.ids import EventID
from bot.screening_flags import EarlierScreening
from bot.texts import Texts

FORMAT_VERSION = 1

T = TypeVar("T")


class State(Enum):
    """Where a conversation is. The values are what the database stores: never rename a value."""

    AWAITING_NHS_NUMBER = "awaiting_nhs_number"
    CONFIRMING_NHS_NUMBER = "confirming_nhs_number"
    SCREEN_INTIMATE = "screen_intimate"  # is the photo of an intimate area?
    SCREEN_UNDER_18 = "screen_under_18"  # asked only for an intimate area: is the person under 18?
    SCREEN_WHO = "screen_who"  # asked only after a bare "yes" to the read-back: the patient's, or someone's they look after?
    STORAGE_CHOICE = (
        "storage_choice"  # asked only when the patient says DELETE at the photo step (not intimate)
    )
    AWAITING_PHOTOS = "awaiting_photos"  # photos, optional words, a pending retake question, "done"
    REFUSED = "refused"  # intimate and under 18: no photo is accepted (finished)
    SUBMITTED = "submitted"  # finished
    CANCELLED = "cancelled"  # finished
    EXPIRED = "expired"  # finished

    @property
    def finished(self) -> bool:
        """Whether the conversation is over: only START (a new conversation) moves on from here."""
        return self in FINISHED_STATES


FINISHED_STATES = frozenset({State.REFUSED, State.SUBMITTED, State.CANCELLED, State.EXPIRED})


@dataclass(frozen=True)
class Policy:
    """What the practice decided: its name, its limits and its wording."""

    practice_name: str
    max_photos: int = 5
    test_mode: bool = False  # accept NHS test-range numbers (999 ...): demos and tests only
    media_purge_enabled: bool = False  # the bot holds a homeserver-admin credential to delete uploads
    max_notes: int = 20  # typed messages kept with one request
    texts: Texts = field(default_factory=Texts)
    # How long the answers of an earlier screening in the same chat travel with the next submission.
    screening_memory: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if not self.practice_name.strip():
            raise ValueError("the practice name must not be empty")
        if self.max_photos < 1:
            raise ValueError("max_photos must be at least 1")
        if self.max_notes < 0:
            raise ValueError("max_notes must not be negative")


@dataclass(frozen=True)
class PendingConsent:
    """A clinician's consent question waiting for the patient's answer (asked after a submission).

    `stage` is 'answer' (yes or no?) then 'who' (the patient, or someone with legal authority?).
    """

    consent_id: str
    purpose: str  # 'second-opinion' or 'teaching'
    reference: str
    stage: str = "answer"
    agreed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "purpose": self.purpose,
            "reference": self.reference,
            "stage": self.stage,
            "agreed": self.agreed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingConsent:
        stage = _get(data, "stage", str)
        if stage not in {"answer", "who"}:
            raise ValueError("unknown consent stage")
        return cls(
            consent_id=_get(data, "consent_id", str),
            purpose=_get(data, "purpose", str),
            reference=_get(data, "reference", str),
            stage=stage,
            agreed=_optional(data, "agreed", bool),
        )


@dataclass(frozen=True)
class Conversation:
    """One patient request, from greeting to a finished state.

    `nhs_number` is the ten digits (pending while being confirmed). `number_event_ids` are the patient's
    messages that carried an NHS number (or an attempt at one), redacted once it is confirmed, or when the
    conversation is cancelled or expires. `photo_ids` are accepted photos (stored in the vault);
    `retake_photo_id` is a stored photo flagged for quality, waiting for the patient to KEEP it or replace
    it. `under_18` is asked only for an intimate area, and `keep_in_record` is always False for one.
    Entering a finished state clears the NHS number, the photos and the notes: a finished conversation
    holds nothing about the patient.
    """

    conversation_id: str
    state: State
    started_at: datetime
    last_activity_at: datetime
    nhs_number: str | None = field(default=None, repr=False)
    number_event_ids: tuple[EventID, ...] = ()
    intimate: bool | None = None
    under_18: bool | None = None
    acting_for_someone: bool | None = None
    keep_in_record: bool | None = None
    photo_ids: tuple[str, ...] = ()
    retake_photo_id: str | None = None
    notes: tuple[str, ...] = field(default=(), repr=False)
    requested_area: str | None = field(default=None, repr=False)
    request_id: str | None = None
    request_expires_at: datetime | None = None
    consent: PendingConsent | None = None
    # The patient's last answer, and the conversation as it was before it: an edit of that answer (while
    # nothing else has happened since) is taken as a correction and replayed from there. Never nested.
    # Words of a message removed for personal details, masked, offered back as a note ("add this?").
    pending_note: str | None = field(default=None, repr=False)
    last_answer_id: EventID | None = None
    before_last_answer: Conversation | None = field(default=None, repr=False)
    # Screenings of earlier conversations in this chat, within the policy's `screening_memory`: kept across
    # START so a refusal cannot be undone unseen (they hold no NHS number and no words).
    earlier_screenings: tuple[EarlierScreening, ...] = ()

    def __post_init__(self) -> None:
        if not self.conversation_id:
            raise ValueError("a conversation needs an id")
        for name in ("started_at", "last_activity_at"):
            if getattr(self, name).utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.nhs_number is not None and not _is_ten_ascii_digits(self.nhs_number):
            raise ValueError("nhs_number must be 10 ASCII digits")  # the value stays out of the message
        self._check_consistent()

    def _check_consistent(self) -> None:
        """What every step guarantees, checked again for a conversation read back from storage."""
        state = self.state
        needs_number = not state.finished and state is not State.AWAITING_NHS_NUMBER
        if needs_number and self.nhs_number is None:
            raise ValueError(f"a conversation in state {state.value} needs an NHS number")
        if not needs_number and self.nhs_number is not None:
            raise ValueError(f"a conversation in state {state.value} cannot hold an NHS number")
        holds_photos = state in (State.AWAITING_PHOTOS, State.STORAGE_CHOICE)
        if not holds_photos and (self.photo_ids or self.retake_photo_id or self.notes):
            raise ValueError("only a conversation at the photo step holds photos and notes")
        if len(set(self.all_photo_ids)) != len(self.all_photo_ids):
            raise ValueError("a photo id appears twice")
        if self.consent is not None and not state.finished:
            raise ValueError("a consent question waits only on a finished conversation")
        if self.intimate and self.keep_in_record:
            raise ValueError("an intimate photo is never kept in the record")
        if self.pending_note is not None and state is not State.AWAITING_PHOTOS:
            raise ValueError("only a conversation at the photo step offers a masked note")
        if self.before_last_answer is not None:
            if state.finished or self.last_answer_id is None:
                raise ValueError("only an open conversation remembers its last answer")
            if self.before_last_answer.before_last_answer is not None:
                raise ValueError("the conversation before the last answer keeps no earlier one")

    @property
    def photo_count(self) -> int:
        """Photos stored so far, including one waiting for the retake decision."""
        return len(self.photo_ids) + (self.retake_photo_id is not None)

    @property
    def all_photo_ids(self) -> tuple[str, ...]:
        """Every stored photo of this conversation, accepted or waiting for the retake decision."""
        pending = (self.retake_photo_id,) if self.retake_photo_id is not None else ()
        return self.photo_ids + pending

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values, including the NHS number: seal before storing."""
        return {
            "version": FORMAT_VERSION,
            "conversation_id": self.conversation_id,
            "state": self.state.value,
            "started_at": self.started_at.astimezone(UTC).isoformat(),
            "last_activity_at": self.last_activity_at.astimezone(UTC).isoformat(),
            "nhs_number": self.nhs_number,
            "number_event_ids": list(self.number_event_ids),
            "intimate": self.intimate,
            "under_18": self.under_18,
            "acting_for_someone": self.acting_for_someone,
            "keep_in_record": self.keep_in_record,
            "photo_ids": list(self.photo_ids),
            "retake_photo_id": self.retake_photo_id,
            "notes": list(self.notes),
            "requested_area": self.requested_area,
            "request_id": self.request_id,
            "request_expires_at": (
                self.request_expires_at.astimezone(UTC).isoformat() if self.request_expires_at else None
            ),
            "consent": self.consent.to_dict() if self.consent else None,
            "pending_note": self.pending_note,
            "last_answer_id": self.last_answer_id,
            "before_last_answer": self.before_last_answer.to_dict() if self.before_last_answer else None,
            "earlier_screenings": [screening.to_dict() for screening in self.earlier_screenings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """The conversation `to_dict` gave. Raises ValueError (naming the field, never its value)."""
        if data.get("version") != FORMAT_VERSION:
            raise ValueError("unknown conversation format version")
        try:
            state = State(_get(data, "state", str))
        except ValueError:
            raise ValueError("unknown conversation state") from None
        return cls(
            conversation_id=_get(data, "conversation_id", str),
            state=state,
            started_at=_moment(data, "started_at"),
            last_activity_at=_moment(data, "last_activity_at"),
            nhs_number=_optional(data, "nhs_number", str),
            number_event_ids=tuple(EventID(item) for item in _strings(data, "number_event_ids")),
            intimate=_optional(data, "intimate", bool),
            under_18=_optional(data, "under_18", bool),
            acting_for_someone=_optional(data, "acting_for_someone", bool),
            keep_in_record=_optional(data, "keep_in_record", bool),
            photo_ids=_strings(data, "photo_ids"),
            retake_photo_id=_optional(data, "retake_photo_id", str),
            notes=_strings(data, "notes"),
            requested_area=_optional(data, "requested_area", str),
            request_id=_optional(data, "request_id", str),
            request_expires_at=(
                _moment(data, "request_expires_at") if data.get("request_expires_at") is not None else None
            ),
            consent=PendingConsent.from_dict(data["consent"])
            if isinstance(data.get("consent"), dict)
            else None,
            pending_note=_optional(data, "pending_note", str),
            last_answer_id=EventID(answer) if isinstance(answer := data.get("last_answer_id"), str) else None,
            before_last_answer=(
                cls.from_dict(data["before_last_answer"])
                if isinstance(data.get("before_last_answer"), dict)
                else None
            ),
            earlier_screenings=tuple(
                EarlierScreening.from_dict(item) for item in _list(data, "earlier_screenings")
            ),
        )


def _is_ten_ascii_digits(text: str) -> bool:
    return len(text) == 10 and all(ch in "0123456789" for ch in text)


def _get(data: Mapping[str, Any], key: str, kind: type[T]) -> T:
    value = data.get(key)
    if not isinstance(value, kind):
        # ValueError, like every other problem with stored data, so the caller catches one kind.
        raise ValueError(f"conversation field {key!r} is missing or has the wrong type")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    if data.get(key) is None:
        return None
    return _get(data, key, kind)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    """A list that conversations stored before it existed do not have (read as empty)."""
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"conversation field {key!r} must be a list")
    return value


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"conversation field {key!r} must be a list of strings")
    return tuple(value)


def _moment(data: Mapping[str, Any], key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_get(data, key, str))
    except ValueError:
        raise ValueError(f"conversation field {key!r} is not an ISO date-time") from None
    if moment.utcoffset() is None:
        raise ValueError(f"conversation field {key!r} must carry a timezone")
    return moment.astimezone(UTC)
