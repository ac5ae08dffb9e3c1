"""The patient conversation, journey by journey, as the patient and the handler see it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.conversation import (
    Admit,
    Begin,
    DestroyPhotos,
    Edit,
    NoConversationError,
    NotifyClinicians,
    Policy,
    PurgeMedia,
    Reaction,
    Redact,
    Refuse,
    Reply,
    State,
    Submit,
    Text,
    photo_admission,
    reference_code,
    restart_conversation_id,
    step,
)
from bot.ids import EventID
from bot.nhs_number import NhsNumberProblem
from bot.nhs_number import explain as explain_nhs_problem
from bot.personal_data import PersonalDataKind
from bot.personal_data import explain as explain_personal_data
from bot.texts import Texts
from tests.unit.test_conversation_support import (
    MISTYPED_NHS_NUMBER,
    NHS_NUMBER,
    OTHER_NHS_NUMBER,
    POLICY,
    PRACTICE,
    START_TIME,
    Chat,
    fill,
    spaced,
)

T = POLICY.texts
OPEN_STATES = [state for state in State if not state.finished]
FINISHED_STATES = [state for state in State if state.finished]


def to_photos(
    *, intimate: bool = False, under_18: bool = False, for_someone: bool = False, keep: bool = True
) -> Chat:
    chat = Chat.begun()
    chat.say(NHS_NUMBER)
    chat.say("2" if for_someone else "1")
    chat.say("yes" if intimate else "no")
    if intimate:
        chat.say("yes" if under_18 else "no")
        return chat
    if not keep:
        chat.say("delete")
        chat.say("2")
    return chat


# Start -----------------------------------------------------------------------------------------------


def test_greeting_names_practice_shows_privacy_notice_and_asks_for_nhs_number() -> None:
    """The first message greets by practice name, shows the privacy notice with where to read it in full,
    then asks one question: the NHS number only."""
    chat = Chat.begun()
    (first,) = (effect for effect in chat.effects if isinstance(effect, Reply))
    assert PRACTICE in first.text
    assert fill(T.privacy_notice) in first.text
    assert fill(T.privacy_link) in first.text
    assert "Not for emergencies" in first.text
    assert first.text.endswith(fill(T.ask_nhs_number))
    assert first.text.count("?") == 1, "one question per message"
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.kinds() == ["Reply"]


def test_greeting_mentions_the_area_and_clinician_that_requested_the_photo() -> None:
    """A clinician's request is named in the greeting and again in the photo guidance."""
    chat = Chat.begun(requested_area="the rash on your left forearm", requested_by="Dr Patel")
    assert "Dr Patel at Riverside Surgery has asked you for a photo of: the rash on your left forearm" in (
        chat.reply
    )
    chat.say(NHS_NUMBER)
    chat.say("1")
    chat.say("no")
    assert "Now send a photo of the rash on your left forearm," in chat.reply
    assert chat.current.requested_area == "the rash on your left forearm"


def test_begin_on_an_open_conversation_keeps_it_and_repeats_the_question() -> None:
    """If the bot is told to begin again mid-conversation, the patient keeps their place."""
    chat = Chat.in_state(State.SCREEN_WHO)
    before = chat.current
    chat.send(Begin("conv-2", chat.tick(), requested_area="your right knee"))
    assert chat.current.conversation_id == before.conversation_id
    assert chat.state is State.SCREEN_WHO
    assert "The practice has asked you for a photo of: your right knee." in chat.reply
    assert fill(T.ask_who) in chat.reply
    assert chat.current.requested_area == "your right knee"


def test_begin_after_a_finished_conversation_starts_a_new_one() -> None:
    """A new request after a finished one starts afresh with the new id and the full greeting."""
    chat = Chat.in_state(State.SUBMITTED)
    chat.send(Begin("conv-2", chat.tick(), requested_area="your right knee"))
    assert chat.current.conversation_id == "conv-2"
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert fill(T.privacy_notice) in chat.reply


def test_step_without_a_conversation_needs_begin() -> None:
    """Passing a message with no conversation is a handler bug, reported as NoConversationError."""
    with pytest.raises(NoConversationError):
        step(None, Text(EventID("$x"), "hello", START_TIME), POLICY)


# NHS number ------------------------------------------------------------------------------------------


def test_nhs_number_is_read_back_for_confirmation() -> None:
    """A valid number, typed with spaces and dashes, is read back in 3-3-4 groups and asked about."""
    chat = Chat.begun()
    chat.say(f"{NHS_NUMBER[:3]}-{NHS_NUMBER[3:6]} {NHS_NUMBER[6:]}")
    assert chat.state is State.CONFIRMING_NHS_NUMBER
    assert f"**{spaced(NHS_NUMBER)}**. Whose number is it?" in chat.reply
    assert chat.current.nhs_number == NHS_NUMBER
    assert chat.redacted == []


def test_confirming_redacts_every_message_that_carried_the_number() -> None:
    """After 'yes', the mistyped attempt and the number itself are removed from the chat, and the patient is
    asked whose number it is."""
    chat = Chat.begun()
    chat.say(MISTYPED_NHS_NUMBER)
    mistyped = chat.last_event_id()
    chat.say(NHS_NUMBER)
    good = chat.last_event_id()
    chat.say("Yes.")
    assert chat.state is State.SCREEN_WHO
    assert chat.redacted == [mistyped, good]
    assert fill(T.nhs_number_confirmed) in chat.reply
    assert fill(T.ask_who) in chat.reply
    assert chat.current.number_event_ids == ()


def test_saying_no_to_the_read_back_asks_for_the_number_again() -> None:
    """'no' clears the pending number and asks again; the next number is read back."""
    chat = Chat.in_state(State.CONFIRMING_NHS_NUMBER)
    chat.say("nope")
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.current.nhs_number is None
    assert fill(T.nhs_number_retry) in chat.reply
    chat.say(OTHER_NHS_NUMBER)
    assert spaced(OTHER_NHS_NUMBER) in chat.reply


def test_a_new_number_while_confirming_replaces_the_pending_one() -> None:
    """Typing a different valid number instead of yes/no reads the new one back."""
    chat = Chat.in_state(State.CONFIRMING_NHS_NUMBER)
    chat.say(OTHER_NHS_NUMBER)
    assert chat.state is State.CONFIRMING_NHS_NUMBER
    assert chat.current.nhs_number == OTHER_NHS_NUMBER
    assert spaced(OTHER_NHS_NUMBER) in chat.reply


def test_a_mistyped_number_while_confirming_explains_and_asks_again() -> None:
    """A number that fails the check, typed at the read-back, explains the problem and asks again."""
    chat = Chat.in_state(State.CONFIRMING_NHS_NUMBER)
    chat.say(MISTYPED_NHS_NUMBER)
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.reply == explain_nhs_problem(NhsNumberProblem.CHECK_DIGIT)
    assert chat.current.nhs_number is None


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        (MISTYPED_NHS_NUMBER, NhsNumberProblem.CHECK_DIGIT),
        ("12345", NhsNumberProblem.WRONG_LENGTH),
        (NHS_NUMBER[:9] + "O", NhsNumberProblem.NOT_A_NUMBER),
    ],
)
def test_nhs_number_problems_are_explained_and_the_question_stays(
    typed: str, problem: NhsNumberProblem
) -> None:
    """A failed attempt gets the parser's explanation, and the conversation waits for a better one."""
    chat = Chat.begun()
    chat.say(typed)
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.reply == explain_nhs_problem(problem)
    assert chat.redacted == []


def test_test_numbers_are_refused_outside_test_mode() -> None:
    """A practice not in test mode refuses an NHS test-range number."""
    chat = Chat.begun(policy=replace(POLICY, test_mode=False))
    chat.say(NHS_NUMBER)
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.reply == explain_nhs_problem(NhsNumberProblem.TEST_NUMBER)


def test_text_that_is_not_a_number_gets_the_question_again() -> None:
    """'hello' at the NHS-number step is answered with the question, not silence."""
    chat = Chat.begun()
    chat.say("hello")
    assert chat.reply == fill(T.nhs_number_prompt)
    chat.say("what is this for")
    assert chat.reply == "\n\n".join([fill(T.not_understood), fill(T.nhs_number_prompt)])


# Personal-data guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_personal_data_is_redacted_and_explained_in_every_state(state: State) -> None:
    """A message with a name and a postcode is removed and explained, and the step does not change."""
    chat = Chat.in_state(state)
    before = chat.current
    chat.say("My name is Jane Doe, postcode SW1A 1AA")
    assert chat.redacted == [chat.last_event_id()]
    assert chat.reply == explain_personal_data(frozenset({PersonalDataKind.NAME, PersonalDataKind.POSTCODE}))
    assert chat.kinds() == ["Redact", "Reply"]
    assert chat.current == replace(before, last_activity_at=chat.current.last_activity_at)


def test_guard_does_not_fire_on_the_nhs_number_itself() -> None:
    """The NHS number, even mistyped or grouped unusually, is never taken for a phone number."""
    chat = Chat.begun()
    chat.say(f"{NHS_NUMBER[:4]} {NHS_NUMBER[4:7]} {NHS_NUMBER[7:]}")
    assert chat.state is State.CONFIRMING_NHS_NUMBER
    chat.say("no")
    chat.say(f"{MISTYPED_NHS_NUMBER[:5]} {MISTYPED_NHS_NUMBER[5:]}")
    assert chat.reply == explain_nhs_problem(NhsNumberProblem.CHECK_DIGIT)
    assert chat.redacted == []


def test_a_phone_number_while_waiting_for_the_nhs_number_is_redacted() -> None:
    """An 11-digit mobile number is not an NHS number: it is removed and explained."""
    chat = Chat.begun()
    chat.say("07700 900123")
    assert chat.redacted == [chat.last_event_id()]
    assert "phone number" in chat.reply
    assert chat.state is State.AWAITING_NHS_NUMBER


# Screening -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("yes", ["y", "Yes", "YES!", " yeah ", "yep.", "Yup"])
def test_yes_answers_are_understood_in_any_form(yes: str) -> None:
    """Yes in its common forms, any case, with spaces and punctuation, answers the question."""
    chat = Chat.in_state(State.SCREEN_INTIMATE)
    chat.say(yes)
    assert chat.state is State.SCREEN_UNDER_18


@pytest.mark.parametrize("no", ["n", "No", "NO.", " nope ", "No!"])
def test_no_answers_are_understood_in_any_form(no: str) -> None:
    """No in its common forms moves on past the intimate-area question."""
    chat = Chat.in_state(State.SCREEN_INTIMATE)
    chat.say(no)
    assert chat.state is State.AWAITING_PHOTOS
    assert chat.current.intimate is False


def test_intimate_photo_of_someone_under_18_is_refused_with_contact_details() -> None:
    """Intimate and under 18: the bot refuses, gives the practice's contact details, and takes no photo."""
    contact = "Phone us on 01632 960000, 8am to 6pm."
    policy = replace(POLICY, texts=replace(Texts(), how_to_contact=contact))
    chat = Chat.begun(policy=policy)
    for line in (NHS_NUMBER, "1", "yes", "yes"):
        chat.say(line)
    assert chat.state is State.REFUSED
    assert contact in chat.reply
    assert "under 18" in chat.reply
    assert chat.current.nhs_number is None
    assert isinstance(photo_admission(chat.current, policy), Refuse)


def test_a_photo_after_refusal_is_removed_destroyed_and_refused_again() -> None:
    """A photo in a refused conversation is redacted, purged, destroyed if stored, and refused again."""
    chat = Chat.in_state(State.REFUSED)
    chat.photo()
    assert chat.kinds() == ["Redact", "PurgeMedia", "Reply"]
    assert chat.reply == fill(T.refused_photo)
    chat.stored("photo-x")
    assert chat.destroyed == ["photo-x"]
    assert chat.redacted == [chat.last_event_id()]
    assert chat.reply == fill(T.refused_photo)
    assert chat.state is State.REFUSED


def test_intimate_adult_photo_is_flagged_and_never_kept() -> None:
    """An intimate photo of an adult is accepted without the storage question, flagged, and destroyed
    after viewing: the patient is told so."""
    chat = to_photos(intimate=True)
    assert chat.state is State.AWAITING_PHOTOS
    assert fill(T.intimate_storage) in chat.reply
    assert fill(T.ask_storage) not in chat.reply
    chat.photo()
    chat.say("done")
    submit = chat.submitted
    assert submit is not None
    assert submit.intimate is True
    assert submit.keep_in_record is False
    assert submit.under_18 is False
    assert fill(T.submitted_deleted) in chat.reply
    notify = [effect for effect in chat.effects if isinstance(effect, NotifyClinicians)]
    assert notify[0].intimate is True


def test_acting_for_someone_with_legal_authority_is_recorded() -> None:
    """Answering 2 (my child, power of attorney) flags the submission as sent on someone's behalf."""
    chat = to_photos(for_someone=True)
    chat.photo()
    chat.say("done")
    submit = chat.submitted
    assert submit is not None
    assert submit.acting_for_someone is True


@pytest.mark.parametrize(("words", "for_someone"), [("me", False), ("Myself", False), ("my child", True)])
def test_who_question_understands_words_as_well_as_numbers(words: str, for_someone: bool) -> None:
    """The numbered menu accepts the words of its options."""
    chat = Chat.in_state(State.SCREEN_WHO)
    chat.say(words)
    assert chat.state is State.SCREEN_INTIMATE
    assert chat.current.acting_for_someone is for_someone


@pytest.mark.parametrize(
    ("choice", "keep"), [("1", True), ("keep", True), ("2", False), ("view then delete", False)]
)
def test_storage_choice_understands_numbers_and_words(choice: str, keep: bool) -> None:
    """'1'/'keep' keeps in the record; '2'/'view then delete' deletes after viewing."""
    chat = Chat.in_state(State.STORAGE_CHOICE)
    chat.say(choice)
    assert chat.state is State.AWAITING_PHOTOS
    assert chat.current.keep_in_record is keep
    assert "Now send a photo" in chat.reply
    assert "up to 3" in chat.reply


def test_before_the_photos_the_patient_is_told_how_to_take_a_usable_one() -> None:
    """The guidance names daylight, a plain background, focus, an overview and a close-up with a coin or ruler."""
    chat = Chat.in_state(State.STORAGE_CHOICE)
    chat.say("1")
    for tip in ("daylight", "plain background", "in focus", "further away", "close-up", "coin or ruler"):
        assert tip in chat.reply, tip


# Photos ----------------------------------------------------------------------------------------------


def test_happy_path_submits_with_reference_and_says_what_was_deleted() -> None:
    """Two photos and a note, then DONE: submitted with a reference, clinicians told without the image
    or NHS number, and the patient told what happens next and what was deleted where."""
    chat = to_photos()
    chat.photo()
    first = chat.last_event_id()
    assert chat.redacted == [first]
    assert chat.purged == [first]
    assert "Photo 1 received" in chat.reply
    assert "Send another" in chat.reply
    assert "removed from this chat" in chat.reply
    chat.say("On my left arm, for about 3 days")
    assert chat.reply == fill(T.note_added)
    chat.photo()
    chat.say("DONE")
    assert chat.state is State.SUBMITTED
    reference = reference_code("conv-1")
    submit = chat.submitted
    assert submit == Submit(
        conversation_id="conv-1",
        reference=reference,
        nhs_number=NHS_NUMBER,
        photo_ids=("photo-4", "photo-6"),
        keep_in_record=True,
        intimate=False,
        under_18=None,
        acting_for_someone=False,
        notes=("On my left arm, for about 3 days",),
        requested_area=None,
        submitted_at=chat.now,
    )
    assert NotifyClinicians(reference, 2, True, False, False) in chat.effects
    assert f"**{reference}**" in chat.reply
    for sentence in (
        T.what_happens_next,
        T.reply_time,
        T.deleted_from_chat,
        T.deleted_from_server,
        T.phone_copies,
    ):
        assert fill(sentence) in chat.reply
    assert NHS_NUMBER not in chat.reply
    assert chat.current.nhs_number is None
    assert chat.current.photo_ids == ()
    assert chat.current.notes == ()


def test_view_then_delete_is_submitted_and_the_patient_told() -> None:
    """Choosing view-then-delete submits without keeping, and says the photos will be deleted."""
    chat = to_photos(keep=False)
    chat.photo()
    chat.say("done")
    submit = chat.submitted
    assert submit is not None
    assert submit.keep_in_record is False
    assert fill(T.submitted_deleted) in chat.reply
    assert fill(T.submitted_kept) not in chat.reply


def test_without_media_purge_the_patient_is_not_told_server_copies_were_deleted() -> None:
    """Without the homeserver-admin credential there is no PurgeMedia and no claim that server copies went."""
    policy = replace(POLICY, media_purge_enabled=False)
    chat = Chat.begun(policy=policy)
    for line in (NHS_NUMBER, "1", "no"):
        chat.say(line)
    chat.photo()
    assert chat.kinds() == ["Redact", "Reply"]
    chat.say("done")
    assert fill(T.deleted_from_chat) in chat.reply
    assert fill(T.deleted_from_server) not in chat.reply


def test_done_without_photos_asks_for_one() -> None:
    """DONE before any photo asks for at least one and keeps waiting."""
    chat = to_photos()
    chat.say("done")
    assert chat.state is State.AWAITING_PHOTOS
    assert chat.reply == fill(T.need_a_photo)


def test_blurred_photo_gets_a_retake_suggestion_and_a_new_photo_replaces_it() -> None:
    """A blurred photo gets a friendly retake tip; a new photo replaces it and the blurred one is destroyed."""
    chat = to_photos()
    chat.photo("blurred")
    flagged = chat.current.retake_photo_id
    assert flagged is not None
    assert "looks a little blurred" in chat.reply
    assert "tap the screen on the area to focus" in chat.reply
    assert "**KEEP**" in chat.reply
    assert chat.redacted == [chat.last_event_id()]
    chat.photo()
    assert chat.destroyed == [flagged]
    assert chat.current.photo_ids == (chat.current.photo_ids[0],)
    assert flagged not in chat.current.photo_ids
    assert chat.current.retake_photo_id is None
    assert "Photo 1 received" in chat.reply
    assert "deleted the earlier version of photo 1" in chat.reply


@pytest.mark.parametrize(
    ("issue", "tip"),
    [
        ("too_dark", "daylight"),
        ("too_bright", "without the flash"),
        ("too_small", "Move a little closer"),
        ("something_new", "good light"),
    ],
)
def test_each_quality_issue_gets_its_own_tip(issue: str, tip: str) -> None:
    """Dark, bright, small and unknown problems each get advice the patient can act on."""
    chat = to_photos()
    chat.photo(issue)
    assert tip in chat.reply


def test_keep_accepts_the_flagged_photo() -> None:
    """KEEP uses the flagged photo as it is."""
    chat = to_photos()
    chat.photo("too_dark")
    flagged = chat.current.retake_photo_id
    chat.say("Keep")
    assert chat.current.photo_ids == (flagged,)
    assert chat.current.retake_photo_id is None
    assert fill(T.photo_kept, number=1) in chat.reply
    assert chat.destroyed == []


def test_done_accepts_a_flagged_photo_and_submits_it() -> None:
    """DONE with a flagged photo pending submits it too."""
    chat = to_photos()
    chat.photo("too_small")
    flagged = chat.current.retake_photo_id
    chat.say("done")
    submit = chat.submitted
    assert submit is not None
    assert submit.photo_ids == (flagged,)
    assert chat.destroyed == []


def test_photos_over_the_limit_are_refused_before_download_and_destroyed_if_stored() -> None:
    """After the limit, admission refuses; a photo stored anyway is destroyed; the patient is told the limit."""
    chat = to_photos()
    for _ in range(3):
        chat.photo()
    assert "the most I can take" in chat.reply
    assert isinstance(photo_admission(chat.current, POLICY), Refuse)
    chat.photo()
    assert chat.kinds() == ["Redact", "PurgeMedia", "Reply"]
    assert fill(T.limit_reached, max_photos=3) == chat.reply
    chat.stored("photo-extra")
    assert chat.destroyed == ["photo-extra"]
    assert len(chat.current.photo_ids) == 3
    assert "photo-extra" not in chat.current.photo_ids


def test_a_retake_is_admitted_even_at_the_limit() -> None:
    """With the last photo flagged for a retake, a replacement is still admitted."""
    chat = to_photos()
    chat.photo()
    chat.photo()
    chat.photo("blurred")
    assert isinstance(photo_admission(chat.current, POLICY), Admit)
    chat.photo()
    assert len(chat.current.photo_ids) == 3
    assert len(chat.destroyed) == 1


def test_the_same_photo_reported_twice_is_not_counted_or_destroyed() -> None:
    """A photo id already held is acknowledged, not counted again, and never destroyed."""
    chat = to_photos()
    chat.stored("photo-a")
    chat.stored("photo-a")
    assert chat.current.photo_ids == ("photo-a",)
    assert chat.destroyed == []
    assert fill(T.photo_duplicate, number=1) in chat.reply


@pytest.mark.parametrize(
    ("reason", "detected", "expected"),
    [
        ("unsupported_type", "PDF", "That file looks like a PDF file, not a photo"),
        ("unsupported_type", "MP4 video", "That file looks like an MP4 video, not a photo"),
        ("unsupported_type", None, "doesn't look like a photo I can open"),
        ("empty", None, "arrived empty"),
        ("too_large", None, "too large for me to accept"),
        ("too_many_pixels", None, "too large for me to open"),
        ("truncated", None, "didn't arrive in full"),
        ("corrupt", None, "seems to be damaged"),
        ("download_failed", None, "couldn't fetch that photo"),
        ("unencrypted", None, "wasn't sent securely"),
        ("anything_else", None, "couldn't use that photo"),
    ],
)
def test_each_rejected_photo_gets_its_own_reply_and_is_removed(
    reason: str, detected: str | None, expected: str
) -> None:
    """Each kind of unusable photo gets a specific reply, and its message and upload are removed."""
    chat = to_photos()
    chat.rejected(reason, detected)
    assert expected in chat.reply
    assert chat.redacted == [chat.last_event_id()]
    assert chat.purged == [chat.last_event_id()]
    assert chat.state is State.AWAITING_PHOTOS


def test_courtesy_words_at_the_photo_step_are_not_notes() -> None:
    """'thanks' at the photo step gets the next instruction, not 'added to your request'."""
    chat = to_photos()
    chat.say("Thanks!")
    assert chat.current.notes == ()
    assert chat.reply == fill(T.photos_prompt_first)


def test_notes_stop_at_the_practice_limit() -> None:
    """Beyond the practice's limit of notes, the patient is asked to reply DONE instead."""
    chat = Chat.begun(policy=replace(POLICY, max_notes=1))
    for line in (NHS_NUMBER, "1", "no", "it itches", "it is red"):
        chat.say(line)
    assert chat.current.notes == ("it itches",)
    assert chat.reply == fill(T.notes_full)


@pytest.mark.parametrize(
    ("kind", "purged"),
    [
        ("video", True),
        ("voice message", True),
        ("audio", True),
        ("file", True),
        ("location", False),
        ("sticker", False),
    ],
)
def test_unsupported_messages_are_removed_and_explained(kind: str, purged: bool) -> None:
    """A video or voice message is removed (and its upload deleted); the patient is told only photos and
    text are used, and what to do now."""
    chat = to_photos()
    chat.unsupported(kind)
    assert chat.redacted == [chat.last_event_id()]
    assert bool(chat.purged) is purged
    assert "I can only take photos and typed messages" in chat.reply
    assert fill(T.photos_prompt_first) in chat.reply
    assert chat.state is State.AWAITING_PHOTOS


def test_undecryptable_message_asks_kindly_to_send_again() -> None:
    """A message the bot could not decrypt gets a request to send it again, perhaps after reopening the app."""
    chat = Chat.in_state(State.SCREEN_WHO)
    chat.undecryptable()
    assert chat.kinds() == ["Reply"]
    assert "send it again" in chat.reply
    assert "open it again" in chat.reply
    assert chat.state is State.SCREEN_WHO


# Expiry, restart ------------------------------------------------------------------------------------


def test_expiry_destroys_photos_and_tells_the_patient() -> None:
    """An unfinished request expires: its photos are destroyed and the patient told how to start again."""
    chat = to_photos()
    chat.photo()
    chat.photo("blurred")
    held = chat.current.all_photo_ids
    chat.expire()
    assert chat.state is State.EXPIRED
    assert chat.destroyed == list(held)
    assert "expired" in chat.reply
    assert "2 photos" in chat.reply
    assert "**START**" in chat.reply
    assert chat.current.photo_ids == ()


def test_expiry_before_confirmation_removes_the_nhs_number_messages() -> None:
    """An NHS number typed but never confirmed is removed from the chat when the request expires."""
    chat = Chat.in_state(State.CONFIRMING_NHS_NUMBER)
    number_message = chat.current.number_event_ids[0]
    chat.expire()
    assert chat.redacted == [number_message]
    assert fill(T.number_removed) in chat.reply


@pytest.mark.parametrize("state", FINISHED_STATES)
def test_expiry_of_a_finished_conversation_does_nothing(state: State) -> None:
    """Expire in a finished state changes nothing and says nothing."""
    chat = Chat.in_state(state)
    before = chat.current
    chat.expire()
    assert chat.effects == ()
    assert chat.current == before


@pytest.mark.parametrize("state", FINISHED_STATES)
def test_start_after_a_finished_conversation_begins_a_new_one(state: State) -> None:
    """START after the end begins a fresh conversation with a new id derived from the START message."""
    chat = Chat.in_state(state)
    old_id = chat.current.conversation_id
    chat.say("start")
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.current.conversation_id == restart_conversation_id(chat.last_event_id())
    assert chat.current.conversation_id != old_id
    assert fill(T.privacy_notice) in chat.reply
    assert chat.destroyed == []


@pytest.mark.parametrize("state", FINISHED_STATES)
def test_any_message_after_the_end_offers_to_start_again(state: State) -> None:
    """After the end, a message gets the status and how to start again."""
    chat = Chat.in_state(state)
    chat.say("hello?")
    assert "reply **START**" in chat.reply
    assert chat.state is state


def test_start_during_a_conversation_explains_how_to_begin_again() -> None:
    """START mid-conversation does not throw the patient's progress away."""
    chat = Chat.in_state(State.STORAGE_CHOICE)
    chat.say("start again")
    assert chat.state is State.STORAGE_CHOICE
    assert fill(T.already_started) in chat.reply


# Every state x help, cancel, unexpected text, photo -----------------------------------------------------

HELP_BY_STATE = {
    State.AWAITING_NHS_NUMBER: T.help_nhs_number,
    State.CONFIRMING_NHS_NUMBER: T.help_confirm,
    State.SCREEN_INTIMATE: T.help_intimate,
    State.SCREEN_UNDER_18: T.help_under_18,
    State.SCREEN_WHO: T.help_who,
    State.STORAGE_CHOICE: T.help_storage,
    State.AWAITING_PHOTOS: T.help_photos,
    State.REFUSED: T.help_finished,
    State.SUBMITTED: T.help_finished,
    State.CANCELLED: T.help_finished,
    State.EXPIRED: T.help_finished,
}


@pytest.mark.parametrize("words", ["help", "?", "HELP", "Help me", "help!"])
@pytest.mark.parametrize("state", list(State))
def test_help_works_in_every_state_with_help_for_that_step(state: State, words: str) -> None:
    """Help explains the current step (and how to cancel, while there is something to cancel)."""
    chat = Chat.in_state(state)
    before = chat.current
    chat.say(words)
    assert chat.kinds() == ["Reply"]
    assert fill(HELP_BY_STATE[state], max_photos=3) in chat.reply
    assert (fill(T.help_cancel) in chat.reply) is (not state.finished)
    assert chat.current.state is before.state


@pytest.mark.parametrize("words", ["cancel", "STOP", "Cancel."])
@pytest.mark.parametrize("state", OPEN_STATES)
def test_cancel_works_in_every_open_state_and_deletes_what_was_sent(state: State, words: str) -> None:
    """CANCEL ends the request, destroys every stored photo and says what was deleted."""
    chat = Chat.in_state(state)
    if state is State.AWAITING_PHOTOS:
        chat.photo()
        chat.photo("blurred")
    held = chat.current.all_photo_ids
    chat.say(words)
    assert chat.state is State.CANCELLED
    assert chat.destroyed == list(held)
    assert chat.reply.startswith("Cancelled.")
    assert "Nothing was sent to the practice" in chat.reply
    if held:
        assert "deleted the 2 photos you sent" in chat.reply
    assert chat.current.nhs_number is None


@pytest.mark.parametrize("state", FINISHED_STATES)
def test_cancel_after_the_end_has_nothing_to_cancel(state: State) -> None:
    """CANCEL in a finished conversation says there is nothing to cancel and changes nothing."""
    chat = Chat.in_state(state)
    before = chat.current
    chat.say("cancel")
    assert fill(T.nothing_to_cancel) in chat.reply
    assert chat.kinds() == ["Reply"]
    assert chat.current.state is before.state


PROMPT_BY_STATE = {
    State.AWAITING_NHS_NUMBER: T.nhs_number_prompt,
    State.CONFIRMING_NHS_NUMBER: T.nhs_number_readback,
    State.SCREEN_INTIMATE: T.ask_intimate,
    State.SCREEN_UNDER_18: T.ask_under_18,
    State.SCREEN_WHO: T.ask_who,
    State.STORAGE_CHOICE: T.ask_storage,
    State.AWAITING_PHOTOS: T.photos_prompt_first,
    State.REFUSED: T.status_refused,
    State.SUBMITTED: T.status_submitted,
    State.CANCELLED: T.status_cancelled,
    State.EXPIRED: T.status_expired,
}


@pytest.mark.parametrize("state", [state for state in State if state is not State.AWAITING_PHOTOS])
def test_unexpected_text_in_every_state_gets_the_question_again(state: State) -> None:
    """Anything unexpected is answered with an apology and the current question, never silence."""
    chat = Chat.in_state(state)
    before = chat.current
    chat.say("purple elephant")
    assert chat.kinds() == ["Reply"]
    assert chat.reply.startswith(fill(T.not_understood))
    prompt = fill(
        PROMPT_BY_STATE[state],
        nhs_number=spaced(NHS_NUMBER),
        reference=reference_code(before.conversation_id),
    )
    assert prompt in chat.reply
    assert chat.current == replace(before, last_activity_at=chat.current.last_activity_at)


def test_unexpected_text_at_the_photo_step_is_kept_as_a_note() -> None:
    """At the photo step, free text is the patient's own words about the concern."""
    chat = Chat.in_state(State.AWAITING_PHOTOS)
    chat.say("purple elephant")
    assert chat.current.notes == ("purple elephant",)
    assert chat.reply == fill(T.note_added)


@pytest.mark.parametrize("state", list(State))
def test_photo_in_every_state_is_admitted_only_at_the_photo_step(state: State) -> None:
    """Only the photo step downloads photos; elsewhere the photo is removed and the patient told why and
    what to do now."""
    chat = Chat.in_state(state)
    admission = photo_admission(chat.current, POLICY)
    chat.photo()
    assert chat.redacted == [chat.last_event_id()]
    assert chat.purged == [chat.last_event_id()]
    assert chat.state is state
    if state is State.AWAITING_PHOTOS:
        assert isinstance(admission, Admit)
        assert "Photo 1 received" in chat.reply
        return
    assert isinstance(admission, Refuse)
    assert chat.destroyed == []
    if state.finished:
        expected = fill(T.refused_photo) if state is State.REFUSED else fill(T.photo_not_now)
    else:
        expected = fill(T.photo_not_yet)
    assert expected in chat.reply


@pytest.mark.parametrize("state", [state for state in State if state is not State.AWAITING_PHOTOS])
def test_a_photo_stored_outside_the_photo_step_is_destroyed(state: State) -> None:
    """A photo stored although admission would refuse it is destroyed at once, never kept."""
    chat = Chat.in_state(state)
    chat.stored("photo-stray")
    assert chat.destroyed == ["photo-stray"]
    assert "photo-stray" not in chat.current.all_photo_ids
    assert chat.state is state


def test_admission_refuses_without_a_conversation() -> None:
    """No conversation, no download."""
    assert isinstance(photo_admission(None, POLICY), Refuse)


def test_steps_are_deterministic() -> None:
    """The same conversation and input always give the same result."""
    chat = to_photos()
    event = Text(EventID("$same"), "done", START_TIME)
    assert step(chat.current, event, POLICY) == step(chat.current, event, POLICY)


def test_policy_refuses_a_nonsense_limit() -> None:
    """A practice cannot configure zero photos or an empty name."""
    with pytest.raises(ValueError, match="max_photos"):
        Policy(PRACTICE, max_photos=0)
    with pytest.raises(ValueError, match="practice name"):
        Policy(" ")


def test_effects_hide_the_nhs_number_and_patient_words_in_their_repr() -> None:
    """A logged effect or conversation never shows the NHS number or the patient's words."""
    chat = to_photos()
    chat.say("a secret note")
    chat.photo()
    held = repr(chat.current)
    chat.say("done")
    logged = repr(chat.effects) + held
    assert NHS_NUMBER not in logged
    assert "a secret note" not in logged
    assert all(
        isinstance(effect, Submit | NotifyClinicians | Reply | Redact | DestroyPhotos | PurgeMedia)
        for effect in chat.effects
    )


# Issue 15: short and forgiving ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "said",
    [
        "I don't know my NHS number",
        "dont know it",
        "Where do I find my NHS number?",
        "I can't find it",
        "not sure",
        "what is an nhs number",
        "I haven't got one",
    ],
)
def test_not_knowing_the_nhs_number_gets_where_to_find_it_and_the_practice_contact(said: str) -> None:
    """'I don't know my NHS number' and close variants say where to find it and how to reach the practice."""
    contact = "Phone us on 01632 960000."
    chat = Chat.begun(policy=replace(POLICY, texts=replace(Texts(), how_to_contact=contact)))
    chat.say(said)
    assert chat.state is State.AWAITING_NHS_NUMBER
    for where in ("NHS App", "letter from the practice", "repeat prescription"):
        assert where in chat.reply, where
    assert contact in chat.reply
    assert "didn't understand" not in chat.reply


def test_the_carer_option_is_in_plain_words_and_help_says_what_the_practice_needs() -> None:
    """The read-back offers 'someone I look after'; HELP explains what the practice needs to know."""
    chat = Chat.begun()
    chat.say(NHS_NUMBER)
    assert "someone I look after" in chat.reply
    assert "legal authority" not in chat.reply and "attorney" not in chat.reply
    chat.say("help")
    assert "someone you look after" in chat.reply
    assert "agree" in chat.reply and "decide for them" in chat.reply


def test_every_question_of_the_default_journey_is_alone_in_its_message() -> None:
    """From the greeting to the reference code, no bot message asks more than one question."""
    chat = Chat.begun()
    replies = [chat.reply]
    for line in (NHS_NUMBER, "1", "no"):
        chat.say(line)
        replies.append(chat.reply)
    chat.photo()
    replies.append(chat.reply)
    chat.say("done")
    replies.append(chat.reply)
    assert len(replies) == 6
    assert all(text.count("?") <= 1 for text in replies)
    assert chat.submitted is not None and chat.submitted.keep_in_record is True


def test_delete_at_the_photo_step_asks_the_storage_question_and_keeps_the_photos() -> None:
    """DELETE after a photo asks keep-or-delete once; the answer changes the choice and keeps the photo."""
    chat = to_photos()
    chat.photo()
    chat.say("delete")
    assert chat.state is State.STORAGE_CHOICE
    assert fill(T.ask_storage) in chat.reply
    chat.say("2")
    after = chat.current
    assert after.state is State.AWAITING_PHOTOS
    assert after.keep_in_record is False
    assert len(after.photo_ids) == 1
    chat.say("done")
    assert chat.submitted is not None and chat.submitted.keep_in_record is False


def test_delete_for_an_intimate_photo_says_it_is_deleted_anyway() -> None:
    """An intimate photo is never kept, so DELETE only repeats that it will be described, then deleted."""
    chat = to_photos(intimate=True)
    chat.say("delete")
    assert chat.state is State.AWAITING_PHOTOS
    assert fill(T.storage_unchanged_intimate) in chat.reply


def test_an_edit_of_the_last_answer_replays_it_and_an_older_edit_is_answered_kindly() -> None:
    """Editing the who-answer from 1 to 2 changes it; editing an earlier message only gets a kind reply."""
    chat = Chat.begun()
    chat.say(NHS_NUMBER)
    number = chat.last_event_id()
    chat.say("1")
    who = chat.last_event_id()
    chat.send(Edit(chat.event_id(), who, "2", chat.tick()))
    assert chat.state is State.SCREEN_INTIMATE
    assert chat.current.acting_for_someone is True
    assert fill(T.ask_intimate) in chat.reply
    late = chat.event_id()
    chat.send(Edit(late, number, OTHER_NHS_NUMBER, chat.tick()))
    assert chat.current.nhs_number == NHS_NUMBER
    assert fill(T.edit_too_late) in chat.reply
    assert late in chat.redacted, "the late edit carries a number in clear"


def test_a_reaction_answers_only_a_question_that_takes_it() -> None:
    """A 👍 confirms at the intimate question; at the photo step it is no message and gets no reply."""
    chat = Chat.in_state(State.SCREEN_INTIMATE)
    chat.send(Reaction(chat.event_id(), "👍🏽", chat.tick()))
    assert chat.state is State.SCREEN_UNDER_18
    chat = to_photos()
    effects = chat.send(Reaction(chat.event_id(), "👍", chat.tick()))
    assert effects == ()
    assert chat.state is State.AWAITING_PHOTOS


def test_a_note_removed_for_a_date_of_birth_is_offered_back_masked_and_added_on_yes() -> None:
    """The clinical words of a removed note come back without the date; 'yes' adds them, 'no' does not."""
    chat = to_photos()
    chat.say("It is itchy and red. Date of birth 02/03/1961")
    removed = chat.last_event_id()
    assert chat.redacted == [removed]
    assert "It is itchy and red." in chat.reply and "1961" not in chat.reply
    chat.say("yes")
    assert len(chat.current.notes) == 1
    assert "itchy and red" in chat.current.notes[0] and "1961" not in chat.current.notes[0]
    chat.say("My name is Jane Doe and the mole bleeds")
    assert "Jane" not in chat.reply and "Doe" not in chat.reply
    chat.say("no")
    assert len(chat.current.notes) == 1
