"""Consent to share after a submission, clinicians' photo requests that expire, and staff commands typed
by a patient: what the patient reads and what the handler is told to do."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.conversation import (
    AskConsent,
    Begin,
    Conversation,
    NotifyClinicians,
    PendingConsent,
    PhotoStored,
    RecordConsent,
    Reply,
    State,
    Text,
    reference_code,
    step,
)
from bot.ids import EventID
from tests.unit.test_conversation_support import NHS_NUMBER, POLICY, START_TIME, Chat, fill

T = POLICY.texts
REFERENCE = reference_code("conv-1")
OPEN_STATES = [state for state in State if not state.finished]
AREA = "the rash on your left forearm"
CLINICIAN = "Dr Patel"
REQUEST_ID = "request-7"
# Answers that take a requested conversation (greeted already) to the photo step.
TO_PHOTOS = (NHS_NUMBER, "1", "no")


def submitted() -> Chat:
    return Chat.in_state(State.SUBMITTED)


def ask(chat: Chat, purpose: str = "second-opinion", consent_id: str = "consent-1") -> None:
    chat.send(AskConsent(consent_id, purpose, REFERENCE, chat.tick()))


def records(chat: Chat) -> list[RecordConsent]:
    """Every consent the handler has been told to record in this chat so far."""
    return [effect for _, effects in chat.history for effect in effects if isinstance(effect, RecordConsent)]


def question(purpose: str) -> str:
    template = T.consent_teaching if purpose == "teaching" else T.consent_second_opinion
    return fill(template, reference=REFERENCE)


def requested(expires_at: datetime) -> Chat:
    """A chat begun by a clinician's request that expires at `expires_at`."""
    chat = Chat()
    chat.send(
        Begin(
            "conv-1",
            chat.tick(),
            requested_area=AREA,
            requested_by=CLINICIAN,
            request_id=REQUEST_ID,
            request_expires_at=expires_at,
        )
    )
    return chat


def unchanged_but_for_the_clock(before: Conversation, after: Conversation) -> bool:
    return replace(before, last_activity_at=after.last_activity_at) == after


# Asking --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "named"), [("second-opinion", "second opinion"), ("teaching", "teaching")]
)
def test_consent_question_names_the_reference_and_the_purpose(purpose: str, named: str) -> None:
    """After a submission, the clinician's question quotes the patient's reference and says what the
    photos would be shared for, and nothing is recorded yet."""
    chat = submitted()
    ask(chat, purpose)
    assert chat.reply == question(purpose)
    assert f"**{REFERENCE}**" in chat.reply
    assert named in chat.reply
    assert chat.kinds() == ["Reply"]
    assert chat.state is State.SUBMITTED
    assert chat.current.consent == PendingConsent("consent-1", purpose, REFERENCE)


def test_second_opinion_and_teaching_questions_are_worded_differently() -> None:
    """A patient asked about teaching reads a different question from one asked about a second opinion."""
    assert question("second-opinion") != question("teaching")
    assert "teaching" not in question("second-opinion")
    assert "second opinion" not in question("teaching")


@pytest.mark.parametrize("state", OPEN_STATES)
def test_consent_asked_during_an_unfinished_conversation_is_ignored(state: State) -> None:
    """A consent question never interrupts a conversation in progress: no reply, no pending question, and
    the patient's next answer still answers the current step."""
    chat = Chat.in_state(state)
    before = chat.current
    ask(chat)
    assert chat.effects == ()
    assert chat.current.consent is None
    assert unchanged_but_for_the_clock(before, chat.current)
    chat.say("yes")
    assert records(chat) == []
    assert chat.current.consent is None


def test_consent_asked_during_an_unfinished_conversation_leaves_it_exactly_as_it_was() -> None:
    """An ignored consent question does not count as the patient's activity (it must not postpone the
    idle timeout of a conversation holding an NHS number)."""
    chat = Chat.in_state(State.SCREEN_WHO)
    before = chat.current
    chat.send(AskConsent("consent-1", "teaching", REFERENCE, chat.now + timedelta(hours=1)))
    assert chat.current == before


# Answering -----------------------------------------------------------------------------------------------


def test_yes_then_1_records_agreement_given_by_the_patient() -> None:
    """'yes' asks who is answering; '1' records agreement by the patient at the moment of the answer and
    thanks them with the reference."""
    chat = submitted()
    ask(chat)
    chat.say("yes")
    assert chat.reply == fill(T.consent_who)
    assert records(chat) == []
    chat.say("1")
    assert records(chat) == [
        RecordConsent(
            consent_id="consent-1",
            reference=REFERENCE,
            purpose="second-opinion",
            agreed=True,
            given_by="patient",
            answered_at=chat.now,
        )
    ]
    assert fill(T.consent_recorded_yes, reference=REFERENCE) in chat.reply
    assert chat.current.consent is None
    assert chat.state is State.SUBMITTED


def test_no_then_2_records_refusal_given_with_legal_authority() -> None:
    """'no' then '2' records that the person with legal authority does not agree, and says nothing will
    be shared."""
    chat = submitted()
    ask(chat, "teaching", "consent-9")
    chat.say("No")
    assert chat.reply == fill(T.consent_who)
    chat.say("2")
    assert records(chat) == [
        RecordConsent(
            consent_id="consent-9",
            reference=REFERENCE,
            purpose="teaching",
            agreed=False,
            given_by="legal-authority",
            answered_at=chat.now,
        )
    ]
    assert fill(T.consent_recorded_no, reference=REFERENCE) in chat.reply
    assert "won't be shared" in chat.reply
    assert chat.current.consent is None


def test_unrecognised_answers_ask_again_without_recording() -> None:
    """Anything but yes/no, then anything but 1/2, asks the same question again with a hint, and nothing
    is recorded until both are answered."""
    chat = submitted()
    ask(chat)
    chat.say("maybe")
    assert chat.reply == "\n\n".join([fill(T.yes_or_no), question("second-opinion")])
    chat.say("no, I'd rather not say yet")  # a sentence is never taken for an answer
    assert chat.reply == "\n\n".join([fill(T.yes_or_no), question("second-opinion")])
    assert chat.current.consent == PendingConsent("consent-1", "second-opinion", REFERENCE)
    chat.say("yes")
    chat.say("3")
    assert chat.reply == "\n\n".join([fill(T.one_or_two), fill(T.consent_who)])
    chat.say("yes")
    assert chat.reply == "\n\n".join([fill(T.one_or_two), fill(T.consent_who)])
    assert chat.current.consent == PendingConsent("consent-1", "second-opinion", REFERENCE, "who", True)
    assert records(chat) == []
    chat.say("2")
    assert [(r.agreed, r.given_by) for r in records(chat)] == [(True, "legal-authority")]


def test_help_during_consent_explains_the_question_and_asks_it_again() -> None:
    """HELP while a consent question waits explains it (no is always fine) and repeats it; nothing is
    recorded and the question still waits."""
    chat = submitted()
    ask(chat, "teaching")
    chat.say("help")
    assert chat.reply == "\n\n".join([fill(T.help_consent), question("teaching")])
    assert chat.current.consent == PendingConsent("consent-1", "teaching", REFERENCE)
    assert records(chat) == []


@pytest.mark.parametrize("answered_first", [(), ("yes",)])
def test_cancel_during_consent_withdraws_the_question_without_recording(
    answered_first: tuple[str, ...],
) -> None:
    """CANCEL, before or after 'yes', leaves the question unanswered: nothing is recorded, the patient is
    told nothing will be shared, and a later '1' is not taken as an answer."""
    chat = submitted()
    ask(chat)
    for line in answered_first:
        chat.say(line)
    chat.say("cancel")
    assert chat.reply == fill(T.consent_withdrawn)
    assert chat.current.consent is None
    assert chat.state is State.SUBMITTED
    chat.say("1")
    assert records(chat) == []
    assert question("second-opinion") not in chat.reply


def test_start_during_consent_drops_the_question_and_begins_afresh() -> None:
    """START while a consent question waits begins a new request at the NHS number question; the consent
    question is gone and nothing is recorded."""
    chat = submitted()
    ask(chat)
    chat.say("yes")
    chat.say("start")
    assert chat.state is State.AWAITING_NHS_NUMBER
    assert chat.current.conversation_id != "conv-1"
    assert chat.current.consent is None
    assert fill(T.ask_nhs_number) in chat.reply
    chat.say("1")
    assert records(chat) == []


@pytest.mark.parametrize("answers", [(), ("no",)], ids=["asked", "who is answering"])
def test_a_pending_consent_survives_a_restart(answers: tuple[str, ...]) -> None:
    """A conversation stored and read back with a question waiting, at either stage, carries on exactly as
    it would have."""
    chat = submitted()
    ask(chat)
    for line in answers:
        chat.say(line)
    original = chat.current
    assert original.consent is not None
    restored = Conversation.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    reply = Text(EventID("$after-restart"), "no" if not answers else "2", chat.tick())
    assert step(restored, reply, POLICY) == step(original, reply, POLICY)


# A clinician's request that expires --------------------------------------------------------------------


def test_requested_conversation_greets_with_who_asked_and_submits_with_the_request_id() -> None:
    """A clinician's request is greeted with their name and the area, and the submission answers that
    request."""
    expires = START_TIME + timedelta(days=3)
    chat = requested(expires)
    assert fill(T.request_intro_by, requested_by=CLINICIAN, area=AREA) in chat.reply
    for line in TO_PHOTOS:
        chat.say(line)
    chat.photo()
    chat.say("done")
    assert chat.state is State.SUBMITTED
    assert chat.submitted is not None
    assert chat.submitted.request_id == REQUEST_ID
    assert chat.submitted.requested_area == AREA


def test_a_message_just_before_the_request_expires_is_handled_normally() -> None:
    """'done' sent a second before the request's expiry submits the photos as usual."""
    expires = START_TIME + timedelta(hours=2)
    chat = requested(expires)
    for line in TO_PHOTOS:
        chat.say(line)
    chat.photo()
    chat.now = expires - timedelta(seconds=31)  # the next message arrives a second before the expiry
    chat.say("done")
    assert chat.state is State.SUBMITTED
    assert chat.submitted is not None
    assert chat.destroyed == []


def test_a_message_after_the_request_expired_ends_it_and_destroys_the_photos() -> None:
    """Answering after the request expired ends the conversation: the stored photos are destroyed, nothing
    is sent to the practice, and the patient is told why and how to contact the practice."""
    expires = START_TIME + timedelta(hours=2)
    chat = requested(expires)
    for line in TO_PHOTOS:
        chat.say(line)
    chat.photo()
    chat.photo()
    photos = chat.current.photo_ids
    assert len(photos) == 2
    chat.now = expires + timedelta(minutes=5)
    chat.say("done")
    assert chat.state is State.EXPIRED
    assert sorted(chat.destroyed) == sorted(photos)
    assert chat.submitted is None
    assert not any(isinstance(effect, NotifyClinicians) for effect in chat.effects)
    assert fill(T.request_expired_with_photos, photos="the 2 photos") in chat.reply
    assert fill(T.start_again) in chat.reply
    assert chat.current.photo_ids == ()
    assert chat.current.nhs_number is None


def test_a_message_after_the_request_expired_without_photos_removes_the_number() -> None:
    """Answering the read-back after the request expired ends the conversation with the plain expiry
    wording and removes the message that carried the NHS number."""
    expires = START_TIME + timedelta(hours=1)
    chat = requested(expires)
    chat.say(NHS_NUMBER)
    number_message = chat.last_event_id()
    chat.now = expires + timedelta(seconds=1)
    chat.say("yes")
    assert chat.state is State.EXPIRED
    assert fill(T.request_expired) in chat.reply
    assert fill(T.number_removed) in chat.reply
    assert chat.redacted == [number_message]
    assert chat.destroyed == []
    assert chat.submitted is None


def test_consent_can_still_be_given_after_a_submitted_request_has_expired() -> None:
    """The request's expiry ends only an unfinished conversation: a consent question after it is answered
    and recorded."""
    expires = START_TIME + timedelta(hours=1)
    chat = requested(expires)
    for line in TO_PHOTOS:
        chat.say(line)
    chat.photo()
    chat.say("done")
    chat.now = expires + timedelta(days=1)
    ask(chat)
    chat.say("yes")
    chat.say("1")
    assert chat.state is State.SUBMITTED
    assert [(r.agreed, r.given_by) for r in records(chat)] == [(True, "patient")]


def test_a_photo_arriving_after_the_request_expired_is_destroyed_and_removed() -> None:
    """A photo that was stored as the request expired is destroyed with the others, and its message
    leaves the chat."""
    expires = START_TIME + timedelta(hours=1)
    chat = requested(expires)
    for line in TO_PHOTOS:
        chat.say(line)
    chat.photo()
    earlier = chat.current.photo_ids
    chat.now = expires + timedelta(minutes=1)
    late = EventID("$late-photo")
    chat.send(PhotoStored(late, "photo-late", (), chat.tick()))
    assert chat.state is State.EXPIRED
    assert sorted(chat.destroyed) == sorted((*earlier, "photo-late"))
    assert late in chat.redacted


# Staff commands typed by a patient ---------------------------------------------------------------------


@pytest.mark.parametrize("body", ["!queue", "!delete GP-AAAA-BBBB x", "  !help"])
@pytest.mark.parametrize(
    "state", [State.AWAITING_NHS_NUMBER, State.CONFIRMING_NHS_NUMBER, State.AWAITING_PHOTOS, State.SUBMITTED]
)
def test_a_staff_command_from_a_patient_is_explained_and_changes_nothing(body: str, state: State) -> None:
    """A patient typing a staff command is told it is for practice staff and asked the current question
    again; nothing is kept as a note, redacted, cancelled or started."""
    chat = Chat.in_state(state)
    before = chat.current
    chat.say(body)
    assert chat.reply.startswith(fill(T.staff_command))
    assert chat.kinds() == ["Reply"]
    assert unchanged_but_for_the_clock(before, chat.current)


def test_a_staff_command_during_consent_repeats_the_question_without_recording() -> None:
    """'!queue' while a consent question waits gets the staff-command reply and the question again."""
    chat = submitted()
    ask(chat, "teaching")
    before = chat.current
    chat.say("!queue")
    assert chat.reply == "\n\n".join([fill(T.staff_command), question("teaching")])
    assert unchanged_but_for_the_clock(before, chat.current)
    assert records(chat) == []


# Any sequence ------------------------------------------------------------------------------------------

WORDS = [
    "yes",
    "no",
    "y",
    "nope",
    "1",
    "2",
    "me",
    "someone else",
    "help",
    "?",
    "cancel",
    "start",
    "done",
    "thanks",
    "!queue",
    NHS_NUMBER,
    "07700 900123",
    "",
]


@settings(max_examples=200, deadline=None)
@given(
    purpose=st.sampled_from(["second-opinion", "teaching"]),
    texts=st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=30)), max_size=15),
)
def test_any_texts_during_a_pending_consent_record_it_at_most_once(purpose: str, texts: list[str]) -> None:
    """Whatever the patient types while a consent question waits, every message gets a reply, nothing
    raises, and at most one answer is recorded, for the question that was asked."""
    chat = submitted()
    ask(chat, purpose)
    for body in texts:
        chat.say(body)
        assert any(isinstance(effect, Reply) and effect.text.strip() for effect in chat.effects)
        if any(isinstance(effect, RecordConsent) for effect in chat.effects):
            assert chat.current.consent is None
    found = records(chat)
    assert len(found) <= 1
    for record in found:
        assert (record.consent_id, record.purpose, record.reference) == ("consent-1", purpose, REFERENCE)
        assert record.given_by in {"patient", "legal-authority"}
