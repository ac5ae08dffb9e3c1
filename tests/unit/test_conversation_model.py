"""Storing a conversation, its reference code, reading short answers, and the wording's safety checks."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.conversation import Conversation, State, reference_code, restart_conversation_id
from bot.conversation.answers import PHOTOS, STORAGE, WHO, YES_NO, Answer, Command, answer, command
from bot.conversation.reference import REFERENCE_ALPHABET
from bot.texts import PLACEHOLDERS, Texts, count_photos, describe_file_type, describe_kind
from tests.unit.test_conversation_support import NHS_NUMBER, START_TIME, Chat

# Storage -------------------------------------------------------------------------------------------------


def stored_and_loaded(conversation: Conversation) -> Conversation:
    return Conversation.from_dict(json.loads(json.dumps(conversation.to_dict())))


@pytest.mark.parametrize("state", list(State))
def test_every_state_survives_a_round_trip_through_json(state: State) -> None:
    """A conversation in any state is stored as JSON and read back unchanged (a restart resumes it)."""
    chat = Chat.in_state(state)
    assert stored_and_loaded(chat.current) == chat.current


def test_a_full_photo_step_survives_a_round_trip() -> None:
    """Photos, a pending retake, notes, a requested area and pending number messages all survive storage."""
    chat = Chat.begun(requested_area="your left elbow")
    chat.say("999 000 001")  # an attempt, remembered for redaction
    for line in (NHS_NUMBER, "no", NHS_NUMBER):
        chat.say(line)
    confirming = chat.current
    assert len(confirming.number_event_ids) == 3
    assert stored_and_loaded(confirming) == confirming
    for line in ("1", "no", "delete", "2"):
        chat.say(line)
    chat.photo()
    chat.photo("blurred")
    chat.say("on the inside of the elbow, since Monday")
    full = chat.current
    assert full.retake_photo_id is not None
    assert full.notes
    assert stored_and_loaded(full) == full


def test_stored_times_are_utc_whatever_zone_they_came_in() -> None:
    """A time given in another zone is stored and read back as the same instant in UTC."""
    local = datetime(2030, 3, 4, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    conversation = Conversation("c", State.AWAITING_NHS_NUMBER, local, local)
    loaded = stored_and_loaded(conversation)
    assert loaded.started_at == local
    assert loaded.started_at.tzinfo == UTC


def _valid() -> dict[str, Any]:
    return Chat.in_state(State.AWAITING_PHOTOS).current.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version"),
        ({"state": "lost"}, "state"),
        ({"conversation_id": 7}, "conversation_id"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2030-03-04T09:00:00"}, "timezone"),
        ({"photo_ids": "abc"}, "photo_ids"),
        ({"intimate": "yes"}, "intimate"),
        ({"nhs_number": "12345"}, "10 ASCII digits"),
        ({"nhs_number": None}, "needs an NHS number"),
        ({"state": "submitted"}, "cannot hold an NHS number"),
        ({"photo_ids": ["a", "a"]}, "twice"),
        ({"intimate": True, "keep_in_record": True}, "never kept"),
    ],
)
def test_damaged_stored_data_is_refused_without_showing_values(change: dict[str, Any], message: str) -> None:
    """Stored data that does not make sense is refused with the field named, never the NHS number shown."""
    data = _valid() | change
    with pytest.raises(ValueError, match=message) as raised:
        Conversation.from_dict(data)
    assert NHS_NUMBER not in str(raised.value)


def test_photos_outside_the_photo_step_are_refused() -> None:
    """Only the photo step holds photos: a stored screening conversation with photos is refused."""
    data = Chat.in_state(State.SCREEN_WHO).current.to_dict() | {"photo_ids": ["p1"]}
    with pytest.raises(ValueError, match="photo step"):
        Conversation.from_dict(data)


def test_a_naive_time_is_refused() -> None:
    """Times without a zone would make expiry ambiguous, so they are refused."""
    naive = datetime(2030, 3, 4, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        Conversation("c", State.AWAITING_NHS_NUMBER, naive, START_TIME)


# Reference codes -----------------------------------------------------------------------------------------


def test_reference_code_is_stable_readable_and_unambiguous() -> None:
    """The same conversation always gets the same 'GP-XXXX-XXXX' code, without 0, O, 1 or I."""
    code = reference_code("conv-1")
    assert code == reference_code("conv-1")
    assert re.fullmatch(r"GP-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", code)
    assert not set("0O1I") & set(REFERENCE_ALPHABET)
    assert len(set(REFERENCE_ALPHABET)) == 32


def test_reference_codes_of_different_conversations_differ() -> None:
    """A thousand conversations get a thousand different references."""
    assert len({reference_code(f"conv-{n}") for n in range(1000)}) == 1000


def test_restart_id_is_derived_from_the_start_message() -> None:
    """Handling the same START message twice gives the same new conversation id."""
    assert restart_conversation_id("$a") == restart_conversation_id("$a")
    assert restart_conversation_id("$a") != restart_conversation_id("$b")


# Reading answers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", Command.HELP),
        ("?", Command.HELP),
        ("??", Command.HELP),
        ("HELP", Command.HELP),
        ("Help me", Command.HELP),
        ("help please!", Command.HELP),
        ("cancel", Command.CANCEL),
        ("Stop.", Command.CANCEL),
        ("**CANCEL**", Command.CANCEL),
        ("start", Command.START),
        ("Start again", Command.START),
        ("help, it is spreading", None),
        ("stop the itching", None),
        ("", None),
    ],
)
def test_commands_are_whole_messages(text: str, expected: Command | None) -> None:
    """HELP, CANCEL and START are recognised in any case and form, but only as the whole message."""
    assert command(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("y", Answer.YES),
        ("Yeah!", Answer.YES),
        ("  YEP  ", Answer.YES),
        ("yes please", Answer.YES),
        ("That\u2019s right", Answer.YES),
        ("n", Answer.NO),
        ("Nope.", Answer.NO),
        ("no, it started yesterday", None),
        ("maybe", None),
    ],
)
def test_yes_and_no_are_read_generously_but_only_as_whole_answers(text: str, expected: Answer | None) -> None:
    """Yes/no accept common forms, case, spaces and punctuation; a sentence is not an answer."""
    assert answer(text, YES_NO) is expected


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        ("1", WHO, Answer.ONE),
        ("1.", WHO, Answer.ONE),
        ("option 2", WHO, Answer.TWO),
        ("someone else", WHO, Answer.TWO),
        ("Keep", STORAGE, Answer.ONE),
        ("delete", STORAGE, Answer.TWO),
        ("3", STORAGE, None),
        ("Done", PHOTOS, Answer.DONE),
        ("I'm done", PHOTOS, Answer.DONE),
        ("that\u2019s all", PHOTOS, Answer.DONE),
        ("keep it", PHOTOS, Answer.KEEP),
    ],
)
def test_menus_accept_numbers_and_words(
    text: str, choices: tuple[tuple[Answer, tuple[str, ...]], ...], expected: Answer | None
) -> None:
    """Numbered menus accept the number and the words of each option."""
    assert answer(text, choices) is expected


# Wording -------------------------------------------------------------------------------------------------


def test_every_default_text_fills_with_its_values() -> None:
    """Every default template fills with the practice name and its own values, leaving no brace behind."""
    texts = Texts()
    sample: dict[str, object] = {name: "X" for names in PLACEHOLDERS.values() for name in names}
    for name, template in vars(texts).items():
        filled = texts.fill(template, practice="Riverside Surgery", **sample)
        assert "{" not in filled
        assert "}" not in filled, name


def test_a_practice_may_override_its_contact_details() -> None:
    """A practice's own contact sentence appears wherever the bot tells patients how to reach it."""
    texts = replace(Texts(), how_to_contact="Ring {practice} on 01632 960000.")
    filled = texts.fill(texts.refused, practice="Riverside Surgery")
    assert "Ring Riverside Surgery on 01632 960000." in filled


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"refused": "Call {phone}"}, "may use only"),
        ({"refused": "Call {practice.__class__}"}, "may use only"),
        ({"refused": "Call {practice!r}"}, "format spec or conversion"),
        ({"refused": "Call {practice"}, "unmatched brace"),
        ({"how_to_contact": "See {how_to_contact}"}, "may use only"),
        ({"greeting": "  "}, "non-empty"),
    ],
)
def test_a_broken_practice_text_is_refused_at_start_up(override: dict[str, str], message: str) -> None:
    """A typo in a practice's wording stops the bot at start-up, not mid-conversation."""
    with pytest.raises(ValueError, match=message):
        replace(Texts(), **override)


def test_texts_never_ask_for_name_date_of_birth_or_address() -> None:
    """No text asks the patient for their name, date of birth or address."""
    asking = re.compile(r"\b(send|type|tell|give|what is)\b[^.?]*\b(name|date of birth|address)\b")
    for name, template in vars(Texts()).items():
        for sentence in re.split(r"(?<=[.?:])\s", template.lower()):
            if asking.search(sentence):
                assert "don't" in sentence or "never" in sentence, name


@pytest.mark.parametrize(
    ("detected", "expected"),
    [
        ("PDF", "a PDF file"),
        ("MP4 video", "an MP4 video"),
        ("MP3 audio", "an MP3 audio file"),
        ("Ogg media", "an Ogg media file"),
        ("Photoshop document", "a Photoshop document"),
        ("GIF", "a GIF file"),
        ("SVG", "an SVG file"),
    ],
)
def test_detected_file_types_read_naturally(detected: str, expected: str) -> None:
    """'That file looks like a PDF file' / 'an MP4 video': the article and noun fit the type."""
    assert describe_file_type(detected) == expected


def test_counts_and_kinds_read_naturally() -> None:
    """'the photo' / 'the 2 photos'; 'a voice message'; an unknown kind is still a sentence."""
    assert count_photos(1) == "the photo"
    assert count_photos(2) == "the 2 photos"
    assert describe_kind("Voice message") == "a voice message"
    assert describe_kind("hologram") == "that kind of message"
