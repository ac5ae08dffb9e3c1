"""The replies the state machine composes from `bot.texts`: prompts, help and the longer messages.

Pure functions of the conversation and the policy; the wording itself lives in `bot.texts`.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.conversation.model import Conversation, PendingConsent, Policy, State
from bot.conversation.reference import reference_code
from bot.texts import Texts, count_photos, describe_file_type, describe_kind


class Writer:
    """Fills `bot.texts` templates with the practice's name and contact sentence."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.texts: Texts = policy.texts

    def __call__(self, template: str, **values: object) -> str:
        return self.texts.fill(template, practice=self.policy.practice_name, **values)

    def join(self, parts: Iterable[str]) -> str:
        """Paragraphs of one message."""
        return "\n\n".join(part for part in parts if part)


def readable_nhs_number(digits: str) -> str:
    """'9434765919' -> '943 476 5919'."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def prompt(conversation: Conversation, say: Writer) -> str:
    """What the patient should do now: the question of the current step, asked again."""
    t = say.texts
    if conversation.consent is not None:
        return consent_question(conversation.consent, say)
    match conversation.state:
        case State.AWAITING_NHS_NUMBER:
            return say(t.nhs_number_prompt)
        case State.CONFIRMING_NHS_NUMBER:
            if conversation.nhs_number is None:  # not reachable through `step`; be helpful anyway
                return say(t.nhs_number_prompt)
            return say(t.nhs_number_readback, nhs_number=readable_nhs_number(conversation.nhs_number))
        case State.SCREEN_INTIMATE:
            return say(t.ask_intimate)
        case State.SCREEN_UNDER_18:
            return say(t.ask_under_18)
        case State.SCREEN_WHO:
            return say(t.ask_who)
        case State.STORAGE_CHOICE:
            return say(t.ask_storage)
        case State.AWAITING_PHOTOS if conversation.pending_note is not None:
            return say(t.masked_offer, masked=conversation.pending_note)
        case State.AWAITING_PHOTOS:
            return photos_prompt(conversation, say)
        case State.REFUSED:
            return say.join([say(t.status_refused), say(t.start_again)])
        case State.SUBMITTED:
            reference = reference_code(conversation.conversation_id)
            return say.join([say(t.status_submitted, reference=reference), say(t.start_again)])
        case State.CANCELLED:
            return say.join([say(t.status_cancelled), say(t.start_again)])
        case State.EXPIRED:
            return say.join([say(t.status_expired), say(t.start_again)])


def consent_question(pending: PendingConsent, say: Writer) -> str:
    t = say.texts
    if pending.stage == "who":
        return say(t.consent_who)
    template = t.consent_teaching if pending.purpose == "teaching" else t.consent_second_opinion
    return say(template, reference=pending.reference)


def photos_prompt(conversation: Conversation, say: Writer) -> str:
    t = say.texts
    if conversation.retake_photo_id is not None:
        return say(t.photos_prompt_retake)
    if not conversation.photo_ids:
        return say(t.photos_prompt_first)
    if len(conversation.photo_ids) >= say.policy.max_photos:
        return say(t.photos_prompt_full)
    return say(t.photos_prompt_more)


def help_text(conversation: Conversation, say: Writer) -> str:
    """Help for the current step, how to stop, and where to go in an emergency."""
    t = say.texts
    match conversation.state:
        case State.AWAITING_NHS_NUMBER:
            specific = say(t.help_nhs_number)
        case State.CONFIRMING_NHS_NUMBER:
            specific = say.join([say(t.help_who), say(t.help_confirm)])
        case State.SCREEN_INTIMATE:
            specific = say(t.help_intimate)
        case State.SCREEN_UNDER_18:
            specific = say(t.help_under_18)
        case State.SCREEN_WHO:
            specific = say(t.help_who)
        case State.STORAGE_CHOICE:
            specific = say(t.help_storage)
        case State.AWAITING_PHOTOS:
            specific = say(t.help_photos, max_photos=say.policy.max_photos)
            if conversation.keep_in_record and not conversation.intimate:
                specific = say.join([specific, say(t.record_notice)])
            if conversation.retake_photo_id is not None:
                specific = say.join([specific, say(t.photos_prompt_retake)])
        case State.REFUSED | State.SUBMITTED | State.CANCELLED | State.EXPIRED:
            specific = say(t.help_finished)
    cancel = "" if conversation.state.finished else say(t.help_cancel)
    return say.join([specific, cancel, say(t.emergency_advice)])


def introduction(say: Writer, requested_area: str | None, requested_by: str | None) -> str:
    """The first message: who the bot is, the privacy notice (rule 9) with where to read it in full, and
    that it is not for emergencies. What a record means is said once, where the choice is made."""
    t = say.texts
    request = request_intro(say, requested_area, requested_by) if requested_area is not None else ""
    return say.join(
        [
            say(t.greeting),
            request,
            " ".join([say(t.privacy_notice), say(t.privacy_link)]),
            say(t.emergency_advice),
        ]
    )


def request_intro(say: Writer, requested_area: str, requested_by: str | None) -> str:
    """'Dr Patel at Riverside Surgery has asked you for a photo of: the rash on your arm.'"""
    if requested_by:
        return say(say.texts.request_intro_by, requested_by=requested_by, area=requested_area)
    return say(say.texts.request_intro, area=requested_area)


def photo_guidance(conversation: Conversation, say: Writer) -> str:
    t = say.texts
    area = conversation.requested_area or say(t.area_of_concern)
    return say(t.photo_guidance, max_photos=say.policy.max_photos, area=area)


def retake_text(number: int, issues: tuple[str, ...], say: Writer) -> str:
    """'Photo 2 arrived, but it looks too dark and a little blurred. ...' with a tip for each issue."""
    t = say.texts
    known = {
        "blurred": (t.issue_blurred, t.tip_blurred),
        "too_dark": (t.issue_too_dark, t.tip_too_dark),
        "too_bright": (t.issue_too_bright, t.tip_too_bright),
        "too_small": (t.issue_too_small, t.tip_too_small),
    }
    described: list[tuple[str, str]] = []
    for issue in issues:
        entry = known.get(issue, (t.issue_other, t.tip_other))
        if entry not in described:
            described.append(entry)
    problems = [say(problem) for problem, _ in described]
    problem = problems[0] if len(problems) == 1 else ", ".join(problems[:-1]) + " and " + problems[-1]
    tip = " ".join(say(tip) for _, tip in described)
    return say(t.retake, number=number, problem=problem, tip=tip)


def rejection_text(reason: str, detected: str | None, say: Writer) -> str:
    """Why the photo could not be used and what to do, naming what the file looked like if known."""
    t = say.texts
    if reason == "unsupported_type":
        if detected and detected.strip():
            return say(t.photo_rejected_unsupported_type, detected=describe_file_type(detected))
        return say(t.photo_rejected_unknown_type)
    templates = {
        "empty": t.photo_rejected_empty,
        "too_large": t.photo_rejected_too_large,
        "too_many_pixels": t.photo_rejected_too_many_pixels,
        "truncated": t.photo_rejected_truncated,
        "corrupt": t.photo_rejected_corrupt,
        "download_failed": t.photo_rejected_download_failed,
        "unencrypted": t.photo_rejected_unencrypted,
        "not_matrix": t.photo_rejected_not_matrix,
        "remote": t.photo_rejected_remote,
        "gone": t.photo_rejected_gone,
    }
    return say(templates.get(reason, t.photo_rejected_other))


def unsupported_text(kind: str, conversation: Conversation, say: Writer) -> str:
    return say.join([say(say.texts.unsupported, kind=describe_kind(kind)), prompt(conversation, say)])


def submitted_text(conversation: Conversation, say: Writer) -> str:
    """The reference, what happens next, what was deleted and where, and what may remain on the phone.

    `conversation` is the one being submitted (before its photos and NHS number are cleared).
    """
    t = say.texts
    reference = reference_code(conversation.conversation_id)
    kept = conversation.keep_in_record and not conversation.intimate
    return say.join(
        [
            " ".join(
                [
                    say(t.submitted, reference=reference),
                    say(t.what_happens_next),
                    say(t.reply_time),
                ]
            ),
            " ".join(
                ([] if kept else [say(t.submitted_deleted)])
                + [say(t.deleted_from_chat)]
                + ([say(t.deleted_from_server)] if say.policy.media_purge_enabled else [])
                + [say(t.phone_copies)]
            ),
        ]
    )


def ended_text(
    conversation: Conversation, say: Writer, *, plain: str, with_photos: str, numbers_removed: bool
) -> str:
    """The reply to CANCEL or to expiry: what was deleted, and how to start again."""
    t = say.texts
    count = conversation.photo_count
    first = say(with_photos, photos=count_photos(count)) if count else say(plain)
    removed = say(t.number_removed) if numbers_removed else ""
    return say.join([" ".join(part for part in (first, removed) if part), say(t.start_again)])
