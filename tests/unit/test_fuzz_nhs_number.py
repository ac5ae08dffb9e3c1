"""Fuzzing the NHS-number parser: any text gets a number or a problem with a reply; a valid number survives
whatever way a phone types it; one mistyped digit or two swapped digits are always caught.

(tests/unit/test_nhs_number.py holds the hand-written cases and the basic properties; this file goes wider:
every script's digits, every separator, prefixes, invisible characters and long texts.)
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import assume, given
from hypothesis import strategies as st

from bot.nhs_number import (
    ISSUED_RANGES,
    TEST_RANGE,
    NhsNumber,
    NhsNumberProblem,
    explain,
    looks_like_nhs_number_attempt,
    normalise_digits,
    parse_nhs_number,
    with_check_digit,
)
from tests.unit.test_fuzz_support import CASES, fuzz_settings

ASCII_DIGITS = "0123456789"
# Every decimal digit Unicode knows, grouped by script: the zero of each block, then its nine siblings.
ZEROS = tuple(
    chr(c)
    for c in range(0x110000)
    if unicodedata.category(chr(c)) == "Nd" and unicodedata.decimal(chr(c)) == 0
)
SEPARATORS = [
    " ",
    "  ",
    "-",
    ".",
    "\u00a0",
    "\u202f",
    "\u2009",
    "\u2013",
    "\u2014",
    "\u2212",
    "\uff0d",
    "\u200b",
]
PREFIXES = [
    "",
    "NHS number: ",
    "my NHS number is ",
    "NHS no. ",
    "nhs ",
    "CHI number ",
    "H&C number - ",
    "NHS#",
]
INVISIBLE = ["", "\u200b", "\u200e", "\u200f", "\u2066", "\ufeff"]

# Text that looks like what patients send: digits of many scripts, separators, letters, prefixes.
patient_text = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.sampled_from([*ASCII_DIGITS, *SEPARATORS, *INVISIBLE[1:], "O", "l", "+", "/"]), max_size=40
    ).map("".join),
    st.lists(
        st.sampled_from([*PREFIXES, *ASCII_DIGITS, *SEPARATORS, *ZEROS, "x", "²", "①", "½"]), max_size=30
    ).map("".join),
)


def valid_number(*, test_range: bool) -> st.SearchStrategy[str]:
    """A ten-digit number with a valid check digit, in an issued range or in the test range."""
    if test_range:
        low, high = int(TEST_RANGE[0][:9]), int(TEST_RANGE[1][:9])
        stems = st.integers(low, high)
    else:
        stems = st.sampled_from(ISSUED_RANGES).flatmap(lambda r: st.integers(int(r[0][:9]), int(r[1][:9])))
    return (
        stems.map(lambda stem: with_check_digit(f"{stem:09d}"))
        .filter(lambda number: number is not None)
        .map(str)
        .filter(lambda number: any(first <= number <= last for first, last in (*ISSUED_RANGES, TEST_RANGE)))
    )


@st.composite
def as_typed(draw: st.DrawFn, number: str) -> str:
    """`number` as a phone might send it: digits of any script, any separators, a prefix, stray marks."""
    out = [draw(st.sampled_from(PREFIXES)), draw(st.sampled_from(["", " ", "\n"]))]
    for index, digit in enumerate(number):
        zero = draw(st.sampled_from(["0", *ZEROS]))
        out.append(chr(ord(zero) + ASCII_DIGITS.index(digit)))
        if index in (2, 5) or draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from(["", *SEPARATORS])))
        out.append(draw(st.sampled_from(INVISIBLE)))
    out.append(draw(st.sampled_from(["", " ", ".", "\n"])))
    return "".join(out)


@fuzz_settings(CASES["NHS number: any text"])
@given(text=patient_text, test_mode=st.booleans())
def test_any_text_gets_a_valid_number_or_a_reply_that_never_repeats_it(text: str, test_mode: bool) -> None:
    """Whatever arrives: a number that is ten ASCII digits, passes Modulus 11 and lies in an allowed range, or a
    problem whose reply is a sentence that repeats none of the message's digits."""
    parsed = parse_nhs_number(text, test_mode=test_mode)
    if isinstance(parsed, NhsNumber):
        digits = parsed.digits
        assert len(digits) == 10 and all(ch in ASCII_DIGITS for ch in digits)
        assert with_check_digit(digits[:9]) == digits
        allowed = [*ISSUED_RANGES, TEST_RANGE] if test_mode else list(ISSUED_RANGES)
        assert any(first <= digits <= last for first, last in allowed)
        assert digits not in repr(parsed) and digits not in str(parsed)
        assert looks_like_nhs_number_attempt(text)
    else:
        assert isinstance(parsed, NhsNumberProblem)
        reply = explain(parsed)
        assert len(reply) > 40
        assert not [run for run in re.findall("[0-9]{4,}", normalise_digits(text)) if run in reply]
    assert isinstance(looks_like_nhs_number_attempt(text), bool)


@fuzz_settings(CASES["NHS number: a valid number as typed"] // 2)
@given(data=st.data())
def test_an_issued_number_is_read_however_it_is_typed(data: st.DataObject) -> None:
    """An issued number in any script's digits, with any separators, prefix or invisible marks, is read as
    itself, in test mode or not."""
    number = data.draw(valid_number(test_range=False))
    typed = data.draw(as_typed(number))
    for test_mode in (False, True):
        parsed = parse_nhs_number(typed, test_mode=test_mode)
        assert isinstance(parsed, NhsNumber), (typed, parsed)
        assert parsed.digits == number


@fuzz_settings(CASES["NHS number: a valid number as typed"] // 2)
@given(data=st.data())
def test_a_test_number_is_read_only_in_test_mode(data: st.DataObject) -> None:
    """A test-range number, however it is typed, is read in test mode and refused as a test number otherwise."""
    number = data.draw(valid_number(test_range=True))
    typed = data.draw(as_typed(number))
    parsed = parse_nhs_number(typed, test_mode=True)
    assert isinstance(parsed, NhsNumber) and parsed.digits == number
    assert parse_nhs_number(typed, test_mode=False) is NhsNumberProblem.TEST_NUMBER


@fuzz_settings(CASES["NHS number: one digit mistyped"])
@given(data=st.data())
def test_one_mistyped_digit_is_always_caught(data: st.DataObject) -> None:
    """A valid number with any one digit changed is refused as a check-digit problem, however it is typed."""
    number = data.draw(valid_number(test_range=data.draw(st.booleans())))
    where = data.draw(st.integers(0, 9))
    wrong = data.draw(st.sampled_from([d for d in ASCII_DIGITS if d != number[where]]))
    mistyped = number[:where] + wrong + number[where + 1 :]
    for test_mode in (False, True):
        assert (
            parse_nhs_number(data.draw(as_typed(mistyped)), test_mode=test_mode)
            is NhsNumberProblem.CHECK_DIGIT
        )


@fuzz_settings(CASES["NHS number: two digits swapped"])
@given(data=st.data())
def test_two_swapped_neighbouring_digits_are_always_caught(data: st.DataObject) -> None:
    """A valid number with two different neighbouring digits swapped (the check digit included) is refused."""
    number = data.draw(valid_number(test_range=data.draw(st.booleans())))
    swaps = [i for i in range(9) if number[i] != number[i + 1]]
    assume(swaps)
    where = data.draw(st.sampled_from(swaps))
    swapped = number[:where] + number[where + 1] + number[where] + number[where + 2 :]
    assert parse_nhs_number(swapped, test_mode=True) is NhsNumberProblem.CHECK_DIGIT
