"""Photos in the conversation: whether to download one, and what to do with one stored, refused or
unwanted. Part of `step` (see `bot.conversation.steps`): pure, no I/O.

A photo message always leaves the chat (redaction) and, when the practice holds a homeserver-admin
credential, its upload leaves the homeserver. A stored photo the conversation cannot use is destroyed at
once, so no photo is ever both kept and destroyed, or forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.conversation import replies
from bot.conversation.effects import DestroyPhotos, Effect, PurgeMedia, Redact, Reply
from bot.conversation.inputs import PhotoRejected, PhotoStored, Unsupported
from bot.conversation.model import Conversation, Policy, State
from bot.conversation.replies import Writer
from bot.ids import EventID

Outcome = tuple[Conversation, tuple[Effect, ...]]

# Unsupported message kinds that upload media to the homeserver (a sticker's media belongs to its pack).
MEDIA_KINDS = frozenset({"video", "voice message", "audio", "file"})


@dataclass(frozen=True)
class Admit:
    """Download and process the photo."""


@dataclass(frozen=True)
class Refuse:
    """Do not download the photo; pass `PhotoNotExpected` to `step`, which replies. `reason` is for logs:
    "not_expected" (the conversation is not at the photo step) or "limit_reached"."""

    reason: str


def photo_admission(conversation: Conversation | None, policy: Policy) -> Admit | Refuse:
    """Whether the handler should download a photo that just arrived (asked before downloading it)."""
    if conversation is None or conversation.state is not State.AWAITING_PHOTOS:
        return Refuse("not_expected")
    if conversation.retake_photo_id is None and len(conversation.photo_ids) >= policy.max_photos:
        return Refuse("limit_reached")
    return Admit()


def photo_rejected(conversation: Conversation, event: PhotoRejected, say: Writer) -> Outcome:
    """A photo that could not be used: say why, specifically, and remove it."""
    if conversation.state is not State.AWAITING_PHOTOS:
        return photo_not_expected(conversation, event.event_id, say)
    return conversation, (
        *_remove_photo_message(event.event_id, say),
        Reply(replies.rejection_text(event.reason, event.detected, say)),
    )


def unsupported(conversation: Conversation, event: Unsupported, say: Writer) -> Outcome:
    """A video, voice message, file...: removed (a body may be in it), and the patient told what works."""
    removal: tuple[Effect, ...] = (Redact(event.event_id, say(say.texts.redact_reason_unsupported)),)
    if say.policy.media_purge_enabled and event.kind.strip().lower() in MEDIA_KINDS:
        removal += (PurgeMedia(event.event_id),)
    return conversation, (*removal, Reply(replies.unsupported_text(event.kind, conversation, say)))


def _remove_photo_message(event_id: EventID, say: Writer) -> tuple[Effect, ...]:
    """Every photo message leaves the chat, and its upload leaves the homeserver when the practice can."""
    redact: tuple[Effect, ...] = (Redact(event_id, say(say.texts.redact_reason_photo)),)
    return (*redact, PurgeMedia(event_id)) if say.policy.media_purge_enabled else redact


def photo_not_expected(conversation: Conversation, event_id: EventID, say: Writer) -> Outcome:
    """A photo the conversation does not take now: removed, and the patient told why and what to do."""
    t = say.texts
    removal = _remove_photo_message(event_id, say)
    match conversation.state:
        case State.AWAITING_PHOTOS:  # refused by `photo_admission` because the limit was reached
            text = say(t.limit_reached, max_photos=say.policy.max_photos)
        case State.REFUSED:
            text = say(t.refused_photo)
        case State.SUBMITTED | State.CANCELLED | State.EXPIRED:
            text = say.join([say(t.photo_not_now), replies.prompt(conversation, say)])
        case _:
            text = say.join([say(t.photo_not_yet), replies.prompt(conversation, say)])
    return conversation, (*removal, Reply(text))


def photo_stored(conversation: Conversation, event: PhotoStored, say: Writer) -> Outcome:
    """Accept a stored photo, ask about a retake (replacing any photo already flagged), or destroy it
    when the limit is reached or the conversation is not at the photo step."""
    t = say.texts
    removal = _remove_photo_message(event.event_id, say)
    photo_id = event.photo_id
    if conversation.state is not State.AWAITING_PHOTOS:
        # Stored although `photo_admission` would have refused it: destroy it at once.
        unchanged, refusal = photo_not_expected(conversation, event.event_id, say)
        return unchanged, (DestroyPhotos((photo_id,)), *refusal)
    if photo_id in conversation.all_photo_ids:  # the same photo reported twice: nothing to do
        number = conversation.all_photo_ids.index(photo_id) + 1
        return conversation, (*removal, Reply(say(t.photo_duplicate, number=number)))
    replaced = conversation.retake_photo_id
    if replaced is None and len(conversation.photo_ids) >= say.policy.max_photos:
        return conversation, (
            *removal,
            DestroyPhotos((photo_id,)),
            Reply(say(t.limit_reached, max_photos=say.policy.max_photos)),
        )
    effects: list[Effect] = list(removal)
    number = len(conversation.photo_ids) + 1
    parts: list[str] = []
    if replaced is not None:
        effects.append(DestroyPhotos((replaced,)))
        parts.append(say(t.photo_replaced, number=number))
    issues = tuple(issue for issue in event.quality_issues if issue.strip())
    if issues:
        conversation = replace(conversation, retake_photo_id=photo_id)
        parts.append(replies.retake_text(number, issues, say))
    else:
        conversation = replace(
            conversation, photo_ids=(*conversation.photo_ids, photo_id), retake_photo_id=None
        )
        remaining = say.policy.max_photos - number
        parts.append(
            say(t.photo_received, number=number, remaining=remaining)
            if remaining > 0
            else say(t.photo_received_last, number=number)
        )
    return conversation, (*effects, Reply(" ".join(parts)))
