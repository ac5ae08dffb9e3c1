"""NHS numbers: what a patient may type, what is refused and why, and that the digits never show in a repr.

Every number here is synthetic: made by `synthetic_nhs_number` below from an arbitrary stem, or one of the
examples published for the format (943 476 5919, 987 654 4321), which lie outside the issued ranges.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
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

# No example database: the tests leave no .hypothesis directory behind in the repository.
PROPERTY = settings(database=None, max_examples=300)


# --- synthetic numbers: computed here independently of the module under test ---------------------------


def check_digit_by_hand(nine_digits: str) -> int | None:
    """Modulus 11, written out the way the NHS Data Dictionary describes it."""
    total = 0
    for position, digit in enumerate(nine_digits, start=1):
        total += "0123456789".index(digit) * (11 - position)
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def synthetic_nhs_number(stem: int) -> str:
    """The valid ten-digit number whose first nine digits are `stem` (zero-padded); the stem must allow one."""
    nine = f"{stem:09d}"
    check = check_digit_by_hand(nine)
    if check is None:
        raise ValueError("no valid NHS number starts with these nine digits")
    return nine + "0123456789"[check]


def first_valid_at_or_after(ten_digits: str) -> str:
    stem = int(ten_digits[:9])
    while True:
        if check_digit_by_hand(f"{stem:09d}") is not None and synthetic_nhs_number(stem) >= ten_digits:
            return synthetic_nhs_number(stem)
        stem += 1


def last_valid_at_or_before(ten_digits: str) -> str:
    stem = int(ten_digits[:9])
    while True:
        if check_digit_by_hand(f"{stem:09d}") is not None and synthetic_nhs_number(stem) <= ten_digits:
            return synthetic_nhs_number(stem)
        stem -= 1


def synthetic_numbers_between(first: str, last: str) -> st.SearchStrategy[str]:
    """Valid synthetic numbers from `first` to `last` inclusive (ten-digit strings)."""
    return (
        st.integers(int(first[:9]), int(last[:9]))
        .filter(lambda stem: check_digit_by_hand(f"{stem:09d}") is not None)
        .map(synthetic_nhs_number)
        .filter(lambda number: first <= number <= last)
    )


ISSUED_NUMBERS = st.one_of([synthetic_numbers_between(first, last) for first, last in ISSUED_RANGES])
TEST_NUMBERS = synthetic_numbers_between(*TEST_RANGE)

# One synthetic number from each issued block, and one from the test block.
SCOTLAND = synthetic_nhs_number(150_384_123)
ENGLAND_3XX = synthetic_nhs_number(315_000_017)
NORTHERN_IRELAND = synthetic_nhs_number(345_678_901)
ENGLAND_4XX = synthetic_nhs_number(401_023_456)
ENGLAND_6XX = synthetic_nhs_number(612_345_670)
TEST_RANGE_NUMBER = synthetic_nhs_number(999_000_001)

SCRIPTS = {
    "Arabic-Indic": 0x0660,
    "Extended Arabic-Indic": 0x06F0,
    "Devanagari": 0x0966,
    "Bengali": 0x09E6,
    "full-width": 0xFF10,
    "mathematical bold": 0x1D7CE,
}


def in_script(ascii_text: str, zero: int) -> str:
    return "".join(chr(zero + int(ch)) if ch.isascii() and ch.isdigit() else ch for ch in ascii_text)


def spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}"


# --- the helper agrees with the module, and with the published example ----------------------------------


def test_the_published_check_digit_example_has_check_digit_9() -> None:
    """943 476 5919, the worked example of the Modulus 11 method, gets check digit 9."""
    assert with_check_digit("943476591") == "9434765919"
    assert check_digit_by_hand("943476591") == 9


@given(st.integers(0, 999_999_999))
@PROPERTY
def test_with_check_digit_agrees_with_the_hand_written_algorithm(stem: int) -> None:
    """For any nine digits, with_check_digit completes them exactly as the Data Dictionary's method does."""
    nine = f"{stem:09d}"
    check = check_digit_by_hand(nine)
    assert with_check_digit(nine) == (None if check is None else nine + str(check))


def test_with_check_digit_says_none_when_no_number_can_start_with_those_digits() -> None:
    """Nine digits whose check digit would be 10 can never make a valid NHS number."""
    stem = next(s for s in range(999_000_000, 999_000_100) if check_digit_by_hand(f"{s:09d}") is None)
    assert with_check_digit(f"{stem:09d}") is None


@pytest.mark.parametrize("bad", ["", "12345678", "1234567890", "12345678a", "١٢٣٤٥٦٧٨٩"])
def test_with_check_digit_refuses_anything_but_nine_ascii_digits(bad: str) -> None:
    """with_check_digit takes exactly nine ASCII digits; anything else is a programming error."""
    with pytest.raises(ValueError, match="9 ASCII digits"):
        with_check_digit(bad)


# --- accepted forms ------------------------------------------------------------------------------------

N = ENGLAND_4XX


@pytest.mark.parametrize(
    "typed",
    [
        N,
        spaced(N),
        f"{N[:3]}-{N[3:6]}-{N[6:]}",
        f"{N[:3]}\u2013{N[3:6]}\u2013{N[6:]}",  # en dash
        f"{N[:3]}\u2014{N[3:6]}\u2014{N[6:]}",  # em dash
        f"{N[:3]}\u2212{N[3:6]}\u2212{N[6:]}",  # minus sign
        f"{N[:3]}\uff0d{N[3:6]}\uff0d{N[6:]}",  # full-width hyphen
        f"{N[:3]}.{N[3:6]}.{N[6:]}",
        f"{N[:3]}\u00a0{N[3:6]}\u00a0{N[6:]}",  # no-break space
        f"{N[:3]}\u202f{N[3:6]}\u202f{N[6:]}",  # narrow no-break space
        f"{N[:3]}\u200b{N[3:6]}\u200b{N[6:]}",  # zero-width space
        f"\u200f{spaced(N)}\u200e",  # direction marks from copied right-to-left text
        " ".join(N),
        f"  \n{spaced(N)}\t \n",
        f"{spaced(N)}.",
        f"NHS number: {spaced(N)}",
        f"nhs number {N}",
        f"NHS no. {spaced(N)}",
        f"NHS No:{N}",
        f"My NHS number is {spaced(N)}",
        f"my nhs number is: {N}",
        f"NHS# {N}",
        f"NHS{N}",
        f"CHI number: {N}",
        f"H&C number {N}",
    ],
)
def test_a_valid_number_is_accepted_however_it_is_typed(typed: str) -> None:
    """Spaces, dashes of any kind, dots, invisible characters and an "NHS number:" prefix are all fine."""
    parsed = parse_nhs_number(typed, test_mode=False)
    assert isinstance(parsed, NhsNumber)
    assert parsed.digits == N


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_digits_of_other_scripts_are_read_as_the_same_number(script: str) -> None:
    """A number typed on an Arabic, Persian, Hindi, Bengali or full-width keyboard is the same number."""
    typed = in_script(spaced(N), SCRIPTS[script])
    assert typed != spaced(N)
    assert not typed.isascii()
    parsed = parse_nhs_number(typed, test_mode=False)
    assert isinstance(parsed, NhsNumber)
    assert parsed.digits == N
    assert parsed.digits.isascii()


def test_arabic_indic_digits_with_direction_marks_and_an_arabic_prefix_spacing_are_read() -> None:
    """Arabic-Indic digits wrapped in right-to-left marks, as copied from an Arabic message, are read."""
    typed = "\u200f" + in_script(f"{N[:3]}\u00a0{N[3:6]}\u00a0{N[6:]}", SCRIPTS["Arabic-Indic"]) + "\u200f"
    parsed = parse_nhs_number(typed, test_mode=False)
    assert isinstance(parsed, NhsNumber)
    assert parsed.digits == N


def test_digits_mixed_from_two_scripts_are_each_normalised() -> None:
    """A number typed partly in Arabic-Indic and partly in ASCII digits still reads as the same number."""
    typed = in_script(N[:5], SCRIPTS["Arabic-Indic"]) + N[5:]
    parsed = parse_nhs_number(typed, test_mode=False)
    assert isinstance(parsed, NhsNumber)
    assert parsed.digits == N


@pytest.mark.parametrize(
    "look_alike",
    [
        "\u2074\u2070\u00b9",  # superscripts ⁴⁰¹: isdigit() says yes, they are not decimal digits
        "\u2463\u24ea\u2460",  # circled ④⓪①
        "\u00bd",  # ½
    ],
)
def test_characters_that_only_look_like_digits_are_refused(look_alike: str) -> None:
    """Superscripts, circled digits and fractions are not digits: the message is not a number."""
    typed = look_alike + N[3:]
    assert parse_nhs_number(typed, test_mode=True) is NhsNumberProblem.NOT_A_NUMBER


def test_normalise_digits_maps_every_script_to_ascii_and_leaves_other_text_alone() -> None:
    """normalise_digits turns each script's 0-9 into ASCII 0-9 and changes nothing else."""
    for zero in SCRIPTS.values():
        assert normalise_digits(in_script("NHS 0123456789 ok", zero)) == "NHS 0123456789 ok"
    assert normalise_digits("\u00b2 \u2460 abc") == "\u00b2 \u2460 abc"


@pytest.mark.parametrize(
    "number", [SCOTLAND, ENGLAND_3XX, NORTHERN_IRELAND, ENGLAND_4XX, ENGLAND_6XX], ids=lambda n: n[:3]
)
def test_numbers_from_every_issued_block_are_accepted_in_either_mode(number: str) -> None:
    """Scottish, Northern Irish, English and Welsh numbers are accepted with test mode off and on."""
    for test_mode in (False, True):
        parsed = parse_nhs_number(spaced(number), test_mode=test_mode)
        assert isinstance(parsed, NhsNumber)
        assert parsed.digits == number


# --- problems ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("", NhsNumberProblem.EMPTY),
        ("   \n\t", NhsNumberProblem.EMPTY),
        ("- - -", NhsNumberProblem.EMPTY),
        ("\u200b", NhsNumberProblem.EMPTY),
        ("NHS number:", NhsNumberProblem.EMPTY),
        ("123", NhsNumberProblem.WRONG_LENGTH),
        (N[:9], NhsNumberProblem.WRONG_LENGTH),
        (spaced(N)[:-1], NhsNumberProblem.WRONG_LENGTH),
        (N + "0", NhsNumberProblem.WRONG_LENGTH),
        (spaced(N) + " 1", NhsNumberProblem.WRONG_LENGTH),
        ("07700 900123", NhsNumberProblem.WRONG_LENGTH),  # a phone number (Ofcom drama range)
        ("hello", NhsNumberProblem.NOT_A_NUMBER),
        ("help", NhsNumberProblem.NOT_A_NUMBER),
        (N[:9] + "O", NhsNumberProblem.NOT_A_NUMBER),  # letter O for a zero
        (N[:9] + "l", NhsNumberProblem.NOT_A_NUMBER),
        (f"{spaced(N)} thanks", NhsNumberProblem.NOT_A_NUMBER),
        (f"it is {spaced(N)}", NhsNumberProblem.NOT_A_NUMBER),
        (f"+{N}", NhsNumberProblem.NOT_A_NUMBER),
        (f"({N[:3]}) {N[3:]}", NhsNumberProblem.NOT_A_NUMBER),
        (f"{N[:3]}/{N[3:6]}/{N[6:]}", NhsNumberProblem.NOT_A_NUMBER),
        ("943 476 5918", NhsNumberProblem.CHECK_DIGIT),
        (N[:9] + str((int(N[9]) + 1) % 10), NhsNumberProblem.CHECK_DIGIT),
        (N[1] + N[0] + N[2:], NhsNumberProblem.CHECK_DIGIT),  # first two digits swapped
        ("000 000 0000", NhsNumberProblem.NOT_ISSUED),
        ("943 476 5919", NhsNumberProblem.NOT_ISSUED),  # the published example: a 9xx number
        ("987 654 4321", NhsNumberProblem.CHECK_DIGIT),  # a layout example: its check digit would be 2
        (synthetic_nhs_number(500_000_000), NhsNumberProblem.NOT_ISSUED),
        (synthetic_nhs_number(555_555_555), NhsNumberProblem.NOT_ISSUED),
        (synthetic_nhs_number(800_000_000), NhsNumberProblem.NOT_ISSUED),
        (synthetic_nhs_number(998_999_999), NhsNumberProblem.NOT_ISSUED),
        (synthetic_nhs_number(5_000_000), NhsNumberProblem.NOT_ISSUED),
        (TEST_RANGE_NUMBER, NhsNumberProblem.TEST_NUMBER),
        (f"NHS number: {spaced(TEST_RANGE_NUMBER)}", NhsNumberProblem.TEST_NUMBER),
    ],
)
def test_each_problem_is_named(typed: str, problem: NhsNumberProblem) -> None:
    """A message that is not an acceptable NHS number gets the specific reason, with test mode off."""
    assert parse_nhs_number(typed, test_mode=False) is problem


def test_all_zeros_is_refused_even_though_its_check_digit_is_valid() -> None:
    """000 000 0000 passes Modulus 11 (check digit 0) but is not an issued number, in either mode."""
    assert with_check_digit("000000000") == "0000000000"
    assert parse_nhs_number("000 000 0000", test_mode=False) is NhsNumberProblem.NOT_ISSUED
    assert parse_nhs_number("000 000 0000", test_mode=True) is NhsNumberProblem.NOT_ISSUED


def test_a_typo_is_reported_as_a_typo_before_the_range_is_considered() -> None:
    """A number from an unissued block with a wrong check digit is reported as a check-digit problem."""
    unissued = synthetic_nhs_number(555_555_555)
    typo = unissued[:9] + str((int(unissued[9]) + 1) % 10)
    assert parse_nhs_number(typo, test_mode=False) is NhsNumberProblem.CHECK_DIGIT


def test_the_test_range_is_accepted_only_in_test_mode() -> None:
    """999 000 0000 to 999 999 9999 are test numbers: refused as such normally, accepted in test mode."""
    first = first_valid_at_or_after(TEST_RANGE[0])
    last = last_valid_at_or_before(TEST_RANGE[1])
    for number in (first, TEST_RANGE_NUMBER, last):
        assert parse_nhs_number(number, test_mode=False) is NhsNumberProblem.TEST_NUMBER
        parsed = parse_nhs_number(number, test_mode=True)
        assert isinstance(parsed, NhsNumber)
        assert parsed.digits == number


def test_a_9xx_number_outside_the_test_range_is_refused_even_in_test_mode() -> None:
    """Test mode opens the 999 block only: 998 999 9999 and below are still not issued."""
    just_below = last_valid_at_or_before("9989999999")
    assert parse_nhs_number(just_below, test_mode=True) is NhsNumberProblem.NOT_ISSUED


@pytest.mark.parametrize(("first", "last"), ISSUED_RANGES, ids=lambda edge: edge[:3])
def test_the_ends_of_each_issued_block_are_accepted(first: str, last: str) -> None:
    """The first and the last valid number of each issued block are accepted."""
    for number in (first_valid_at_or_after(first), last_valid_at_or_before(last)):
        assert isinstance(parse_nhs_number(number, test_mode=False), NhsNumber)


@pytest.mark.parametrize(
    "edge",
    ["0101000000", "5000000000", "6000000000", "8000000000", "9990000000"],
)
def test_the_number_just_outside_an_issued_block_is_refused(edge: str) -> None:
    """The valid number just below 010 100 0000, 600 000 0000 and 999 000 0000, or just above 499 999 9999
    and 799 999 9999, is not issued."""
    if edge in ("5000000000", "8000000000"):
        outside = first_valid_at_or_after(edge)
    else:
        outside = last_valid_at_or_before(str(int(edge) - 1).zfill(10))
    assert parse_nhs_number(outside, test_mode=True) is NhsNumberProblem.NOT_ISSUED


def test_chi_numbers_starting_with_zero_keep_their_leading_zero() -> None:
    """A Scottish CHI number for someone born on the 1st keeps its leading 0 when read back."""
    chi = first_valid_at_or_after("0101000000")
    parsed = parse_nhs_number(spaced(chi), test_mode=False)
    assert isinstance(parsed, NhsNumber)
    assert parsed.formatted() == spaced(chi)
    assert parsed.formatted().startswith("010 ")


# --- explanations --------------------------------------------------------------------------------------


def test_every_problem_has_its_own_plain_english_explanation() -> None:
    """Each problem gets a different reply, written as sentences a patient can act on."""
    texts = {problem: explain(problem) for problem in NhsNumberProblem}
    assert len(set(texts.values())) == len(NhsNumberProblem)
    for text in texts.values():
        assert text[0].isupper()
        assert text.endswith(".")
        assert "please" in text.lower()
        assert len(text) < 320


@pytest.mark.parametrize(
    ("problem", "says"),
    [
        (NhsNumberProblem.EMPTY, "couldn't see a number"),
        (NhsNumberProblem.WRONG_LENGTH, "10 digits"),
        (NhsNumberProblem.NOT_A_NUMBER, "only of digits"),
        (NhsNumberProblem.CHECK_DIGIT, "mistyped"),
        (NhsNumberProblem.NOT_ISSUED, "isn't a number the NHS gives"),
        (NhsNumberProblem.TEST_NUMBER, "test number"),
    ],
)
def test_each_explanation_says_what_went_wrong(problem: NhsNumberProblem, says: str) -> None:
    """The reply names the actual problem, so the patient knows what to fix."""
    assert says in explain(problem)


def test_explanations_tell_the_patient_where_to_find_their_number() -> None:
    """When the number itself is wrong or missing, the reply says where a patient can find it."""
    for problem in (NhsNumberProblem.EMPTY, NhsNumberProblem.CHECK_DIGIT, NhsNumberProblem.TEST_NUMBER):
        assert "NHS App" in explain(problem)


# --- privacy -------------------------------------------------------------------------------------------


def test_an_nhs_number_never_shows_its_digits_in_repr_str_or_formatting() -> None:
    """repr, str, f-strings, %-formatting and containers all show NhsNumber(***), never the digits."""
    number = NhsNumber(N)
    renderings = [
        repr(number),
        str(number),
        f"{number}",
        f"{number!r}",
        "%s" % (number,),  # noqa: UP031 - the old logging style is exactly what must be safe
        repr([number]),
        repr({"patient": number}),
        repr((number,)),
    ]
    for rendered in renderings:
        assert "NhsNumber(***)" in rendered
        assert N not in rendered
        assert N[:3] not in rendered
        assert N[-4:] not in rendered


def test_the_digits_are_available_where_they_are_meant_to_go() -> None:
    """The checked number gives its digits for the store and 3-3-4 groups for the read-back."""
    number = NhsNumber(N)
    assert number.digits == N
    assert number.formatted() == spaced(N)
    assert NhsNumber("9434765919").formatted() == "943 476 5919"


def test_equal_numbers_are_equal_and_hash_alike() -> None:
    """Two NhsNumber objects with the same digits are the same number, so they can key a dict."""
    assert NhsNumber(N) == NhsNumber(N)
    assert len({NhsNumber(N), NhsNumber(N), NhsNumber(SCOTLAND)}) == 2


@pytest.mark.parametrize(
    "bad",
    [
        "",
        N[:9],
        N + "0",
        spaced(N),
        in_script(N, SCRIPTS["Arabic-Indic"]),
        N[:9] + str((int(N[9]) + 1) % 10),
    ],
)
def test_an_nhs_number_cannot_be_built_from_unchecked_text_and_the_error_hides_it(bad: str) -> None:
    """NhsNumber refuses anything but ten ASCII digits with a valid check digit, without echoing the value."""
    with pytest.raises(ValueError, match="10 ASCII digits") as caught:
        NhsNumber(bad)
    if bad:
        assert bad not in str(caught.value)


# --- is the patient trying to type a number? -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "attempt"),
    [
        (spaced(N), True),
        (N, True),
        ("943-476-5919", True),
        ("NHS number: 943 476 5919", True),
        (in_script(spaced(N), SCRIPTS["Arabic-Indic"]), True),
        ("943 476 591O", True),
        ("12345", True),
        ("123", True),
        ("07700 900123", True),
        ("", False),
        ("1", False),
        ("2", False),
        ("12", False),
        ("yes", False),
        ("help", False),
        ("cancel", False),
        ("I don't know it", False),
        ("where do I find my NHS number?", False),
        ("it started 2 weeks ago", False),
        ("since 3 March 2024", False),
        ("943 476 5919 is my number, thanks", False),
    ],
)
def test_an_attempt_at_a_number_is_told_apart_from_other_messages(text: str, attempt: bool) -> None:
    """Mostly digits (with separators and a prefix ignored) is an attempt; words with a few digits are not."""
    assert looks_like_nhs_number_attempt(text) is attempt


# --- properties ----------------------------------------------------------------------------------------


@given(number=ISSUED_NUMBERS, test_mode=st.booleans())
@PROPERTY
def test_every_valid_issued_number_round_trips_in_every_form(number: str, test_mode: bool) -> None:
    """Any valid issued number, typed plain, 3-3-4, dashed, or in Arabic-Indic digits, reads back as itself."""
    forms = [
        number,
        spaced(number),
        f"{number[:3]}-{number[3:6]}-{number[6:]}",
        in_script(spaced(number), SCRIPTS["Arabic-Indic"]),
    ]
    for typed in forms:
        parsed = parse_nhs_number(typed, test_mode=test_mode)
        assert isinstance(parsed, NhsNumber)
        assert parsed.digits == number
        assert parse_nhs_number(parsed.formatted(), test_mode=test_mode) == parsed
        assert looks_like_nhs_number_attempt(typed)


@given(TEST_NUMBERS)
@PROPERTY
def test_every_test_range_number_is_gated_by_test_mode(number: str) -> None:
    """Every valid 999 number is accepted in test mode and refused as a test number otherwise."""
    assert parse_nhs_number(number, test_mode=False) is NhsNumberProblem.TEST_NUMBER
    parsed = parse_nhs_number(spaced(number), test_mode=True)
    assert isinstance(parsed, NhsNumber)
    assert parsed.digits == number


@given(
    st.text(alphabet="0123456789", min_size=10, max_size=10).filter(
        lambda ten: check_digit_by_hand(ten[:9]) is None or str(check_digit_by_hand(ten[:9])) != ten[9]
    ),
    st.booleans(),
)
@PROPERTY
def test_every_ten_digit_string_with_a_wrong_check_digit_is_refused(ten: str, test_mode: bool) -> None:
    """Ten digits that fail Modulus 11 are refused as a check-digit problem, whatever the range or mode."""
    assert parse_nhs_number(ten, test_mode=test_mode) is NhsNumberProblem.CHECK_DIGIT
    assert parse_nhs_number(spaced(ten), test_mode=test_mode) is NhsNumberProblem.CHECK_DIGIT


@given(st.text(), st.booleans())
@PROPERTY
def test_random_text_never_raises(text: str, test_mode: bool) -> None:
    """Whatever a patient sends, parsing gives a number or a problem, never an exception."""
    parsed = parse_nhs_number(text, test_mode=test_mode)
    if isinstance(parsed, NhsNumberProblem):
        assert explain(parsed)
    else:
        assert parsed.digits.isascii()
    assert looks_like_nhs_number_attempt(text) in (True, False)


@given(st.text(alphabet=st.characters(categories=["Nd", "Zs", "Pd", "Cf"]), max_size=20), st.booleans())
@PROPERTY
def test_digit_and_separator_soup_never_raises_and_any_number_found_is_ascii(
    text: str, test_mode: bool
) -> None:
    """Any mix of digits of any script, spaces, dashes and invisible characters yields ASCII digits or a problem."""
    parsed = parse_nhs_number(text, test_mode=test_mode)
    if isinstance(parsed, NhsNumber):
        assert parsed.digits.isascii()
        assert len(parsed.digits) == 10
