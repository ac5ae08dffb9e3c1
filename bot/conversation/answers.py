"""Reading a patient's short answers: commands, yes/no, numbered choices.

Forgiving on form (case, spaces, curly apostrophes, trailing punctuation, **bold** copied from the bot's
message), strict on meaning: a word is recognised only when the whole message is that word or phrase, so
"no, it started yesterday" is a note, never an answer.
"""

from __future__ import annotations

import re
from enum import Enum


class Command(Enum):
    HELP = "help"
    CANCEL = "cancel"
    START = "start"


class Answer(Enum):
    """A recognised answer; which ones count depends on the question."""

    YES = "yes"
    NO = "no"
    ONE = "1"
    TWO = "2"
    DONE = "done"
    KEEP = "keep"
    COURTESY = "courtesy"  # "ok", "thanks", "hello": not an answer, not a note


_COMMANDS: dict[str, Command] = {
    **dict.fromkeys(
        ("help", "help me", "help please", "please help", "please help me", "i need help", "h"), Command.HELP
    ),
    **dict.fromkeys(
        (
            "cancel",
            "cancel please",
            "please cancel",
            "cancel it",
            "stop",
            "stop please",
            "please stop",
            "stop it",
            "quit",
            "exit",
        ),
        Command.CANCEL,
    ),
    **dict.fromkeys(
        ("start", "start again", "restart", "begin", "new", "new photos", "start over"), Command.START
    ),
}

_YES = (
    "y",
    "yes",
    "yeah",
    "yep",
    "yup",
    "ye",
    "yes please",
    "yes it is",
    "yes thats right",
    "correct",
    "thats right",
    "that is right",
    "right",
    "👍",
)
_NO = (
    "n",
    "no",
    "nope",
    "nah",
    "no thanks",
    "no thank you",
    "no it isnt",
    "no its not",
    "wrong",
    "incorrect",
    "thats wrong",
    "👎",
)

_WHO_ME = (
    "1",
    "one",
    "option 1",
    "number 1",
    "me",
    "myself",
    "just me",
    "its me",
    "it is me",
    "mine",
    "self",
    "for me",
    "for myself",
)
_WHO_OTHER = (
    "2",
    "two",
    "option 2",
    "number 2",
    "someone else",
    "someone",
    "other",
    "my child",
    "child",
    "someone i care for",
    "someone i act for",
    "power of attorney",
    "attorney",
    "lpa",
    "guardian",
    "for someone else",
    "for my child",
)
_STORE_KEEP = (
    "1",
    "one",
    "option 1",
    "number 1",
    "keep",
    "keep it",
    "kept",
    "record",
    "keep in record",
    "may be kept",
    "save",
    "store",
)
_STORE_DELETE = (
    "2",
    "two",
    "option 2",
    "number 2",
    "delete",
    "view then delete",
    "view and delete",
    "delete it",
    "dont keep",
    "do not keep",
    "delete after",
    "view only",
)

_DONE = (
    "done",
    "finished",
    "finish",
    "all done",
    "im done",
    "i am done",
    "ive finished",
    "i have finished",
    "thats all",
    "that is all",
    "thats it",
    "send",
    "send them",
    "send it",
    "submit",
    "complete",
)
_KEEP = (
    "keep",
    "keep it",
    "keep this",
    "keep this one",
    "keep anyway",
    "keep it anyway",
    "use it",
    "use it anyway",
    "use this one",
    "send anyway",
    "send it anyway",
    "its fine",
    "thats fine",
    "fine",
)
_COURTESY = (
    "ok",
    "okay",
    "k",
    "thanks",
    "thank you",
    "thankyou",
    "ta",
    "cheers",
    "hi",
    "hello",
    "hiya",
    "great",
    "good",
    "lovely",
    "yes",
    "no",
    "y",
    "n",
)

# The answers each question understands.
YES_NO = ((Answer.YES, _YES), (Answer.NO, _NO))
WHO = ((Answer.ONE, _WHO_ME), (Answer.TWO, _WHO_OTHER))
STORAGE = ((Answer.ONE, _STORE_KEEP), (Answer.TWO, _STORE_DELETE))
PHOTOS = ((Answer.DONE, _DONE), (Answer.KEEP, _KEEP))
COURTESY = ((Answer.COURTESY, _COURTESY),)

_PUNCTUATION = ".,!?;:()[]*_~\"'`-"


def normalise(text: str) -> str:
    """Lower case, single spaces, no apostrophes, no punctuation at either end, no Markdown emphasis."""
    lowered = text.replace("\u2019", "'").replace("\u2018", "'").casefold()
    lowered = lowered.replace("'", "").replace("*", "").replace("_", " ")
    return re.sub(r"\s+", " ", lowered).strip().strip(_PUNCTUATION + " ")


def command(text: str) -> Command | None:
    """HELP, CANCEL or START if that is the whole message ("?" alone is HELP)."""
    stripped = text.strip()
    if stripped and set(stripped) <= {"?", " "}:
        return Command.HELP
    return _COMMANDS.get(normalise(text))


def answer(text: str, choices: tuple[tuple[Answer, tuple[str, ...]], ...]) -> Answer | None:
    """The answer among `choices` that the whole message gives, or None."""
    said = normalise(text)
    for meaning, words in choices:
        if said in words:
            return meaning
    return None
