"""Every sentence the bot says to a patient, in one place.

Written for a reader who may be elderly, anxious or new to chat apps: short sentences, plain words, no
jargon ("encrypted" appears only where it reassures). The bot never asks for a name, date of birth or
address. **Bold** marks the words a patient should type; the handler renders the Markdown.

Each field is a `str.format` template. Every template may use `{practice}` (the practice's name) and
`{how_to_contact}` (the practice's own contact sentence); some take more values, listed in
`PLACEHOLDERS`. A practice may override any field with `dataclasses.replace` (typically `how_to_contact`,
`privacy_notice`, `what_happens_next` and `emergency_advice`); a template that names an unknown value, or
uses attribute access or a format spec, is refused when the `Texts` is built, so a typo in a practice's
configuration stops the bot at start-up rather than in the middle of a patient's conversation. Write a
literal brace as `{{` or `}}`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, fields

# The values every template may use.
COMMON_PLACEHOLDERS = frozenset({"practice", "how_to_contact"})

# Fields that take values besides the common ones.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "request_intro": frozenset({"area"}),
    "request_intro_by": frozenset({"area", "requested_by"}),
    "nhs_number_readback": frozenset({"nhs_number"}),
    "masked_offer": frozenset({"masked"}),
    "server_refused": frozenset({"servers"}),
    "photo_guidance": frozenset({"max_photos", "area"}),
    "photo_received": frozenset({"number", "remaining"}),
    "photo_received_last": frozenset({"number"}),
    "photo_replaced": frozenset({"number"}),
    "retake": frozenset({"number", "problem", "tip"}),
    "photo_kept": frozenset({"number"}),
    "limit_reached": frozenset({"max_photos"}),
    "photo_rejected_unsupported_type": frozenset({"detected"}),
    "photo_duplicate": frozenset({"number"}),
    "submitted": frozenset({"reference"}),
    "cancelled_with_photos": frozenset({"photos"}),
    "expired_with_photos": frozenset({"photos"}),
    "request_expired_with_photos": frozenset({"photos"}),
    "status_submitted": frozenset({"reference"}),
    "unsupported": frozenset({"kind"}),
    "something_went_wrong": frozenset({"reference"}),
    "help_photos": frozenset({"max_photos"}),
    "consent_second_opinion": frozenset({"reference"}),
    "consent_teaching": frozenset({"reference"}),
    "consent_recorded_yes": frozenset({"reference"}),
    "consent_recorded_no": frozenset({"reference"}),
    "photos_viewed_and_deleted": frozenset({"reference"}),
    "photos_deleted_by_practice": frozenset({"reference"}),
    "room_joined_by_other_with_photos": frozenset({"photos"}),
    "room_removal_refused_with_photos": frozenset({"photos"}),
}

# Templates that are themselves the value of a common placeholder: only `{practice}` makes sense there.
_ONLY_PRACTICE = frozenset({"how_to_contact"})

# How an unsupported message kind (as the handler names it) reads in a sentence.
_KIND_PHRASES: dict[str, str] = {
    "video": "a video",
    "voice message": "a voice message",
    "audio": "an audio recording",
    "sticker": "a sticker",
    "location": "a location",
    "file": "that kind of file",
    "poll": "a poll",
}
_UNKNOWN_KIND = "that kind of message"

# Letters whose spoken name starts with a vowel sound, for "an MP4 video" but "a PDF file".
_VOWEL_SOUND_LETTERS = frozenset("AEFHILMNORSX")


@dataclass(frozen=True)
class Texts:
    """The patient-facing wording. Construct with no arguments for the defaults."""

    # The practice's own details: the fields a practice is expected to override.
    how_to_contact: str = "Please phone {practice}, or ask at reception."
    emergency_advice: str = "Not for emergencies: call 111, or 999 in an emergency."
    privacy_notice: str = (
        "Privacy notice: the practice may ask for a photo of your skin problem or bruise. A doctor or "
        "nurse uses it to decide your treatment, and it may go in your medical record. Send only the NHS "
        "number with it: no name, date of birth or address. Show only that area, with no one else in "
        "the photo."
    )
    # Where the practice's full privacy notice is: a practice sets its own link here.
    privacy_link: str = "Full notice: on the practice's website."
    what_happens_next: str = "A doctor or nurse will look at them."
    # When the patient should expect to hear back: a practice sets its own promise here.
    reply_time: str = "The practice will reply within 2 working days."

    # Greeting (the first message when the bot joins the chat).
    greeting: str = "Hello, this is {practice}'s secure photo chat."
    request_intro: str = "The practice has asked you for a photo of: {area}."
    request_intro_by: str = "{requested_by} at {practice} has asked you for a photo of: {area}."
    record_notice: str = (
        "The photo may be kept in your medical record, to show what your care was based on. To have it "
        "deleted once seen instead, reply **DELETE**."
    )

    # NHS number.
    ask_nhs_number: str = "What is the **NHS number** (10 digits) of the person in the photo?"
    nhs_number_prompt: str = "Please type the 10-digit **NHS number** of the person in the photo."
    nhs_number_readback: str = (
        "I've read the NHS number as **{nhs_number}**. Whose number is it?\n"
        "**1**: mine\n"
        "**2**: someone I look after\n"
        "If I've read it wrong, reply **no**."
    )
    nhs_number_unknown: str = (
        "You can find the NHS number in the NHS App, on a letter from the practice or a hospital, or on a "
        "repeat prescription slip. If you can't find it, the practice can help. {how_to_contact}"
    )
    nhs_number_retry: str = "No problem. Please type the NHS number again."
    nhs_number_confirmed: str = "Thank you. I've removed the number from this chat."

    readback_removed: str = "I've removed my read-back of it too."

    # Screening.
    screening_intro: str = "Thank you."
    ask_intimate: str = (
        "Is the photo of an **intimate area** (genitals, bottom or breasts)? Reply **yes** or **no**."
    )
    ask_under_18: str = "Is the person in the photo **under 18**? Reply **yes** or **no**."
    refused: str = (
        "I'm sorry: to protect children, this service can't accept intimate photos of anyone under 18. "
        "Please don't send any photos here. The practice can still help. {how_to_contact}"
    )
    refused_photo: str = (
        "I'm sorry, I can't accept photos for this request, so I've deleted that one without "
        "looking at it. {how_to_contact}"
    )
    ask_who: str = "Whose NHS number is it?\n**1**: mine\n**2**: someone I look after\nReply **1** or **2**."
    ask_storage: str = (
        "What should happen to the photo once a doctor or nurse has seen it?\n"
        "**1**: it may be kept in my medical record\n"
        "**2**: delete it (a written description goes in my record instead)\n"
        "You'll get the same care either way. Reply **1** or **2**."
    )
    intimate_storage: str = (
        "Because it's an intimate area, the doctor or nurse will describe the photo in your record, then "
        "delete it."
    )
    storage_keep_chosen: str = "Thank you. The photo may be kept in your medical record."
    storage_delete_chosen: str = (
        "Thank you. The photo will be deleted once a doctor or nurse has seen it. To change your mind, "
        "reply **CHANGE**."
    )

    # Photos.
    photo_guidance: str = (
        "Now send a photo of {area}, up to {max_photos}: daylight, plain background, in focus. One from "
        "further away, one close-up with a coin or ruler beside it. Add a note if you like, then reply "
        "**DONE**."
    )
    area_of_concern: str = "the area"
    photos_prompt_first: str = "Please send a photo of the area, then reply **DONE**."
    photos_prompt_more: str = "You can send another photo, or reply **DONE** if you've finished."
    photos_prompt_full: str = "Reply **DONE** to send your photos to the practice."
    photos_prompt_retake: str = "Please send a new photo, or reply **KEEP** to use the last one anyway."
    photo_received: str = (
        "Photo {number} received and removed from this chat, to keep it private. Send another, or reply "
        "**DONE**."
    )
    photo_received_last: str = (
        "Photo {number} received and removed from this chat, to keep it private. That's the most I can "
        "take: reply **DONE** to send them."
    )
    photo_replaced: str = "I've deleted the earlier version of photo {number}."
    retake: str = (
        "Photo {number} arrived, but it looks {problem}. Could you take it again? {tip} Then send the new "
        "photo, or reply **KEEP** to use this one anyway. I've removed it from this chat to keep it private."
    )
    issue_blurred: str = "a little blurred"
    tip_blurred: str = "Hold the phone steady, and tap the screen on the area to focus."
    issue_too_dark: str = "too dark"
    tip_too_dark: str = "Try again in daylight, near a window."
    issue_too_bright: str = "too bright"
    tip_too_bright: str = "Try again out of direct sunlight, and without the flash."
    issue_too_small: str = "too small to show detail"
    tip_too_small: str = "Move a little closer, and send the photo at its full size."
    issue_other: str = "unclear"
    tip_other: str = "Try again in good light, holding the phone steady."
    photo_kept: str = "OK, I'll use photo {number} as it is."
    photo_duplicate: str = "I already have that photo (photo {number})."
    limit_reached: str = (
        "You've already sent the most photos I can take ({max_photos}), so I've deleted that last one "
        "without using it. Reply **DONE** to send your photos to the practice."
    )
    photo_not_yet: str = (
        "Please don't send photos yet: I've removed that one from this chat. You'll be able to send "
        "photos after a few questions."
    )
    photo_not_now: str = "This chat isn't taking photos at the moment, so I've removed that one."
    photo_rejected_empty: str = "That photo arrived empty, with no picture in it. Please send it again."
    photo_rejected_too_large: str = (
        "That photo is too large for me to accept. Please send it again as an ordinary photo from your "
        "gallery or camera."
    )
    photo_rejected_too_many_pixels: str = (
        "That picture is too large for me to open. Please send an ordinary photo taken with your "
        "phone's camera."
    )
    photo_rejected_unsupported_type: str = (
        "That file looks like {detected}, not a photo, so I couldn't use it. Please send a photo "
        "taken with your phone's camera."
    )
    photo_rejected_unknown_type: str = (
        "That file doesn't look like a photo I can open, so I couldn't use it. Please send a photo "
        "taken with your phone's camera."
    )
    photo_rejected_truncated: str = (
        "That photo didn't arrive in full: part of it is missing. Please send it again."
    )
    photo_rejected_corrupt: str = (
        "I couldn't open that photo: the file seems to be damaged. Please send it again, or take a new one."
    )
    photo_rejected_download_failed: str = (
        "I couldn't fetch that photo. Please wait a minute and send it again."
    )
    photo_rejected_unencrypted: str = (
        "That photo wasn't sent securely, so I've removed it without using it. Please send it again. "
        "If it happens again, please update your chat app."
    )
    photo_rejected_other: str = "I couldn't use that photo. Please send it again."
    photo_rejected_not_matrix: str = (
        "That attachment is a link to somewhere outside this chat, so I couldn't fetch it and have removed "
        "it. Please send the photo itself from your phone's camera or gallery."
    )
    photo_rejected_remote: str = (
        "That photo is stored on another server that I couldn't fetch it from, so I've removed it without "
        "using it. Please send it again from your phone's camera or gallery."
    )
    photo_rejected_gone: str = (
        "That photo has already been deleted from the server, so I couldn't use it and have removed the "
        "message. Please send it again from your phone's camera or gallery."
    )
    # The bot cannot store anything for now (its disk is full): it keeps the photo's message and tries again.
    photo_not_stored_yet: str = (
        "Sorry, I couldn't save your photo just now because of a problem on our side. You don't need to "
        "send it again: I'll keep trying, and tell you when it's safely received. If you haven't heard "
        "from me by tomorrow, please try again later."
    )
    photo_removed: str = "I've removed it from this chat to keep it private."
    need_a_photo: str = "I haven't received any photos yet. Please send at least one, then reply **DONE**."
    storage_unchanged_intimate: str = (
        "Because it's an intimate area, the photo will be described in your record and then deleted."
    )
    note_added: str = "Thank you, I've added your message to your request."
    notes_full: str = (
        "Thank you. I can't add any more messages to this request. Reply **DONE** to send it; you can "
        "tell the doctor or nurse anything else when the practice contacts you."
    )

    # Submitted.
    submitted: str = "Thank you. Your photos have been sent to {practice}. Your reference is **{reference}**."
    submitted_kept: str = "They may be kept in your medical record."
    submitted_deleted: str = (
        "They'll be deleted once a doctor or nurse has seen them; a written description goes in your record."
    )
    deleted_from_chat: str = "They're gone from this chat."
    # Sent with the submission, before the purge has run: say what is under way, not what is done.
    deleted_from_server: str = "Copies on the chat server are being deleted."
    phone_copies: str = "You may want to delete copies on your phone."
    start_again: str = "To send more photos, reply **START**."

    # Cancelled and expired.
    cancelled: str = "Cancelled. Nothing was sent to the practice."
    cancelled_with_photos: str = (
        "Cancelled. I've deleted {photos} you sent. Nothing was sent to the practice."
    )
    expired: str = "Your unfinished request has expired. Nothing was sent to the practice."
    expired_with_photos: str = (
        "Your unfinished request has expired, so I've deleted {photos} you sent. Nothing was sent "
        "to the practice."
    )
    number_removed: str = "I've also removed your NHS number from this chat."
    nothing_to_cancel: str = "There's nothing to cancel."

    # What a finished conversation says to any later message.
    status_submitted: str = "Your photos have been sent to the practice (reference **{reference}**)."
    status_refused: str = "This chat can't accept photos for this request. {how_to_contact}"
    status_cancelled: str = "This request was cancelled."
    status_expired: str = "This request has expired."

    # Chats that are not private, or that the bot cannot keep safe: it says why, then leaves.
    room_not_private: str = (
        "Hello, this is {practice}'s photo service. I can only help in a private chat between you and me, "
        "and this chat has other people in it, so I'm leaving it. To send a photo, start a new chat with "
        "me on your own."
    )
    room_cannot_remove: str = (
        "Hello, this is {practice}'s photo service. This chat's settings don't let me remove messages, so "
        "it isn't safe for your NHS number or photos, and I'm leaving it. Please start a new chat with me "
        "on your own (in most apps: Start chat, then my name)."
    )
    room_not_encrypted: str = (
        "Hello, this is {practice}'s photo service. This chat is not encrypted and its settings don't let me "
        "turn encryption on, so it isn't safe for your NHS number or photos, and I'm leaving it. Please "
        "start a new chat with me on your own (in most apps: Start chat, then my name)."
    )
    room_joined_by_other: str = (
        "Someone else has joined or been invited to this chat, so it is no longer private. To keep your "
        "details safe I've stopped, and nothing more was sent to the practice. I'm leaving this chat. To "
        "send photos, start a new chat with me on your own."
    )
    room_removal_refused: str = (
        "I couldn't remove your message from this chat: its settings no longer let me, so it isn't safe "
        "for your NHS number or photos. I've stopped, and nothing more was sent to the practice. Please "
        "delete your messages that show your NHS number yourself (press and hold one, then Remove). I'm "
        "leaving this chat. To send photos, start a new chat with me on your own."
    )
    room_removal_refused_with_photos: str = (
        "I couldn't remove your message from this chat: its settings no longer let me, so it isn't safe "
        "for your NHS number or photos. I've stopped and deleted {photos} you sent; nothing more was sent "
        "to the practice. Please delete your messages that show your NHS number yourself (press and hold "
        "one, then Remove). I'm leaving this chat. To send photos, start a new chat with me on your own."
    )
    room_joined_by_other_with_photos: str = (
        "Someone else has joined or been invited to this chat, so it is no longer private. To keep your "
        "details safe I've stopped and deleted {photos} you sent; nothing more was sent to the practice. "
        "I'm leaving this chat. To send photos, start a new chat with me on your own."
    )

    # A clinician's photo request that was not answered in time.
    request_expired: str = (
        "Sorry, the practice's request for a photo has expired, so I can't take photos for it now. "
        "Nothing was sent to the practice. If you still need to send a photo, {how_to_contact}"
    )
    request_expired_with_photos: str = (
        "Sorry, the practice's request for a photo has expired, so I've deleted {photos} you sent. "
        "Nothing was sent to the practice. If you still need to send a photo, {how_to_contact}"
    )

    # Consent to share, asked after the photos were sent.
    consent_second_opinion: str = (
        "A doctor or nurse at {practice} would like to show your photos (reference **{reference}**) to "
        "another doctor for a second opinion. Do you agree? Reply **yes** or **no**. Your care is the "
        "same whatever you answer."
    )
    consent_teaching: str = (
        "A doctor or nurse at {practice} would like to use your photos (reference **{reference}**) for "
        "teaching other health professionals, without your name or NHS number. Do you agree? Reply "
        "**yes** or **no**. Your care is the same whatever you answer."
    )
    consent_who: str = (
        "Thank you. Who is answering? Reply **1** if the photos are of you. Reply **2** if you have legal "
        "authority to decide for the person in the photos (for example, as their parent or under a "
        "lasting power of attorney)."
    )
    consent_recorded_yes: str = "Thank you. I've recorded that you agree (reference **{reference}**)."
    consent_recorded_no: str = "Thank you. I've recorded that you don't agree (reference **{reference}**). The photos won't be shared."
    consent_withdrawn: str = "OK, I've left that question. Nothing will be shared without your agreement."
    help_consent: str = (
        "The practice asked whether your photos may be shared. Please answer the question below. If you're "
        "not sure, say you don't agree: nothing is shared without your agreement. {how_to_contact}"
    )

    # Told after the practice has dealt with the photos.
    photos_viewed_and_deleted: str = (
        "A doctor or nurse has looked at your photos (reference **{reference}**) and they have now been "
        "deleted, as you asked. A written description is kept in your record."
    )
    photos_deleted_by_practice: str = (
        "Your photos (reference **{reference}**) have been deleted by the practice."
    )
    staff_command: str = (
        "That's a command for practice staff, so it doesn't work in this chat. Reply **help** to see what "
        "you can do here."
    )

    # Edits of earlier messages.
    edit_too_late: str = (
        "I saw your change, but I can't change that answer now. If something is wrong, tell the doctor "
        "or nurse when the practice contacts you, or reply **CANCEL** to start again."
    )

    # A message removed for personal details: its other words offered back, masked.
    masked_offer: str = (
        "Would you like me to add your message without those details?\n\n{masked}\n\nReply **yes** or **no**."
    )
    masked_added: str = "Thank you, I've added it to your request."
    masked_declined: str = "OK, I haven't added it."

    # A patient whose homeserver the practice does not allow (the bot then leaves the chat).
    server_refused: str = (
        "Hello, this is {practice}'s secure photo chat. Sorry: it only takes chats from accounts made on "
        "{servers}, so I can't help you from this account, and I'll leave this chat now. To send a photo, "
        "make an account on {servers} and message me from it. Or contact the practice: {how_to_contact}"
    )

    # Anything unexpected.
    not_understood: str = "Sorry, I didn't understand that."
    yes_or_no: str = "Please reply **yes** or **no**."
    one_or_two: str = "Please reply **1** or **2**."
    already_started: str = (
        "You're already part-way through. To begin again from the start, reply **CANCEL** and then **START**."
    )
    undecryptable: str = (
        "Sorry, I couldn't open your last message: it didn't reach me in a form I could read. Please "
        "send it again. If that doesn't work, close the app completely, open it again, and try once more."
    )
    unsupported: str = (
        "Sorry, I can't use {kind} here, so I've removed it from this chat. I can only take photos and "
        "typed messages."
    )
    something_went_wrong: str = (
        "Sorry, something went wrong on our side (ref {reference}). Nothing you sent has been lost. "
        "Please try again in a minute; if it keeps happening, contact the practice and quote the reference."
    )

    # Help, one per step, then the lines every help ends with.
    help_nhs_number: str = (
        "I need the NHS number of the person in the photo. It has 10 digits, often written in groups "
        "of 3, 3 and 4. You can find it in the NHS App, on a prescription, or on a letter from your GP "
        "surgery or hospital. If you can't find it, the practice can help. {how_to_contact}"
    )
    help_confirm: str = "If I've read the NHS number wrong, reply **no** and type it again."
    help_intimate: str = (
        "I ask because photos of intimate areas (the genitals, bottom or breasts) are handled with "
        "extra care: the doctor or nurse describes them in the record and then deletes them. "
        "Reply **yes** or **no**."
    )
    help_under_18: str = (
        "I ask because this service can't accept intimate photos of anyone under 18. Reply **yes** or **no**."
    )
    help_who: str = (
        "Reply **1** if the photo is of you. Reply **2** if it's of someone you look after: your child, or "
        "someone you care for or help. The practice needs to know who you are to them (for example their "
        "parent, or their attorney) and that they agree to the photo, or that you can decide for them. "
        "If you're not sure, the practice can help. {how_to_contact}"
    )
    help_storage: str = (
        "Reply **1** if the photo may be kept in your medical record, so the record shows what your care "
        "was based on. Reply **2** if you'd rather the doctor or nurse look at it, write a description, "
        "and then delete it. You'll get the same care either way."
    )
    help_photos: str = (
        "To send a photo, tap the paperclip or **+** button next to where you type, then choose a "
        "photo, or take one with the camera. You can send up to {max_photos}. You can also type a few "
        "words about it. When you've finished, reply **DONE**."
    )
    help_finished: str = (
        "To send new photos, reply **START**. For anything else, the practice can help. {how_to_contact}"
    )
    help_cancel: str = "To stop at any time, reply **CANCEL**: any photos you've sent will be deleted."

    # Shown by some apps next to a removed message.
    redact_reason_personal: str = "Removed to protect your privacy: only the NHS number is needed."
    redact_reason_number: str = "Removed to keep your NHS number private."
    redact_reason_not_private: str = "Removed: this chat is no longer private."
    redact_reason_photo: str = "Removed from the chat to keep your photo private."
    redact_reason_unsupported: str = "Removed: this chat only takes photos and typed messages."

    def __post_init__(self) -> None:
        for item in fields(self):
            template = getattr(self, item.name)
            allowed = (
                frozenset({"practice"})
                if item.name in _ONLY_PRACTICE
                else COMMON_PLACEHOLDERS | PLACEHOLDERS.get(item.name, frozenset())
            )
            _check_template(item.name, template, allowed)

    def fill(self, template: str, *, practice: str, **values: object) -> str:
        """A template with the practice's name, its contact sentence and `values` put in."""
        contact = self.how_to_contact.format(practice=practice)
        return template.format(practice=practice, how_to_contact=contact, **values)


def _check_template(name: str, template: object, allowed: frozenset[str]) -> None:
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"text {name!r} must be a non-empty string")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(
            f"text {name!r} has an unmatched brace (write a literal one as {{{{ or }}}})"
        ) from error
    for _, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        if field_name not in allowed:
            known = ", ".join(sorted(allowed))
            raise ValueError(f"text {name!r} uses {{{field_name}}}; it may use only: {known}")
        if format_spec or conversion:
            raise ValueError(f"text {name!r} may not use a format spec or conversion in {{{field_name}}}")


def count_photos(count: int) -> str:
    """'the photo', 'the 3 photos'."""
    return "the photo" if count == 1 else f"the {count} photos"


def describe_kind(kind: str) -> str:
    """How the handler's name for an unsupported message kind reads in a sentence: 'a voice message'."""
    return _KIND_PHRASES.get(kind.strip().lower(), _UNKNOWN_KIND)


def describe_file_type(detected: str) -> str:
    """'PDF' -> 'a PDF file', 'MP4 video' -> 'an MP4 video', 'Photoshop document' -> 'a Photoshop document'.

    `detected` must not be blank.
    """
    detected = " ".join(detected.split())
    noun = detected if detected.split()[-1].lower() in {"video", "document", "file"} else f"{detected} file"
    return f"{_article(detected)} {noun}"


def _article(word: str) -> str:
    first = word.split(maxsplit=1)[0]
    is_acronym = len(first) > 1 and all(ch.isupper() or ch.isdigit() for ch in first)
    if is_acronym:
        return "an" if first[0] in _VOWEL_SOUND_LETTERS else "a"
    return "an" if first[0].lower() in "aeiou" else "a"
