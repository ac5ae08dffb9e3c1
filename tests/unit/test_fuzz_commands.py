"""Fuzzing the staff command parser: any text is a command with a name and words, or not a command; a
command's arguments are read or refused with a usage message; the replies for unknown and refused commands
are always sentences. (The whole dispatch, with a database, is fuzzed in test_fuzz_staff_dispatch.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.ids import EventID, RoomID, UserID
from bot.settings import load_settings
from handlers.commands import (
    Command,
    Invocation,
    Outcome,
    Role,
    UsageError,
    parse_command,
    refused,
    unknown_command,
    usage_reply,
)
from storage.practice_config import defaults_from
from tests.unit.test_fuzz_support import CASES, fuzz_settings

NAMES = ["help", "queue", "claim", "view", "keep", "describe", "crop", "rotate", "blur", "export", "consent"]
NAMES += ["share", "delete", "request", "audit", "config", "set", "clinician", "admin", "room", "text"]
NAMES += ["retention-resume", "help-admin"]


async def _nothing(cmd: Invocation) -> Outcome:
    return Outcome("done")


TABLE = {name: Command(name, Role.CLINICIAN, f"!{name} REF", "a command", _nothing) for name in NAMES}

command_like = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda space, bang, name, rest: f"{space}{bang}{name}{rest}",
        st.sampled_from(["", " ", "\n", "\t "]),
        st.sampled_from(["!", "!!", "! ", "\uff01"]),
        st.one_of(st.sampled_from(NAMES), st.text(max_size=12)),
        st.one_of(st.just(""), st.text(max_size=80).map(lambda text: " " + text)),
    ),
)


@fuzz_settings(CASES["staff commands: any text"] // 2)
@given(text=command_like)
def test_any_text_is_a_command_with_a_name_and_words_or_not_a_command(text: str) -> None:
    """A message is a command only if it starts with '!' and a name of letters, digits and dashes; its words
    are the rest split on white space. Anything else is staff talking, which the bot leaves alone."""
    parsed = parse_command(text)
    if parsed is None:
        stripped = text.strip()
        head = stripped[1:].partition(" ")[0].strip().lower()
        assert not stripped.startswith("!") or not head or not head.replace("-", "").isalnum()
        return
    name, words, rest = parsed
    assert text.strip().startswith("!")
    assert name and name == name.lower() and name.replace("-", "").isalnum()
    assert words == tuple(rest.split())
    assert text.strip()[1:].lower().startswith(name)


@fuzz_settings(CASES["staff commands: any text"] // 2)
@given(text=command_like, sender=st.text(min_size=1, max_size=60), role=st.sampled_from(Role))
def test_an_unknown_or_refused_command_is_answered_with_a_short_sentence(
    text: str, sender: str, role: Role
) -> None:
    """Every parsed command that is unknown gets a reply naming at most 30 characters of it and pointing to
    !help; a sender who may not command the bot is told so."""
    parsed = parse_command(text)
    if parsed is None:
        return
    name = parsed[0]
    reply = unknown_command(name, TABLE, role)
    assert reply.startswith("I don't know the command") and "`!help`" in reply
    assert len(reply) <= 160
    assert name[:30] in reply
    assert "can't act on that" in refused(UserID(sender), role)


CONFIG = defaults_from(
    load_settings(
        {"PHOTOBOT_HOMESERVER_URL": "https://matrix.example.org", "PHOTOBOT_USER_ID": "@bot:example.org"}
    )
)


def invocation(body: str) -> Invocation:
    return Invocation(
        "keep",
        tuple(body.split()),
        body,
        UserID("@dr:example.org"),
        RoomID("!r:example.org"),
        EventID("$e"),
        datetime(2030, 1, 1, tzinfo=UTC),
        CONFIG,
    )


@fuzz_settings(CASES["staff commands: arguments"])
@given(body=st.text(max_size=120), index=st.integers(0, 6), after=st.integers(0, 6))
def test_arguments_are_read_or_refused_with_a_usage_message(body: str, index: int, after: int) -> None:
    """A command's n-th word and the free text after its first words are read as typed, or refused with a
    UsageError whose message, with the usage line, is the reply."""
    cmd = invocation(body)
    if index < len(body.split()):
        assert cmd.word(index, "The reference") == body.split()[index]
    else:
        with pytest.raises(UsageError) as missing:
            cmd.word(index, "The reference")
        assert (
            usage_reply(TABLE["keep"], missing.value.text) == "The reference is missing. Usage: `!keep REF`"
        )
    if after < len(body.split()):
        rest = cmd.rest(after, "The reason")
        assert rest == rest.strip()
        assert rest.split() == body.split()[after:]
    else:
        with pytest.raises(UsageError, match=r"^The reason is missing\.$"):
            cmd.rest(after, "The reason")
