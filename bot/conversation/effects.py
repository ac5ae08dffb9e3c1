"""What the handler must do after committing a step: each effect is stored in the same transaction as the
new state, then carried out. Effects hold no image; `Submit` holds the NHS number and the patient's words,
so it is sealed like the conversation, and its repr hides both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.conversation.choices import Choice
from bot.ids import EventID
from bot.screening_flags import EarlierScreening


@dataclass(frozen=True)
class Reply:
    """Send this text (Markdown) to the patient. `private` names a private detail the text shows (the NHS
    number read back): the handler remembers the sent message so `RedactOwn` can remove it later."""

    text: str = field(repr=False)
    private: str | None = None
    choices: tuple[Choice, ...] = ()  # the answers this question takes (a hint for clients with buttons)


NHS_NUMBER_SHOWN = "nhs_number"  # a `Reply.private` tag: the message reads the NHS number back


@dataclass(frozen=True)
class RedactOwn:
    """Remove every message the bot sent in this chat that shows the `private` detail."""

    private: str
    reason: str


@dataclass(frozen=True)
class Redact:
    """Remove the patient's message from the chat; some apps show `reason` in its place."""

    event_id: EventID
    reason: str


@dataclass(frozen=True)
class DestroyPhotos:
    """Crypto-shred these photos from the vault (destroy their keys)."""

    photo_ids: tuple[str, ...]


@dataclass(frozen=True)
class PurgeMedia:
    """Delete the media this event uploaded (image and thumbnail) from the homeserver. Emitted only when
    the policy says the bot holds a homeserver-admin credential."""

    event_id: EventID


@dataclass(frozen=True)
class Submit:
    """Record a finished request for the clinicians' queue."""

    conversation_id: str
    reference: str
    nhs_number: str = field(repr=False)
    photo_ids: tuple[str, ...]
    keep_in_record: bool
    intimate: bool
    under_18: bool | None
    acting_for_someone: bool
    notes: tuple[str, ...] = field(repr=False)
    requested_area: str | None = field(repr=False)
    submitted_at: datetime
    request_id: str | None = None
    # For the clinician: notes that contradict the screening, answers changed since an earlier screening.
    warnings: tuple[str, ...] = ()
    earlier_screenings: tuple[EarlierScreening, ...] = ()


@dataclass(frozen=True)
class NotifyClinicians:
    """Tell the clinician rooms a request arrived: no image, no NHS number, no patient words."""

    reference: str
    photo_count: int
    keep_in_record: bool
    intimate: bool
    acting_for_someone: bool
    warnings: tuple[str, ...] = ()  # fixed wording of ours (bot.screening_flags): never the patient's words


@dataclass(frozen=True)
class RecordConsent:
    """The patient answered a consent question: record it with who gave it and when."""

    consent_id: str
    reference: str
    purpose: str
    agreed: bool
    given_by: str  # 'patient' or 'legal-authority'
    answered_at: datetime


Effect = RecordConsent | Reply | Redact | RedactOwn | DestroyPhotos | PurgeMedia | Submit | NotifyClinicians
