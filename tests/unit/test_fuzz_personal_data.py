"""Fuzzing the personal-data guard: any text gets a set of kinds (and a reply naming them) quickly; a detail
planted in an ordinary message is found; ordinary descriptions of a concern, with or without the NHS number,
pass; long repetitive text built to make patterns backtrack is still checked within the time limit.

All details are synthetic: phone numbers from Ofcom's drama ranges, example.* mail domains, made-up names.
(tests/unit/test_personal_data.py holds the hand-written cases.)
"""

from __future__ import annotations

import string

from hypothesis import event, given
from hypothesis import strategies as st

from bot.nhs_number import with_check_digit
from bot.personal_data import PersonalDataKind, explain, find_personal_data
from tests.unit.test_fuzz_support import CASES, fuzz_settings

PHRASES = {
    PersonalDataKind.NAME: "a name",
    PersonalDataKind.DATE_OF_BIRTH: "a date of birth",
    PersonalDataKind.ADDRESS: "an address",
    PersonalDataKind.POSTCODE: "a postcode",
    PersonalDataKind.PHONE_NUMBER: "a phone number",
    PersonalDataKind.EMAIL: "an email address",
}

# Pieces of the way patients describe a concern: each starts and ends with a word, never a number, so that
# joining them cannot make a date, a phone number or an address out of two harmless halves.
CONCERN = [
    "on my left arm",
    "on the back of my right hand",
    "it itches at night",
    "red and a bit raised",
    "about the size of a coin",
    "near the left shoulder",
    "for about 3 days now",
    "it is 2 cm wide",
    "roughly 5 mm across",
    "since last Tuesday",
    "since 3 March",
    "it started 2 weeks ago",
    "it has spread a little",
    "it does not hurt",
    "it is close to my elbow",
    "a green patch in the middle",
    "I used cream for 2 weeks",
    "pain is about 3 out of 10",
    "took 2 photos with a ruler",
    "my GP asked for a picture",
    "my son is 6 and it is on his leg",
    "thanks for your help",
    "it is worse after a walk",
    "the mole is dark",
]
SEPARATORS = [", ", " and ", ". ", "; ", " - ", "\n"]
NAMES = ["Zofia", "Oluwaseun", "Priya", "Eilidh", "Tomasz", "Aroha", "Siobhan", "Kwame"]
SURNAMES = ["Nowak", "Adeyemi", "Raman", "MacLeod", "Kowalski", "Ngata", "O'Brien", "Mensah"]
MONTHS = ["January", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "October", "Nov", "Dec"]

concern = st.lists(st.sampled_from(CONCERN), min_size=1, max_size=4)


def joined(pieces: list[str], separators: list[str]) -> str:
    text = pieces[0]
    for piece, separator in zip(pieces[1:], separators, strict=False):
        text += separator + piece
    return text


@st.composite
def description(draw: st.DrawFn, planted: str | None = None) -> str:
    """An ordinary message about a concern, with `planted` set between two of its sentences."""
    pieces = draw(concern)
    if planted is not None:
        pieces.insert(draw(st.integers(0, len(pieces))), planted)
    separators = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(pieces), max_size=len(pieces)))
    if planted is not None:  # the detail is its own sentence, as a patient would add it
        at = pieces.index(planted)
        separators[at - 1 : at + 1] = [". "] * len(separators[at - 1 : at + 1])
    text = joined(pieces, separators)
    return text[0].upper() + text[1:] if draw(st.booleans()) else text


digits = st.text(alphabet=string.digits, min_size=1, max_size=1)


@st.composite
def phone_number(draw: st.DrawFn) -> str:
    """A UK mobile or landline from the drama ranges, grouped as people write them."""
    match draw(st.sampled_from(["mobile", "landline", "london", "international"])):
        case "mobile":
            rest = f"900{draw(st.integers(0, 999)):03d}"
            return draw(st.sampled_from(["07700 {r}", "07700{r}", "(07700) {r}", "07700-{r}"])).format(r=rest)
        case "landline":
            rest = f"960{draw(st.integers(0, 999)):03d}"
            return draw(st.sampled_from(["01632 {r}", "(01632) {r}", "01632{r}"])).format(r=rest)
        case "london":
            return f"020 7946 0{draw(st.integers(0, 999)):03d}"
        case _:
            return f"+44 7700 900{draw(st.integers(0, 999)):03d}"


@st.composite
def postcode(draw: st.DrawFn) -> str:
    """A UK postcode of any shape: A9, A99, AA9, AA99, A9A, AA9A, then 9AA."""
    first = draw(st.sampled_from("ABCDEFGHIJKLMNOPRSTUWYZ"))
    second = draw(st.sampled_from("ABCDEFGHKLMNOPQRSTUVWXY"))
    number = str(draw(st.integers(1, 9)))
    outward = draw(
        st.sampled_from(
            [
                first + number,
                first + number + str(draw(st.integers(0, 9))),
                first + second + number,
                first + second + number + str(draw(st.integers(0, 9))),
                first + number + draw(st.sampled_from("ABCDEFGHJKPSTUW")),
                first + second + number + draw(st.sampled_from("ABEHMNPRVWXY")),
            ]
        )
    )
    inward = str(draw(st.integers(0, 9))) + "".join(
        draw(st.lists(st.sampled_from("ABDEFGHJLNPQRSTUWXYZ"), min_size=2, max_size=2))
    )
    text = outward + draw(st.sampled_from([" ", "", "  "])) + inward
    return text.lower() if draw(st.booleans()) else text


@st.composite
def email(draw: st.DrawFn) -> str:
    local = draw(st.from_regex(r"[a-z][a-z0-9._+-]{0,15}[a-z0-9]", fullmatch=True))
    domain = draw(st.sampled_from(["example.com", "example.org", "mail.example.co.uk", "example.net"]))
    return f"{local}@{domain}"


@st.composite
def date_of_birth(draw: st.DrawFn) -> str:
    day, month, year = draw(st.integers(1, 28)), draw(st.integers(1, 12)), draw(st.integers(1920, 2024))
    return draw(
        st.sampled_from(
            [
                f"born {day} {MONTHS[month - 1]} {year}",
                f"I was born on {day}/{month:02d}/{year}",
                f"DOB {day:02d}/{month:02d}/{year}",
                f"date of birth: {year}-{month:02d}-{day:02d}",
                f"my birthday is {day} {MONTHS[month - 1]} {year}",
                f"{day:02d}.{month:02d}.{year}",
            ]
        )
    )


@st.composite
def name(draw: st.DrawFn) -> str:
    first, last = draw(st.sampled_from(NAMES)), draw(st.sampled_from(SURNAMES))
    return draw(
        st.sampled_from(
            [
                f"my name is {first}",
                f"I'm {first} {last}",
                f"Mrs {last}",
                f"name: {first} {last}",
                f"regards {first}",
            ]
        )
    )


@st.composite
def address(draw: st.DrawFn) -> str:
    number = draw(st.integers(1, 250))
    street = draw(st.sampled_from(["High Street", "Mill Lane", "Station Road", "Rose Close", "Elm Avenue"]))
    return draw(st.sampled_from([f"{number} {street}", f"I live at {number} {street}", f"Flat {number}"]))


PLANTED: dict[PersonalDataKind, st.SearchStrategy[str]] = {
    PersonalDataKind.PHONE_NUMBER: phone_number(),
    PersonalDataKind.POSTCODE: postcode(),
    PersonalDataKind.EMAIL: email(),
    PersonalDataKind.DATE_OF_BIRTH: date_of_birth(),
    PersonalDataKind.NAME: name(),
    PersonalDataKind.ADDRESS: address(),
}


@fuzz_settings(CASES["personal data: any text"])
@given(
    text=st.one_of(
        st.text(max_size=600), st.lists(st.sampled_from([*CONCERN, *SEPARATORS, "@", "0", "7"])).map("".join)
    )
)
def test_any_text_gets_a_set_of_kinds_and_a_reply_naming_each(text: str) -> None:
    """Whatever arrives, the guard answers with kinds of personal data; the reply names every kind found."""
    found = find_personal_data(text)
    assert isinstance(found, frozenset) and found <= frozenset(PersonalDataKind)
    for kind in found:
        event(kind.value)
    if found:
        reply = explain(found)
        assert all(PHRASES[kind] in reply for kind in found)


@fuzz_settings(CASES["personal data: planted details"])
@given(data=st.data(), kind=st.sampled_from(list(PLANTED)))
def test_a_detail_planted_in_an_ordinary_message_is_found(
    data: st.DataObject, kind: PersonalDataKind
) -> None:
    """A phone number, postcode, email address, date of birth, name or address added to a description of a
    concern is found as that kind."""
    detail = data.draw(PLANTED[kind])
    text = data.draw(description(planted=detail))
    assert kind in find_personal_data(text), (kind, text)


nhs_numbers = st.integers(100_000_000, 799_999_999).map(lambda stem: with_check_digit(f"{stem:09d}"))
layouts = st.sampled_from(
    ["{a} {b} {c}", "{a}{b}{c}", "{a}-{b}-{c}", "NHS number {a} {b} {c}", "my NHS number is {a}{b}{c}"]
)


@fuzz_settings(CASES["personal data: NHS numbers and concern descriptions"])
@given(
    text=description(), number=nhs_numbers, layout=layouts, where=st.sampled_from(["none", "before", "after"])
)
def test_a_description_of_a_concern_with_or_without_the_nhs_number_passes(
    text: str, number: str | None, layout: str, where: str
) -> None:
    """An ordinary description of a concern, and the NHS number in any usual layout before or after it, is not
    mistaken for personal data."""
    if number is not None and where != "none":
        typed = layout.format(a=number[:3], b=number[3:6], c=number[6:])
        text = f"{typed}. {text}" if where == "before" else f"{text}. {typed}"
    assert find_personal_data(text) == frozenset(), text


hostile_unit = st.text(
    alphabet=st.sampled_from("0123456789 @.-/()+aAM:,'\u0660\u200b"), min_size=1, max_size=12
)


@fuzz_settings(CASES["personal data: long adversarial text"])
@given(unit=hostile_unit, repeat=st.integers(500, 4000), tail=st.text(max_size=40))
def test_long_repetitive_text_is_checked_within_the_time_limit(unit: str, repeat: int, tail: str) -> None:
    """Up to 48,000 characters of a repeated fragment of digits, separators and '@' (the shapes that make
    patterns backtrack) are checked within the 2-second limit per case."""
    found = find_personal_data(unit * repeat + tail)
    assert found <= frozenset(PersonalDataKind)
