"""What can happen to a conversation: each input is one event the handler has already understood.

Every input carries `now` (timezone-aware): the state machine never reads a clock. Photos reach the
state machine only after the handler has asked `photo_admission`, downloaded, cleaned and encrypted them
(`PhotoStored`), or failed to (`PhotoRejected`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.ids import EventID

# Why the handler could not use a photo. The first six come from the image pipeline.
REJECT_REASONS = frozenset(
    {
        "empty",
        "too_large",
        "too_many_pixels",
        "unsupported_type",
        "truncated",
        "corrupt",
        "download_failed",
        "unencrypted",
        "not_matrix",  # the attachment's link is not an mxc:// upload
        "remote",  # on another server, which could not be fetched from
        "gone",  # already deleted from the homeserver
    }
)


@dataclass(frozen=True)
class Begin:
    """The bot joined the patient's chat (or a clinician asked this patient for a photo).

    `requested_area` is the area the clinician asked for ("the rash on your left forearm");
    `requested_by` is how the patient should see the clinician named ("Dr Patel"), never a Matrix id.
    """

    conversation_id: str
    now: datetime
    requested_area: str | None = field(default=None, repr=False)
    requested_by: str | None = None
    request_id: str | None = None  # a clinician's photo request this chat answers
    request_expires_at: datetime | None = None


@dataclass(frozen=True)
class Text:
    """A text message from the patient."""

    event_id: EventID
    body: str = field(repr=False)
    now: datetime


@dataclass(frozen=True)
class Edit:
    """The patient edited an earlier message (`m.replace`): `body` is the new text (`m.new_content`)."""

    event_id: EventID  # the edit event, which carries the new text in clear too
    replaces: EventID
    body: str = field(repr=False)
    now: datetime


@dataclass(frozen=True)
class Reaction:
    """The patient reacted to a message with `key` (an emoji): an answer to a yes/no or numbered question."""

    event_id: EventID
    key: str
    now: datetime


@dataclass(frozen=True)
class PhotoStored:
    """A photo was cleaned and encrypted into the vault as `photo_id`; `quality_issues` are
    `bot.images.model.QualityIssue` values ("blurred", "too_dark", "too_bright", "too_small")."""

    event_id: EventID
    photo_id: str
    quality_issues: tuple[str, ...]
    now: datetime


@dataclass(frozen=True)
class PhotoRejected:
    """A photo could not be used. `reason` is one of `REJECT_REASONS`; `detected` names what the file
    looked like ("PDF", "MP4 video"), if known."""

    event_id: EventID
    reason: str
    detected: str | None
    now: datetime


@dataclass(frozen=True)
class PhotoNotExpected:
    """A photo arrived that `photo_admission` refused; it was not downloaded."""

    event_id: EventID
    now: datetime


@dataclass(frozen=True)
class Unsupported:
    """A message the bot cannot use: `kind` is "video", "voice message", "audio", "sticker", "location",
    "file" (a file that is not a photo by its declared type)..."""

    event_id: EventID
    kind: str
    now: datetime


@dataclass(frozen=True)
class Undecryptable:
    """A message the bot could not decrypt."""

    event_id: EventID
    now: datetime


@dataclass(frozen=True)
class Expire:
    """The handler found the conversation idle for longer than the practice's timeout."""

    now: datetime


@dataclass(frozen=True)
class AskConsent:
    """A clinician asks the patient's consent to share a submission (second opinion, or teaching)."""

    consent_id: str
    purpose: str  # 'second-opinion' or 'teaching'
    reference: str
    now: datetime


@dataclass(frozen=True)
class RoomUnsafe:
    """The chat stopped being safe: someone else joined or was invited ('not_private'), or the homeserver
    forbade removing the patient's message ('cannot_remove'). The conversation ends at once, whatever its
    state, and the bot leaves the chat after saying why."""

    now: datetime
    reason: str = "not_private"


Input = (
    Begin
    | RoomUnsafe
    | AskConsent
    | Text
    | Edit
    | Reaction
    | PhotoStored
    | PhotoRejected
    | PhotoNotExpected
    | Unsupported
    | Undecryptable
    | Expire
)
