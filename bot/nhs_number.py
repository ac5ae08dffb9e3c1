"""NHS numbers: parse what a patient typed, check it, and never let it slip into a log.

A patient identifies themselves with their NHS number only (product rule 7). This module turns the text of
their message into an `NhsNumber`, or into an `NhsNumberProblem` that `explain` turns into a kind reply.
It does no I/O and keeps no state.

Format
    Ten digits, usually written 3-3-4 ("943 476 5919"); the tenth is a Modulus 11 check digit. Multiply
    the first nine digits by the weights 10, 9, ... 2, sum, take the remainder mod 11 and subtract it from
    11: 11 becomes 0, and 10 means the nine digits can never make a valid number (none is issued with it).
    The check catches every single mistyped digit and every swap of two adjacent digits.

What a patient may type (all accepted, then reduced to the ten digits)
    - spaces of any kind (phones insert no-break and narrow no-break spaces), dashes of any kind (hyphen,
      en and em dash, minus sign, full-width hyphen: Unicode category Pd plus U+2212), and full stops
      ("943.476.5919"): all harmless separators, so refusing them would only annoy;
    - invisible format characters (Unicode category Cf: zero-width spaces, left-to-right and
      right-to-left marks that come with copied Arabic or Hebrew text): dropped;
    - a leading "NHS number:", "NHS no.", "my NHS number is", "CHI number", "H&C number" and the like.
    Anything else (a letter, a trailing word, a plus sign) makes the text `NOT_A_NUMBER`: the parser does
    not guess which part of a sentence is the number.

Digits from other scripts
    Keyboards for Arabic, Persian, Urdu, Hindi, Bengali, Chinese and Japanese may send digits that are not
    ASCII: Arabic-Indic (U+0660-0669), Extended Arabic-Indic (U+06F0-06F9), Devanagari (U+0966-096F),
    full-width (U+FF10-FF19) and the other scripts of category Nd. Each character of Unicode category Nd
    (decimal digit) is mapped EXPLICITLY to its ASCII digit with `unicodedata.decimal`
    (`normalise_digits`), and only then is anything checked. Nothing here relies on
    `int()`, `str.isdigit()` or the regex class `\\d`, which accept those digits silently (and, for
    `isdigit`, superscripts such as "²" too): every later test compares against the ten ASCII characters
    "0123456789" only. Characters that merely look like digits but are not of category Nd (superscripts,
    circled digits, fractions) are refused as `NOT_A_NUMBER`. Digits from different scripts within one
    number are accepted: the number is read back to the patient for confirmation in any case.

Which numbers are issued (researched; first ten digits, inclusive)
    ============================  ===============================================================
    010 100 0000 - 311 299 9999   Scotland: CHI numbers, whose first six digits are the date of
                                  birth as ddmmyy (so 010 100 xxxx is someone born on 1 January
                                  1900 or 2000)
    312 000 0000 - 319 999 9999   England: numbers starting 3 that are neither CHI nor Northern
                                  Irish ("current numbers in England also include 3xx xxx xxxx")
    320 000 0000 - 399 999 9999   Northern Ireland: Health and Care (H&C) numbers
    400 000 0000 - 499 999 9999   England, Wales and the Isle of Man
    600 000 0000 - 799 999 9999   England, Wales and the Isle of Man
    999 000 0000 - 999 999 9999   reserved for testing: valid check digits, never issued to a person
    ============================  ===============================================================
    Everything else (000 000 0000 to 010 099 9999, the 5xx block, 800 000 0000 to 998 999 9999) is
    `NOT_ISSUED`. Sources: the NHS Data Dictionary entry "NHS Number"; Wikipedia, "NHS number", section
    "Format, number ranges, and check characters"; the `nhs-number` crate's range notes, maintained by NHS
    Wales (GIG Cymru). The bot serves practices in England and Wales but accepts Scottish and Northern
    Irish numbers, because people move and a patient may still carry one.

    The CHI block is checked as a range only: the ddmmyy part is not checked as a calendar date. A false
    refusal stops a real patient at the first step, while a false acceptance is caught when the number is
    read back and when the clinician matches it to the record. For the same reason the 312-319 block is
    accepted.

Test numbers
    The 999 block is accepted only when `test_mode` is on (a demo, the test suite, a practice trying the
    bot out); otherwise it is `TEST_NUMBER`, so a test number never reaches a real clinical record.
    `with_check_digit` completes nine digits into a valid number, for tests and the demo.

Order of checks: EMPTY, NOT_A_NUMBER, WRONG_LENGTH, CHECK_DIGIT, then the ranges. The check digit comes
before the ranges because a typo is by far the likeliest reason a real patient's number is refused, and
"please check for a typo" is the most useful reply; 000 000 0000 has a valid check digit (0) and is
therefore `NOT_ISSUED`.

Privacy: an `NhsNumber`'s repr and str are "NhsNumber(***)", and no exception or explanation here ever
contains the digits, so a number cannot reach a log line by accident. Use `digits` or `formatted()` only
where the number is meant to go (the encrypted store, the read-back to the patient).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum

ASCII_DIGITS = "0123456789"
NHS_NUMBER_LENGTH = 10

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)

# (first, last) of each issued block, as ten-digit strings: same length, so string order is numeric order.
ISSUED_RANGES: tuple[tuple[str, str], ...] = (
    ("0101000000", "3112999999"),  # Scotland, CHI (ddmmyy + 4)
    ("3120000000", "3199999999"),  # England, 3xx
    ("3200000000", "3999999999"),  # Northern Ireland, H&C
    ("4000000000", "4999999999"),  # England, Wales, Isle of Man
    ("6000000000", "7999999999"),  # England, Wales, Isle of Man
)
TEST_RANGE: tuple[str, str] = ("9990000000", "9999999999")

# Separators a patient may use between digits, besides whitespace and categories Pd (dashes) and Cf
# (invisible format characters): full stops, and the minus sign, which is a maths symbol (Sm) not a dash.
_EXTRA_SEPARATORS = frozenset(".\uff0e\u2212\u2043")

# "NHS number:", "my NHS no. is", "CHI number -", "H&C number"... at the very start of the message.
_PREFIX = re.compile(
    r"""^\s*
        (?:(?:my|the|patient'?s?|his|her|their)\s+)?
        (?:nhs|chi|h\s*(?:&|and)\s*c)(?![a-z])
        (?:\s*(?:number|num|no\b\.?|nr\b\.?|\#))?
        (?:\s*is\b)?
        \s*[:=\#]?
    """,
    re.IGNORECASE | re.VERBOSE,
)


class NhsNumberProblem(Enum):
    """Why a message is not an NHS number the bot can accept; `explain` gives the reply."""

    EMPTY = "empty"
    WRONG_LENGTH = "wrong_length"
    NOT_A_NUMBER = "not_a_number"
    CHECK_DIGIT = "check_digit"
    NOT_ISSUED = "not_issued"
    TEST_NUMBER = "test_number"


_WHERE_TO_FIND = (
    "You can find it in the NHS App, on a prescription, or on a letter from your GP surgery or hospital."
)

_EXPLANATIONS: dict[NhsNumberProblem, str] = {
    NhsNumberProblem.EMPTY: (
        "I couldn't see a number in that message. Please send your 10-digit NHS number. " + _WHERE_TO_FIND
    ),
    NhsNumberProblem.WRONG_LENGTH: (
        "An NHS number has exactly 10 digits, and that didn't have 10. Please check it and send all "
        "10 digits (spaces are fine, for example 3 digits, 3 digits, then 4). " + _WHERE_TO_FIND
    ),
    NhsNumberProblem.NOT_A_NUMBER: (
        "An NHS number is made only of digits, 0 to 9. Please send just the 10 digits, with no letters "
        "or other words (spaces are fine)."
    ),
    NhsNumberProblem.CHECK_DIGIT: (
        "That number doesn't quite add up: one digit may be mistyped, or two swapped round. It happens "
        "easily. Please check it and send it again. " + _WHERE_TO_FIND
    ),
    NhsNumberProblem.NOT_ISSUED: (
        "That isn't a number the NHS gives to patients, so something may have been mistyped. Please "
        "check it and send it again. " + _WHERE_TO_FIND
    ),
    NhsNumberProblem.TEST_NUMBER: (
        "That is an NHS test number, used only for trying out computer systems, not a real patient's "
        "number. Please send your own NHS number. " + _WHERE_TO_FIND
    ),
}


def explain(problem: NhsNumberProblem) -> str:
    """The reply to send the patient: what was wrong and what to do, in plain English, without the digits."""
    return _EXPLANATIONS[problem]


@dataclass(frozen=True, repr=False)
class NhsNumber:
    """A checked NHS number: exactly ten ASCII digits with a valid check digit. Its repr hides the digits.

    The issued-range check depends on test mode, so it is the parser's job, not the constructor's.
    """

    digits: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _is_ascii_digits(self.digits, NHS_NUMBER_LENGTH) or not _check_digit_matches(self.digits):
            # The value is deliberately left out of the message.
            raise ValueError("an NhsNumber needs 10 ASCII digits with a valid Modulus 11 check digit")

    def formatted(self) -> str:
        """The number as 3-3-4 groups ("943 476 5919"), for reading back to the patient."""
        return f"{self.digits[:3]} {self.digits[3:6]} {self.digits[6:]}"

    def __repr__(self) -> str:
        return "NhsNumber(***)"

    def __str__(self) -> str:
        return "NhsNumber(***)"


def normalise_digits(text: str) -> str:
    """Replace every decimal digit of any script (category Nd) with its ASCII digit; leave the rest alone.

    Arabic-Indic U+0669 (nine) becomes "9", full-width U+FF14 (four) becomes "4". Superscripts, circled
    digits and fractions are not Nd and are left as they are.
    """
    if text.isascii():
        return text
    return "".join(
        ASCII_DIGITS[unicodedata.decimal(ch)] if unicodedata.category(ch) == "Nd" else ch for ch in text
    )


def with_check_digit(nine_digits: str) -> str | None:
    """The ten-digit number made of these nine ASCII digits and their check digit, or None if none exists.

    None means the Modulus 11 sum gives 10, so no valid NHS number starts with these nine digits.
    For tests and the demo: `with_check_digit("999000001")` is a synthetic number in the test range.
    """
    if not _is_ascii_digits(nine_digits, NHS_NUMBER_LENGTH - 1):
        raise ValueError("with_check_digit needs exactly 9 ASCII digits")
    check = _check_digit(nine_digits)
    return None if check is None else nine_digits + ASCII_DIGITS[check]


def parse_nhs_number(text: str, *, test_mode: bool) -> NhsNumber | NhsNumberProblem:
    """Read the NHS number a patient typed, or say what is wrong with it.

    Tolerates separators, invisible characters, digits of other scripts and an "NHS number:" prefix
    (see the module docstring). Test-range numbers (999 ...) are accepted only when `test_mode` is on.
    """
    compact = _without_separators(_without_prefix(normalise_digits(text)))
    if not compact:
        return NhsNumberProblem.EMPTY
    if any(ch not in ASCII_DIGITS for ch in compact):
        return NhsNumberProblem.NOT_A_NUMBER
    if len(compact) != NHS_NUMBER_LENGTH:
        return NhsNumberProblem.WRONG_LENGTH
    if not _check_digit_matches(compact):
        return NhsNumberProblem.CHECK_DIGIT
    if TEST_RANGE[0] <= compact <= TEST_RANGE[1]:
        return NhsNumber(compact) if test_mode else NhsNumberProblem.TEST_NUMBER
    if not any(first <= compact <= last for first, last in ISSUED_RANGES):
        return NhsNumberProblem.NOT_ISSUED
    return NhsNumber(compact)


def looks_like_nhs_number_attempt(text: str) -> bool:
    """Whether the patient seems to be typing a number: at least 3 digits, and digits are most of the text.

    Separators, invisible characters and an "NHS number:" prefix are ignored; digits of any script count.
    "943 476 591O" (a letter O for a zero) and "12345" are attempts; "help", "2" and "it started 2 weeks
    ago" are not. The bot answers an attempt with `explain(problem)` rather than a generic prompt.
    """
    significant = _without_separators(_without_prefix(normalise_digits(text)))
    digits = sum(1 for ch in significant if ch in ASCII_DIGITS)
    return digits >= 3 and digits * 4 >= len(significant) * 3


def _without_prefix(text: str) -> str:
    return _PREFIX.sub("", text, count=1)


def _is_separator(ch: str) -> bool:
    return ch.isspace() or ch in _EXTRA_SEPARATORS or unicodedata.category(ch) in ("Pd", "Cf")


def _without_separators(text: str) -> str:
    return "".join(ch for ch in text if not _is_separator(ch))


def _is_ascii_digits(text: str, length: int) -> bool:
    return len(text) == length and all(ch in ASCII_DIGITS for ch in text)


def _check_digit(nine_digits: str) -> int | None:
    """The Modulus 11 check digit for nine ASCII digits, or None when it would be 10 (never issued)."""
    total = sum(ASCII_DIGITS.index(ch) * weight for ch, weight in zip(nine_digits, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def _check_digit_matches(ten_digits: str) -> bool:
    check = _check_digit(ten_digits[:9])
    return check is not None and ASCII_DIGITS[check] == ten_digits[9]
