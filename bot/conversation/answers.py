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
    CHANGE_STORAGE = "change storage"  # at the photo step: "delete" (or change back to keeping)
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

_STORAGE_CHANGE = (
    "delete",
    "delete it",
    "delete please",
    "please delete",
    "delete it please",
    "delete after",
    "view then delete",
    "view and delete",
    "dont keep",
    "do not keep",
    "dont keep it",
    "change",
    "change storage",
    "change my choice",
    "record",
    "keep in record",
    "keep in my record",
    "keep it in my record",
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
PHOTOS = ((Answer.DONE, _DONE), (Answer.KEEP, _KEEP), (Answer.CHANGE_STORAGE, _STORAGE_CHANGE))
COURTESY = ((Answer.COURTESY, _COURTESY),)

# "I don't know my NHS number" and its close variants, matched anywhere in the (normalised) message.
_NUMBER_UNKNOWN = re.compile(
    r"\b(?:(?:i )?(?:dont|do not|don t|dunno)(?: know| have| remember)?|not sure|cant find|cannot find|"
    r"can not find|no idea|forgot|forgotten|lost|havent got|have not got|where|what is|whats|how do i find|"
    r"never had)\b"
)
_NUMBER_WORDS = re.compile(r"\b(?:nhs|number|it|one|mine)\b")

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


# Reactions that answer a question: yes/no, and the numbered choices.
_REACTIONS: dict[str, str] = {
    **dict.fromkeys(("👍", "✅", "✔️", "✔", "☑️"), "yes"),
    **dict.fromkeys(("👎", "❌", "✖️", "✖"), "no"),
    **dict.fromkeys(("1️⃣", "1⃣"), "1"),
    **dict.fromkeys(("2️⃣", "2⃣"), "2"),
}


def reaction_answer(key: str) -> str | None:
    """The typed answer a reaction stands for ('👍' -> 'yes', '1️⃣' -> '1'), or None."""
    stripped = key.strip()
    # Skin-tone modifiers (U+1F3FB..U+1F3FF) do not change the answer.
    stripped = "".join(ch for ch in stripped if not 0x1F3FB <= ord(ch) <= 0x1F3FF)
    return _REACTIONS.get(stripped)


def number_unknown(text: str) -> bool:
    """Whether the patient is saying they don't know their NHS number or where to find it."""
    said = normalise(text)
    if said in {"dont know", "i dont know", "not sure", "no idea", "dunno", "idk", "i dont have one"}:
        return True
    return bool(_NUMBER_UNKNOWN.search(said) and _NUMBER_WORDS.search(said))
