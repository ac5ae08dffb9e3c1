"""The answer buttons' hint: each yes/no or numbered question carries the answers it takes, and sending an
answer's text does what typing it does."""

from __future__ import annotations

from bot.conversation import Reply
from bot.conversation.choices import Choice
from bot.matrix.message_content import CHOICES, CHOICES_KEY, content_of
from tests.unit.test_conversation_support import NHS_NUMBER, Chat


def question(effects: tuple[object, ...]) -> Reply:
    replies = [effect for effect in effects if isinstance(effect, Reply)]
    assert replies
    return replies[-1]


def answers(effects: tuple[object, ...]) -> list[str]:
    return [choice.answer for choice in question(effects).choices]


def test_every_question_of_the_journey_carries_its_answers_and_free_text_questions_none() -> None:
    """The NHS number prompt takes free text (no buttons); the read-back, the screening and a photo step
    with photos offer exactly the answers the bot accepts there."""
    chat = Chat.begun()
    assert answers(chat.effects) == []
    assert answers(chat.say(NHS_NUMBER)) == ["1", "2", "no"]
    assert answers(chat.say("1")) == ["yes", "no"]  # intimate area?
    assert answers(chat.say("no")) == []  # the photo step, no photo yet: send a photo
    assert answers(chat.photo()) == ["done"]


def test_pressing_a_button_is_the_same_as_typing_its_answer() -> None:
    """Following the hinted answers (the first each time) walks the journey exactly as typing them does."""
    chat = Chat.begun()
    effects = chat.say(NHS_NUMBER)
    for _ in range(2):
        first = question(effects).choices[0].answer
        effects = chat.say(first)
    typed = Chat.begun()
    typed.say(NHS_NUMBER)
    typed.say("1")
    typed.say("yes")
    assert chat.state is typed.state
    assert [e.text for e in effects if isinstance(e, Reply)] == [
        e.text for e in typed.effects if isinstance(e, Reply)
    ]


def test_a_finished_journey_offers_no_buttons_and_a_storage_question_offers_its_two() -> None:
    """After DONE nothing is asked, so nothing is offered; asking to delete offers the two storage answers."""
    chat = Chat.begun()
    chat.say(NHS_NUMBER)
    chat.say("1")
    chat.say("no")
    chat.photo()
    assert answers(chat.say("delete")) == ["1", "2"]
    chat.say("2")
    effects = chat.say("done")
    assert any("reference" in effect.text for effect in effects if isinstance(effect, Reply))
    assert all(not effect.choices for effect in effects if isinstance(effect, Reply))


def test_the_hint_reaches_the_event_content_under_its_own_key() -> None:
    """A queued question's choices become `uk.co.gpphotobot.choices` in the event; other messages have none."""
    payload = {"text": "Reply **yes** or **no**.", CHOICES: [{"label": "Yes", "answer": "yes"}]}
    content = content_of(payload)
    assert content[CHOICES_KEY] == [{"label": "Yes", "answer": "yes"}]
    assert content["body"] == "Reply yes or no."
    assert CHOICES_KEY not in content_of({"text": "Kept."})
    assert Choice("Yes", "yes") == Choice(label="Yes", answer="yes")
