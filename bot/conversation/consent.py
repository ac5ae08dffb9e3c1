"""Consent to share, asked after a submission: a two-question dialogue on a finished conversation.

A clinician asks (`AskConsent`); the patient answers yes or no, then says who is answering: the person in
the photos, or someone with legal authority for them (rule 10). The answer is recorded (`RecordConsent`)
with who gave it and when. CANCEL leaves the question unanswered, which counts as no consent; START begins
a new conversation and drops the question.
"""

from __future__ import annotations

from dataclasses import replace

from bot.conversation import replies
from bot.conversation.answers import WHO, YES_NO, Answer, answer
from bot.conversation.effects import Effect, RecordConsent, Reply
from bot.conversation.inputs import AskConsent, Text
from bot.conversation.model import Conversation, PendingConsent
from bot.conversation.replies import Writer

Outcome = tuple[Conversation, tuple[Effect, ...]]

PURPOSES = ("second-opinion", "teaching")


def ask(conversation: Conversation, event: AskConsent, say: Writer) -> Outcome:
    """Put the question (again, if it is the same one: a replayed request asks once more, harmlessly)."""
    if not conversation.state.finished or event.purpose not in PURPOSES:
        return conversation, ()  # the handler checks first; a conversation in progress is never interrupted
    pending = PendingConsent(event.consent_id, event.purpose, event.reference)
    asked = replace(
        conversation, consent=pending, last_activity_at=max(conversation.last_activity_at, event.now)
    )
    return asked, (Reply(question(pending, say)),)


def question(pending: PendingConsent, say: Writer) -> str:
    return replies.consent_question(pending, say)


def answer_text(conversation: Conversation, pending: PendingConsent, event: Text, say: Writer) -> Outcome:
    t = say.texts
    if pending.stage == "answer":
        reply = answer(event.body, YES_NO)
        if reply not in (Answer.YES, Answer.NO):
            return conversation, (Reply(say.join([say(t.yes_or_no), question(pending, say)])),)
        who = replace(pending, stage="who", agreed=reply is Answer.YES)
        return replace(conversation, consent=who), (Reply(question(who, say)),)
    reply = answer(event.body, WHO)
    if reply not in (Answer.ONE, Answer.TWO):
        return conversation, (Reply(say.join([say(t.one_or_two), question(pending, say)])),)
    agreed = bool(pending.agreed)
    record = RecordConsent(
        consent_id=pending.consent_id,
        reference=pending.reference,
        purpose=pending.purpose,
        agreed=agreed,
        given_by="patient" if reply is Answer.ONE else "legal-authority",
        answered_at=event.now,
    )
    thanks = t.consent_recorded_yes if agreed else t.consent_recorded_no
    done = replace(conversation, consent=None)
    return done, (
        record,
        Reply(say.join([say(thanks, reference=pending.reference), replies.prompt(done, say)])),
    )


def withdraw(conversation: Conversation, say: Writer) -> Outcome:
    return replace(conversation, consent=None), (Reply(say(say.texts.consent_withdrawn)),)
