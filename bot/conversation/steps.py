"""The patient conversation as a pure function: `step(conversation, input, policy)` gives the next
conversation and the effects the handler must carry out.

No I/O, no clock, no randomness: the same arguments always give the same result, so the handler can load
the conversation under the room's lock, call `step`, commit the new state and the effects in one
transaction, and only then carry the effects out. The flow is drawn in docs/conversation-flow.md and listed
in `bot.conversation.transitions.TRANSITIONS`; a test keeps the three in agreement.

Rules that hold in every state:
- every input gets at least one reply, except `Expire` of a finished conversation (nothing to say);
- a text first passes the personal-data guard (an NHS number, where one is expected, is not mistaken
  for a phone number): a finding is redacted and explained, and nothing else happens;
- HELP, CANCEL and START work everywhere; anything unexpected gets the current question again;
- a photo message is always removed from the chat (and its upload deleted from the homeserver when the
  practice allows it); a stored photo that cannot be used is destroyed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from bot import personal_data
from bot.conversation import consent, photos, replies
from bot.conversation.answers import (
    COURTESY,
    PHOTOS,
    STORAGE,
    WHO,
    YES_NO,
    Answer,
    Command,
    answer,
    command,
    number_unknown,
    reaction_answer,
)
from bot.conversation.choices import choices_for
from bot.conversation.effects import (
    NHS_NUMBER_SHOWN,
    DestroyPhotos,
    Effect,
    NotifyClinicians,
    Redact,
    RedactOwn,
    Reply,
    Submit,
)
from bot.conversation.inputs import (
    AskConsent,
    Begin,
    Edit,
    Expire,
    Input,
    PhotoNotExpected,
    PhotoRejected,
    PhotoStored,
    Reaction,
    RoomUnsafe,
    Text,
    Undecryptable,
    Unsupported,
)
from bot.conversation.model import Conversation, Policy, State
from bot.conversation.reference import reference_code, restart_conversation_id
from bot.conversation.replies import Writer
from bot.ids import EventID
from bot.nhs_number import NhsNumber, looks_like_nhs_number_attempt, parse_nhs_number
from bot.nhs_number import explain as explain_nhs_number_problem
from bot.screening_flags import EarlierScreening, note_flags, screening_warnings
from bot.texts import count_photos

Outcome = tuple[Conversation, tuple[Effect, ...]]

_NUMBER_STATES = (State.AWAITING_NHS_NUMBER, State.CONFIRMING_NHS_NUMBER)

# Ten digits with optional single separators: what the personal-data guard must not see while a patient is
# typing their NHS number (it could take a mistyped one for a phone number).
_NUMBER_LIKE = re.compile(r"(?<!\d)\d(?:[\s.\-\u2010-\u2015\u2212]?\d){9}(?!\d)")


class NoConversationError(ValueError):
    """`step` was given no conversation and an input other than `Begin`: the handler must begin one."""


def step(conversation: Conversation | None, event: Input, policy: Policy) -> Outcome:
    """The next conversation and what the handler must do. Deterministic; raises only
    `NoConversationError`."""
    return _with_choices(_next(conversation, event, policy))


def _with_choices(outcome: Outcome) -> Outcome:
    """The last reply (the question now asked) carries the answers it takes, for clients with buttons."""
    conversation, effects = outcome
    choices = choices_for(conversation)
    last = next((i for i in range(len(effects) - 1, -1, -1) if isinstance(effects[i], Reply)), None)
    if not choices or last is None:
        return outcome
    question = effects[last]
    assert isinstance(question, Reply)
    return conversation, (*effects[:last], replace(question, choices=choices), *effects[last + 1 :])


def _next(conversation: Conversation | None, event: Input, policy: Policy) -> Outcome:
    say = Writer(policy)
    if isinstance(event, Begin):
        return _begin(conversation, event, say)
    if conversation is None:
        raise NoConversationError("begin a conversation before passing it anything else")
    if isinstance(event, Expire):
        return _expire(conversation, say)
    if isinstance(event, AskConsent):
        return consent.ask(conversation, event, say)
    if isinstance(event, RoomUnsafe):
        return _room_unsafe(_touch(conversation, event.now), event.reason, say)
    if isinstance(event, Reaction):
        word = _reaction_word(conversation, event.key)
        if word is None:
            return conversation, ()  # a reaction that answers no question is not a message: no reply
        event = Text(event.event_id, word, event.now)
    if isinstance(event, Edit):
        return _mark_private(_edit(conversation, event, policy, say))
    return _mark_private(_remember(conversation, event, _step(conversation, event, say)))


def _mark_private(outcome: Outcome) -> Outcome:
    """Tag every reply that reads the NHS number back, so the handler can remove it once it is confirmed."""
    conversation, effects = outcome
    if conversation.nhs_number is None:
        return outcome
    shown = replies.readable_nhs_number(conversation.nhs_number)
    tagged = tuple(
        replace(effect, private=NHS_NUMBER_SHOWN)
        if isinstance(effect, Reply) and shown in effect.text and effect.private is None
        else effect
        for effect in effects
    )
    return conversation, tagged


def _step(conversation: Conversation, event: Input, say: Writer) -> Outcome:
    conversation = _touch(conversation, event.now)
    if _request_expired(conversation):
        t = say.texts
        ended, effects = _end(
            conversation,
            State.EXPIRED,
            say,
            plain=t.request_expired,
            with_photos=t.request_expired_with_photos,
        )
        if isinstance(event, Text):
            return ended, effects
        # A photo (or other message) that arrived after the expiry is handled as in any finished chat:
        # removed from the chat, and destroyed if it was stored.
        ended, more = _handle(ended, event, say)
        return ended, (*effects, *(effect for effect in more if not isinstance(effect, Reply)))
    return _handle(conversation, event, say)


def _remember(before: Conversation, event: Input, outcome: Outcome) -> Outcome:
    """After a text in an open conversation, remember it as the last answer (with the conversation before
    it), so an edit of it can be replayed; any other input ends that chance."""
    after, effects = outcome
    if replace(after, last_activity_at=before.last_activity_at) == before:
        return outcome  # nothing changed (help, a question asked again): the last answer stays editable
    if isinstance(event, Text) and not before.state.finished and not after.state.finished:
        bare = replace(before, last_answer_id=None, before_last_answer=None)
        return replace(after, last_answer_id=event.event_id, before_last_answer=bare), effects
    if after.before_last_answer is not None or after.last_answer_id is not None:
        after = replace(after, last_answer_id=None, before_last_answer=None)
    return after, effects


def _reaction_word(conversation: Conversation, key: str) -> str | None:
    """The answer a reaction gives to the question now asked, or None if it answers nothing here."""
    word = reaction_answer(key)
    if word is None:
        return None
    yes_no = word in {"yes", "no"}
    if conversation.consent is not None:
        return word if yes_no == (conversation.consent.stage == "answer") else None
    if conversation.pending_note is not None:
        return word if yes_no else None
    takes_yes_no = {State.CONFIRMING_NHS_NUMBER, State.SCREEN_INTIMATE, State.SCREEN_UNDER_18}
    takes_number = {State.CONFIRMING_NHS_NUMBER, State.SCREEN_WHO, State.STORAGE_CHOICE}
    return word if conversation.state in (takes_yes_no if yes_no else takes_number) else None


def _edit(conversation: Conversation, event: Edit, policy: Policy, say: Writer) -> Outcome:
    """An edit of the last answer, while nothing else has happened since, replays that answer with the new
    text; any other edit gets a kind reply. The edit event carries its text in clear, so it is removed
    wherever the original is."""
    base = conversation.before_last_answer
    if base is not None and event.replaces == conversation.last_answer_id:
        new, effects = step(base, Text(event.replaces, event.body, event.now), policy)
        also = tuple(
            Redact(event.event_id, effect.reason)
            for effect in effects
            if isinstance(effect, Redact) and effect.event_id == event.replaces
        )
        if event.replaces in new.number_event_ids:
            new = replace(new, number_event_ids=_with(new.number_event_ids, event.event_id))
        return new, (*effects, *also)
    conversation = _touch(conversation, event.now)
    t = say.texts
    found = personal_data.find_personal_data(event.body)
    if found:
        return conversation, (
            Redact(event.event_id, say(t.redact_reason_personal)),
            Reply(personal_data.explain(found)),
        )
    removal: tuple[Effect, ...] = ()
    if looks_like_nhs_number_attempt(event.body) or _NUMBER_LIKE.search(event.body):
        removal = (Redact(event.event_id, say(t.redact_reason_number)),)
    return conversation, (
        *removal,
        Reply(say.join([say(t.edit_too_late), replies.prompt(conversation, say)])),
    )


def _handle(conversation: Conversation, event: Input, say: Writer) -> Outcome:
    match event:
        case Text():
            return _text(conversation, event, say)
        case PhotoStored():
            return photos.photo_stored(conversation, event, say)
        case PhotoRejected():
            return photos.photo_rejected(conversation, event, say)
        case PhotoNotExpected():
            return photos.photo_not_expected(conversation, event.event_id, say)
        case Unsupported():
            return photos.unsupported(conversation, event, say)
        case Undecryptable():
            return conversation, (Reply(say(say.texts.undecryptable)),)
        case _:
            raise NoConversationError("not an input this step handles")  # Begin, Expire, AskConsent...: above


# Beginning, ending ---------------------------------------------------------------------------------------


def _begin(conversation: Conversation | None, event: Begin, say: Writer) -> Outcome:
    area = _clean(event.requested_area)
    if conversation is None or (
        conversation.state.finished and conversation.conversation_id != event.conversation_id
    ):
        outcome = _fresh(event.conversation_id, event.now, say, area, _clean(event.requested_by))
        fresh = replace(
            outcome[0],
            request_id=event.request_id,
            request_expires_at=_aware(event.request_expires_at),
            earlier_screenings=_screenings_to_carry(conversation, event.now, say),
        )
        return fresh, outcome[1]
    # An open conversation (or the same Begin again): keep it, note any request, say where we are.
    conversation = _touch(conversation, event.now)
    intro = ""
    if area is not None and not conversation.state.finished:
        conversation = replace(
            conversation,
            requested_area=area,
            request_id=event.request_id,
            request_expires_at=_aware(event.request_expires_at),
        )
        intro = replies.request_intro(say, area, _clean(event.requested_by))
    return conversation, (Reply(say.join([intro, replies.prompt(conversation, say)])),)


def _fresh(
    conversation_id: str, now: datetime, say: Writer, area: str | None = None, requested_by: str | None = None
) -> Outcome:
    moment = now.astimezone(UTC)
    conversation = Conversation(
        conversation_id=conversation_id,
        state=State.AWAITING_NHS_NUMBER,
        started_at=moment,
        last_activity_at=moment,
        requested_area=area,
    )
    return conversation, (
        Reply(say.join([replies.introduction(say, area, requested_by), say(say.texts.ask_nhs_number)])),
    )


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a timezone is taken as UTC (a caller's slip must not crash a patient's chat)."""
    if moment is None or moment.utcoffset() is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _request_expired(conversation: Conversation) -> bool:
    """A clinician's request answered too late: refused politely (and nothing is kept)."""
    expires = conversation.request_expires_at
    return expires is not None and not conversation.state.finished and conversation.last_activity_at > expires


def _finish(conversation: Conversation, state: State) -> Conversation:
    """A finished conversation keeps nothing about the patient: no NHS number, no photos, no words."""
    return replace(
        conversation,
        state=state,
        nhs_number=None,
        number_event_ids=(),
        photo_ids=(),
        retake_photo_id=None,
        notes=(),
        pending_note=None,
        last_answer_id=None,
        before_last_answer=None,
    )


def _end(conversation: Conversation, state: State, say: Writer, *, plain: str, with_photos: str) -> Outcome:
    """Cancel or expire: destroy every stored photo and remove the messages that carried the NHS number."""
    effects: list[Effect] = [
        Redact(event_id, say(say.texts.redact_reason_number)) for event_id in conversation.number_event_ids
    ]
    if conversation.state in _NUMBER_STATES:
        effects.append(RedactOwn(NHS_NUMBER_SHOWN, say(say.texts.redact_reason_number)))
    if conversation.all_photo_ids:
        effects.append(DestroyPhotos(conversation.all_photo_ids))
    text = replies.ended_text(
        conversation,
        say,
        plain=plain,
        with_photos=with_photos,
        numbers_removed=bool(conversation.number_event_ids),
    )
    return _finish(conversation, state), (*effects, Reply(text))


def _cancel(conversation: Conversation, say: Writer) -> Outcome:
    t = say.texts
    if conversation.state.finished:
        return conversation, (Reply(say.join([say(t.nothing_to_cancel), replies.prompt(conversation, say)])),)
    return _end(conversation, State.CANCELLED, say, plain=t.cancelled, with_photos=t.cancelled_with_photos)


def _room_unsafe(conversation: Conversation, reason: str, say: Writer) -> Outcome:
    """Someone else is in the chat, or the bot may not remove messages there: end the conversation,
    whatever its state. Everything the bot holds of it goes (photos destroyed, the NHS-number messages
    removed where it still may); a finished submission already belongs to the practice and stays. The reply
    never says "start again here" (the bot leaves this chat) nor that a removal happened that did not."""
    t = say.texts
    refused = reason == "cannot_remove"
    plain, with_photos = (
        (t.room_removal_refused, t.room_removal_refused_with_photos)
        if refused
        else (t.room_joined_by_other, t.room_joined_by_other_with_photos)
    )
    if conversation.state.finished:
        return replace(conversation, consent=None), (Reply(say(plain)),)
    effects: list[Effect] = []
    if not refused:
        effects += [
            Redact(event_id, say(t.redact_reason_number)) for event_id in conversation.number_event_ids
        ]
        if conversation.state in _NUMBER_STATES:
            effects.append(RedactOwn(NHS_NUMBER_SHOWN, say(t.redact_reason_number)))
    if conversation.all_photo_ids:
        effects.append(DestroyPhotos(conversation.all_photo_ids))
    count = conversation.photo_count
    text = say(with_photos, photos=count_photos(count)) if count else say(plain)
    return _finish(conversation, State.CANCELLED), (*effects, Reply(text))


def _expire(conversation: Conversation, say: Writer) -> Outcome:
    t = say.texts
    if conversation.state.finished:
        return conversation, ()
    return _end(conversation, State.EXPIRED, say, plain=t.expired, with_photos=t.expired_with_photos)


# Text --------------------------------------------------------------------------------------------------


def _text(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    state = conversation.state
    # An NHS number where one is expected, before the guard, which could take it for a phone number.
    if state in _NUMBER_STATES:
        parsed = parse_nhs_number(event.body, test_mode=say.policy.test_mode)
        if isinstance(parsed, NhsNumber):
            return _number_received(conversation, event.event_id, parsed, say)

    guarded = _without_number_like_runs(event.body) if state in _NUMBER_STATES else event.body
    found = personal_data.find_personal_data(guarded)
    if found:
        removal = Redact(event.event_id, say(say.texts.redact_reason_personal))
        masked = _maskable(conversation, event.body, say)
        if masked is not None:
            # The clinical words are not lost: offered back without the details, added only on "yes".
            offer = say(say.texts.masked_offer, masked=masked)
            conversation = replace(conversation, pending_note=masked)
            return conversation, (removal, Reply(say.join([personal_data.explain(found, offer=True), offer])))
        return conversation, (removal, Reply(personal_data.explain(found)))

    if event.body.lstrip().startswith("!"):
        staff = say.join([say(say.texts.staff_command), replies.prompt(conversation, say)])
        return conversation, (Reply(staff),)
    pending = conversation.consent
    match command(event.body):
        case Command.HELP if pending is not None:
            return conversation, (
                Reply(say.join([say(say.texts.help_consent), consent.question(pending, say)])),
            )
        case Command.HELP:
            return conversation, (Reply(replies.help_text(conversation, say)),)
        case Command.CANCEL if pending is not None:
            return consent.withdraw(conversation, say)
        case Command.CANCEL:
            return _cancel(conversation, say)
        case Command.START:
            if state.finished:
                fresh, effects = _fresh(restart_conversation_id(event.event_id), event.now, say)
                carried = _screenings_to_carry(conversation, event.now, say)
                return replace(fresh, earlier_screenings=carried), effects
            already = say.join([say(say.texts.already_started), replies.prompt(conversation, say)])
            return conversation, (Reply(already),)
        case None:
            pass

    match state:
        case State.AWAITING_NHS_NUMBER:
            return _awaiting_number(conversation, event, say)
        case State.CONFIRMING_NHS_NUMBER:
            return _confirming_number(conversation, event, say)
        case State.SCREEN_INTIMATE:
            return _screen_intimate(conversation, event, say)
        case State.SCREEN_UNDER_18:
            return _screen_under_18(conversation, event, say)
        case State.SCREEN_WHO:
            return _screen_who(conversation, event, say)
        case State.STORAGE_CHOICE:
            return _storage_choice(conversation, event, say)
        case State.AWAITING_PHOTOS:
            return _photos_text(conversation, event, say)
        case State.REFUSED | State.SUBMITTED | State.CANCELLED | State.EXPIRED if pending is not None:
            return consent.answer_text(conversation, pending, event, say)
        case State.REFUSED | State.SUBMITTED | State.CANCELLED | State.EXPIRED:
            return _unexpected(conversation, event, say)


def _maskable(conversation: Conversation, body: str, say: Writer) -> str | None:
    """The removed message's words without the personal details, if they could be added as a note now."""
    if conversation.state is not State.AWAITING_PHOTOS or conversation.consent is not None:
        return None
    if len(conversation.notes) >= say.policy.max_notes:
        return None
    return personal_data.mask(body)


def _unexpected(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    """The current question again; 'Sorry, I didn't understand' unless it was only 'ok' or 'thanks'."""
    polite = answer(event.body, COURTESY) is Answer.COURTESY
    sorry = "" if polite else say(say.texts.not_understood)
    return conversation, (Reply(say.join([sorry, replies.prompt(conversation, say)])),)


def _number_received(
    conversation: Conversation, event_id: EventID, number: NhsNumber, say: Writer
) -> Outcome:
    conversation = replace(
        conversation,
        state=State.CONFIRMING_NHS_NUMBER,
        nhs_number=number.digits,
        number_event_ids=_with(conversation.number_event_ids, event_id),
    )
    return conversation, (Reply(replies.prompt(conversation, say)),)


def _number_attempt_failed(conversation: Conversation, event: Text, say: Writer) -> Outcome | None:
    """A message that looks like a mistyped NHS number: explain what is wrong, and remember to remove it."""
    if not looks_like_nhs_number_attempt(event.body):
        return None
    problem = parse_nhs_number(event.body, test_mode=say.policy.test_mode)
    if isinstance(problem, NhsNumber):  # not reachable: valid numbers are handled before the guard
        return _number_received(conversation, event.event_id, problem, say)
    conversation = replace(
        conversation,
        state=State.AWAITING_NHS_NUMBER,
        nhs_number=None,
        number_event_ids=_with(conversation.number_event_ids, event.event_id),
    )
    return conversation, (Reply(explain_nhs_number_problem(problem)),)


def _awaiting_number(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    attempt = _number_attempt_failed(conversation, event, say)
    if attempt is not None:
        return attempt
    if number_unknown(event.body):
        t = say.texts
        return conversation, (Reply(say.join([say(t.nhs_number_unknown), say(t.nhs_number_prompt)])),)
    return _unexpected(conversation, event, say)


def _confirm_number(
    conversation: Conversation, state: State, say: Writer
) -> tuple[Conversation, tuple[Effect, ...], str]:
    """The read-back was confirmed: remove every message that carried the number; the thanks to say."""
    t = say.texts
    removals: tuple[Effect, ...] = (
        *(Redact(event_id, say(t.redact_reason_number)) for event_id in conversation.number_event_ids),
        RedactOwn(NHS_NUMBER_SHOWN, say(t.redact_reason_number)),  # the read-back: told once, in the thanks
    )
    conversation = replace(conversation, state=state, number_event_ids=())
    thanks = say(t.nhs_number_confirmed)  # the typed number and the read-back are both removed
    return conversation, removals, thanks


def _confirming_number(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    t = say.texts
    whose = answer(event.body, WHO)
    if whose is not None:
        # "1: mine" or "2: someone I look after" answers the read-back and who it is for at once.
        confirmed, removals, thanks = _confirm_number(conversation, State.SCREEN_INTIMATE, say)
        confirmed = replace(confirmed, acting_for_someone=whose is Answer.TWO)
        return confirmed, (*removals, Reply(say.join([thanks, say(t.ask_intimate)])))
    match answer(event.body, YES_NO):
        case Answer.YES:
            confirmed, removals, thanks = _confirm_number(conversation, State.SCREEN_WHO, say)
            return confirmed, (*removals, Reply(say.join([thanks, say(t.ask_who)])))
        case Answer.NO:
            conversation = replace(conversation, state=State.AWAITING_NHS_NUMBER, nhs_number=None)
            return conversation, (Reply(say(t.nhs_number_retry)),)
        case _:
            return _number_attempt_failed(conversation, event, say) or _unexpected(conversation, event, say)


def _screen_intimate(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    match answer(event.body, YES_NO):
        case Answer.YES:
            conversation = replace(conversation, state=State.SCREEN_UNDER_18, intimate=True)
            return conversation, (Reply(say(say.texts.ask_under_18)),)
        case Answer.NO:
            # Rule 3, said once where the choice is made: the photo may be kept unless they say DELETE.
            conversation = replace(
                conversation, state=State.AWAITING_PHOTOS, intimate=False, under_18=None, keep_in_record=True
            )
            return conversation, (
                Reply(say.join([say(say.texts.record_notice), replies.photo_guidance(conversation, say)])),
            )
        case _:
            return _unexpected(conversation, event, say)


def _screen_under_18(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    match answer(event.body, YES_NO):
        case Answer.YES:
            refused = _finish(replace(conversation, under_18=True), State.REFUSED)
            return refused, (Reply(say.join([say(say.texts.refused), say(say.texts.start_again)])),)
        case Answer.NO:
            # Rule 5: an intimate photo is described, then destroyed; there is no choice to offer.
            conversation = replace(
                conversation, state=State.AWAITING_PHOTOS, under_18=False, keep_in_record=False
            )
            return conversation, (
                Reply(say.join([say(say.texts.intimate_storage), replies.photo_guidance(conversation, say)])),
            )
        case _:
            return _unexpected(conversation, event, say)


def _screen_who(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    choice = answer(event.body, WHO)
    if choice is None:
        return _unexpected(conversation, event, say)
    conversation = replace(conversation, state=State.SCREEN_INTIMATE, acting_for_someone=choice is Answer.TWO)
    return conversation, (Reply(say(say.texts.ask_intimate)),)


def _storage_choice(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    choice = answer(event.body, STORAGE)
    if choice is None:
        return _unexpected(conversation, event, say)
    keep = choice is Answer.ONE
    conversation = replace(conversation, state=State.AWAITING_PHOTOS, keep_in_record=keep)
    chosen = say(say.texts.storage_keep_chosen if keep else say.texts.storage_delete_chosen)
    follow = (
        replies.photos_prompt(conversation, say)
        if conversation.photo_count
        else replies.photo_guidance(conversation, say)
    )
    return conversation, (Reply(say.join([chosen, follow])),)


def _photos_text(conversation: Conversation, event: Text, say: Writer) -> Outcome:
    t = say.texts
    if conversation.pending_note is not None:
        offered = conversation.pending_note
        conversation = replace(conversation, pending_note=None)
        match answer(event.body, YES_NO):
            case Answer.YES:
                conversation = replace(conversation, notes=(*conversation.notes, offered))
                return conversation, (
                    Reply(say.join([say(t.masked_added), replies.photos_prompt(conversation, say)])),
                )
            case Answer.NO:
                return conversation, (
                    Reply(say.join([say(t.masked_declined), replies.photos_prompt(conversation, say)])),
                )
            case _:
                pass  # anything else moves on: the offer lapses
    match answer(event.body, PHOTOS):
        case Answer.DONE:
            return _done(_keep_retake(conversation), say)
        case Answer.KEEP if conversation.retake_photo_id is not None:
            number = len(conversation.photo_ids) + 1
            conversation = _keep_retake(conversation)
            return conversation, (
                Reply(say.join([say(t.photo_kept, number=number), replies.photos_prompt(conversation, say)])),
            )
        case Answer.KEEP:
            return _unexpected(conversation, event, say)
        case Answer.CHANGE_STORAGE if conversation.intimate:
            return conversation, (
                Reply(
                    say.join([say(t.storage_unchanged_intimate), replies.photos_prompt(conversation, say)])
                ),
            )
        case Answer.CHANGE_STORAGE:
            conversation = replace(conversation, state=State.STORAGE_CHOICE)
            return conversation, (Reply(say(t.ask_storage)),)
        case _:
            pass
    if answer(event.body, COURTESY) is Answer.COURTESY or not event.body.strip():
        return _unexpected(conversation, event, say)
    if len(conversation.notes) >= say.policy.max_notes:
        return conversation, (Reply(say(t.notes_full)),)
    conversation = replace(conversation, notes=(*conversation.notes, event.body.strip()))
    return conversation, (Reply(say(t.note_added)),)


def _keep_retake(conversation: Conversation) -> Conversation:
    if conversation.retake_photo_id is None:
        return conversation
    return replace(
        conversation, photo_ids=(*conversation.photo_ids, conversation.retake_photo_id), retake_photo_id=None
    )


def _done(conversation: Conversation, say: Writer) -> Outcome:
    if not conversation.photo_ids:
        return conversation, (Reply(say(say.texts.need_a_photo)),)
    if conversation.nhs_number is None:  # not reachable: `Conversation` requires it at this step
        raise ValueError("a conversation at the photo step must hold an NHS number")
    reference = reference_code(conversation.conversation_id)
    intimate = bool(conversation.intimate)
    keep = bool(conversation.keep_in_record) and not intimate
    acting = bool(conversation.acting_for_someone)
    earlier = _recent(conversation.earlier_screenings, conversation.last_activity_at, say)
    warnings = (
        *screening_warnings(earlier, intimate=intimate, under_18=conversation.under_18),
        *note_flags(conversation.notes, intimate=intimate, under_18=conversation.under_18),
    )
    submit = Submit(
        conversation_id=conversation.conversation_id,
        reference=reference,
        nhs_number=conversation.nhs_number,
        photo_ids=conversation.photo_ids,
        keep_in_record=keep,
        intimate=intimate,
        under_18=conversation.under_18,
        acting_for_someone=acting,
        notes=conversation.notes,
        requested_area=conversation.requested_area,
        submitted_at=conversation.last_activity_at,
        request_id=conversation.request_id,
        warnings=warnings,
        earlier_screenings=earlier,
    )
    notify = NotifyClinicians(
        reference=reference,
        photo_count=len(conversation.photo_ids),
        keep_in_record=keep,
        intimate=intimate,
        acting_for_someone=acting,
        warnings=warnings,
    )
    text = replies.submitted_text(conversation, say)
    return _finish(conversation, State.SUBMITTED), (submit, notify, Reply(text))


# Earlier screenings in the same chat --------------------------------------------------------------------


def _screenings_to_carry(
    previous: Conversation | None, now: datetime, say: Writer
) -> tuple[EarlierScreening, ...]:
    """What a new conversation in this chat remembers of earlier screenings: the previous conversation's
    answers (if it got as far as one) and those it remembered, within the practice's period."""
    if previous is None:
        return ()
    earlier = previous.earlier_screenings
    if previous.intimate is not None:
        # When that conversation began: its last activity is touched by the very START that ends it.
        answered = EarlierScreening(
            previous.started_at, previous.intimate, previous.under_18, previous.state.value
        )
        earlier = (*earlier, answered)
    return _recent(earlier, now, say)


def _recent(
    earlier: tuple[EarlierScreening, ...], now: datetime, say: Writer
) -> tuple[EarlierScreening, ...]:
    return tuple(screening for screening in earlier if now - screening.at <= say.policy.screening_memory)


# Small helpers -----------------------------------------------------------------------------------------


def _touch(conversation: Conversation, now: datetime) -> Conversation:
    moment = now.astimezone(UTC)
    if moment <= conversation.last_activity_at:
        return conversation
    return replace(conversation, last_activity_at=moment)


def _with(event_ids: tuple[EventID, ...], event_id: EventID) -> tuple[EventID, ...]:
    return event_ids if event_id in event_ids else (*event_ids, event_id)


def _clean(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    return " ".join(text.split())


def _without_number_like_runs(text: str) -> str:
    """The text with every run of exactly ten digits (spaces, dashes or dots between them) blanked out."""
    return _NUMBER_LIKE.sub(" ", text)
