"""The personal-data guard: what gets a message removed, and what a patient may say without being stopped.

All details are synthetic: phone numbers from Ofcom's ranges reserved for drama (07700 900xxx, 01632 960xxx,
020 7946 0xxx, 0161 496 0xxx), email addresses at example.com/.org, public landmark postcodes, made-up names.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.nhs_number import with_check_digit
from bot.personal_data import PersonalDataKind, explain, find_personal_data

PROPERTY = settings(database=None, max_examples=300)

NAME = PersonalDataKind.NAME
DATE_OF_BIRTH = PersonalDataKind.DATE_OF_BIRTH
ADDRESS = PersonalDataKind.ADDRESS
POSTCODE = PersonalDataKind.POSTCODE
PHONE_NUMBER = PersonalDataKind.PHONE_NUMBER
EMAIL = PersonalDataKind.EMAIL

ARABIC_INDIC_ZERO = 0x0660
FULL_WIDTH_ZERO = 0xFF10
DEVANAGARI_ZERO = 0x0966


def in_script(ascii_text: str, zero: int) -> str:
    return "".join(chr(zero + int(ch)) if ch.isascii() and ch.isdigit() else ch for ch in ascii_text)


# --- what must pass ------------------------------------------------------------------------------------

NHS_NUMBER_ONLY = [
    "943 476 5919",
    "9434765919",
    "943-476-5919",
    "943.476.5919",
    "943 476 5919.",
    "NHS number: 943 476 5919",
    "my NHS number is 943 476 5919",
    "012 345 6789",  # a CHI-shaped number starting with 0 is not a landline
    "0123456789",
    in_script("943 476 5919", ARABIC_INDIC_ZERO),
    in_script("943 476 5919", FULL_WIDTH_ZERO),
]

MENU_ANSWERS = ["yes", "Yes", "YES", "no", "No", "help", "HELP", "cancel", "Cancel", "done", "Done", "keep"]
MENU_ANSWERS += ["1", "2", "3", "y", "n", "ok", "OK", "okay", "Ok thanks", "stop", "", "   "]

CONCERN_DESCRIPTIONS = [
    "on my left arm, about 3 days",
    "since last Tuesday",
    "it's 2 cm wide",
    "It\u2019s 2cm wide and a bit raised",
    "started 2 weeks ago",
    "since 3 March",
    "Since the 3rd of March",
    "it itches at night",
    "It's on my back, near the left shoulder",
    "about the size of a 10p coin",
    "red, about 5 mm across, for 3 days",
    "the rash is flat 2 cm wide",
    "It's flat, 2 cm, and doesn't hurt",
    "rash on both legs for 2-3 weeks",
    "spots on my chest since Monday",
    "it has been there 1 year",
    "I'm 45 and it appeared last month",
    "my son is 6 and has a rash on his arm",
    "my baby was born 2 weeks ago and has a rash",
    "I was born with this mark but it has changed",
    "I used E45 cream for 2 weeks",
    "taking vitamin D3 and B12",
    "it started on 01/09/2025 after gardening",
    "I noticed it on 3 March 2025",
    "first noticed it 12.05.2024",
    "pain is 3/10",
    "BP was 120/80 yesterday",
    "it's about 3 days walking down the road from where I got bitten",
    "2 weeks down the road it looks worse",
    "5 minutes walk along the lane and it itches",
    "took 2 photos, 1 close up",
    "the mole is 6mm, dark, on my right calf",
    "Dr asked me to send a photo",
    "my GP asked for a picture",
    "Thanks, I'll send it now",
    "Thank you Doctor",
    "thanks for your help",
    "Thanks so much",
    "I'm not sure",
    "I'm Not Sure",
    "I am worried about it",
    "This is my left arm",
    "my name is on the letter",
    "Do you need my address?",
    "Do you need my date of birth?",
    "What is the date of birth for?",
    "I'll send it again",
    "Is it OK to send 2?",
    "it's on my thigh, 10 cm above the knee",
    "It comes and goes, worse at 10pm",
    "It was there 3/4 of the time",
    "I miss you, it is so itchy",  # "miss" as a verb is not a title
]


@pytest.mark.parametrize("text", NHS_NUMBER_ONLY)
def test_a_message_that_is_only_an_nhs_number_passes(text: str) -> None:
    """An NHS number, however written, is what the bot asked for: it is not mistaken for a phone number."""
    assert find_personal_data(text) == frozenset()


@pytest.mark.parametrize("text", MENU_ANSWERS)
def test_menu_answers_pass(text: str) -> None:
    """yes, no, help, cancel, done, keep and menu numbers are never flagged."""
    assert find_personal_data(text) == frozenset()


@pytest.mark.parametrize("text", CONCERN_DESCRIPTIONS)
def test_ordinary_descriptions_of_a_concern_pass(text: str) -> None:
    """Where it is, how big, how long and what it does: none of it is personal data."""
    assert find_personal_data(text) == frozenset()


# --- what must be caught -------------------------------------------------------------------------------

TRUE_POSITIVES: list[tuple[str, PersonalDataKind]] = [
    # email
    ("sarah@example.com", EMAIL),
    ("my email is sarah.jones+nhs@mail.example.co.uk", EMAIL),
    ("Email: j_smith99@example.org.", EMAIL),
    ("<Sarah@Example.COM>", EMAIL),
    ("contact me at test.user@example.org thanks", EMAIL),
    # phone numbers
    ("07700 900123", PHONE_NUMBER),
    ("07700900123", PHONE_NUMBER),
    ("07700-900-123", PHONE_NUMBER),
    ("077 0090 0123", PHONE_NUMBER),
    ("+44 7700 900123", PHONE_NUMBER),
    ("+447700900123", PHONE_NUMBER),
    ("+44 (0)7700 900123", PHONE_NUMBER),
    ("0044 7700 900123", PHONE_NUMBER),
    ("0161 496 0000", PHONE_NUMBER),
    ("020 7946 0000", PHONE_NUMBER),
    ("(020) 7946 0000", PHONE_NUMBER),
    ("(01632) 960123", PHONE_NUMBER),
    ("01632 960123", PHONE_NUMBER),
    ("0300 123 1234", PHONE_NUMBER),
    ("01632 96012", PHONE_NUMBER),  # ten digits, but grouped as a phone number
    ("call me on 07700 900456 after 5", PHONE_NUMBER),
    ("+1 202 555 0143", PHONE_NUMBER),
    ("07700\u2013900123", PHONE_NUMBER),  # en dash
    ("0770\u200b0 900123", PHONE_NUMBER),  # zero-width space
    # postcodes
    ("SW1A 1AA", POSTCODE),
    ("M1 1AE", POSTCODE),
    ("b33 8th", POSTCODE),
    ("B338TH", POSTCODE),
    ("sw1a1aa", POSTCODE),
    ("CR2 6XH", POSTCODE),
    ("DN55 1PT", POSTCODE),
    ("W1A 0AX", POSTCODE),
    ("EC1A 1BB", POSTCODE),
    ("GIR 0AA", POSTCODE),
    ("I'm in LS1 4AP", POSTCODE),
    ("postcode: NE1 7RU.", POSTCODE),
    # dates of birth
    ("03/03/1952", DATE_OF_BIRTH),
    ("3/3/1952", DATE_OF_BIRTH),
    ("03-03-52", DATE_OF_BIRTH),
    ("3.3.52", DATE_OF_BIRTH),
    ("1952-03-03", DATE_OF_BIRTH),
    ("3rd March 1952", DATE_OF_BIRTH),
    ("3 March 1952", DATE_OF_BIRTH),
    ("3rd of March 1952", DATE_OF_BIRTH),
    ("March 3rd, 1952", DATE_OF_BIRTH),
    ("3 Mar 52", DATE_OF_BIRTH),
    ("3 Mar '52", DATE_OF_BIRTH),
    ("born 1952", DATE_OF_BIRTH),
    ("I was born in 1952", DATE_OF_BIRTH),
    ("born on 3/3", DATE_OF_BIRTH),
    ("born in May", DATE_OF_BIRTH),
    ("born 3rd March", DATE_OF_BIRTH),
    ("DOB 3/3", DATE_OF_BIRTH),
    ("dob: 3 march", DATE_OF_BIRTH),
    ("D.O.B. 03.03", DATE_OF_BIRTH),
    ("date of birth: 3rd of March", DATE_OF_BIRTH),
    ("my date of birth is 3", DATE_OF_BIRTH),
    ("birth date 1952", DATE_OF_BIRTH),
    # addresses
    ("12 High Street", ADDRESS),
    ("12 high street", ADDRESS),
    ("12a High St", ADDRESS),
    ("4a The Crescent", ADDRESS),
    ("7 Mill Lane", ADDRESS),
    ("221 Baker Street", ADDRESS),
    ("10, Church Road", ADDRESS),
    ("3 Acacia Avenue", ADDRESS),
    ("9 Rose Close", ADDRESS),
    ("15 Meadow Way", ADDRESS),
    ("2 Kings Court", ADDRESS),
    ("8 Victoria Gardens", ADDRESS),
    ("31 Spring Gardens", ADDRESS),
    ("5 Oak Tree Drive", ADDRESS),
    ("1 Station Place", ADDRESS),
    ("6 Albert Terrace", ADDRESS),
    ("Flat 3", ADDRESS),
    ("flat 3b", ADDRESS),
    ("Apartment 12", ADDRESS),
    ("I live at 12 Rose Close", ADDRESS),
    ("I live at Rose Cottage", ADDRESS),
    ("my address is 12 rose close", ADDRESS),
    ("Address: the old mill", ADDRESS),
    # names
    ("My name is Sarah Jones", NAME),
    ("my name is sarah", NAME),
    ("my name's Sarah", NAME),
    ("My son's name is Jack", NAME),
    ("name: sarah jones", NAME),
    ("Name - Sarah Jones", NAME),
    ("Surname: Jones", NAME),
    ("I'm Sarah Jones", NAME),
    ("I\u2019m Sarah Jones", NAME),
    ("I am Sarah O'Brien", NAME),
    ("Hi, this is Sarah McDonald", NAME),
    ("Mrs Smith here", NAME),
    ("mrs smith", NAME),
    ("Mr. Jones", NAME),
    ("Ms Patel", NAME),
    ("Miss Jones", NAME),
    ("Mx Taylor", NAME),
    ("Dr Patel asked me to send this", NAME),
    ("Kind regards, Sarah", NAME),
    ("Regards\nSarah", NAME),
    ("Thanks Sarah", NAME),
    ("Many thanks, Tom", NAME),
    ("Signed Sarah Jones", NAME),
    ("Best wishes, Zoë", NAME),
]


@pytest.mark.parametrize(("text", "kind"), TRUE_POSITIVES)
def test_each_kind_of_personal_data_is_found_and_nothing_else(text: str, kind: PersonalDataKind) -> None:
    """A message carrying one kind of personal detail is flagged for exactly that kind."""
    assert find_personal_data(text) == frozenset({kind})


def test_a_message_with_several_details_reports_every_kind() -> None:
    """Name, date of birth, address, postcode, phone and email in one message are all reported."""
    text = (
        "Hi, my name is Sarah Jones, DOB 03/03/1952, 12 High Street, SW1A 1AA, "
        "07700 900123, sarah@example.com"
    )
    assert find_personal_data(text) == frozenset(PersonalDataKind)


def test_an_nhs_number_sent_with_a_phone_number_is_flagged_for_the_phone_number_only() -> None:
    """The NHS number beside a phone number is not itself flagged; the phone number is."""
    assert find_personal_data("943 476 5919, mobile 07700 900123") == frozenset({PHONE_NUMBER})


def test_an_nhs_number_sent_with_a_name_is_flagged_for_the_name() -> None:
    """Saying "my name is ..." beside an NHS number still gets the message removed."""
    assert find_personal_data("My name is Sarah Jones, 943 476 5919") == frozenset({NAME})


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("07700 900123", PHONE_NUMBER),
        ("+44 7700 900123", PHONE_NUMBER),
        ("03/03/1952", DATE_OF_BIRTH),
        ("3 March 1952", DATE_OF_BIRTH),
        ("born 1952", DATE_OF_BIRTH),
        ("12 High Street", ADDRESS),
        ("M1 1AE", POSTCODE),
    ],
)
@pytest.mark.parametrize("zero", [ARABIC_INDIC_ZERO, FULL_WIDTH_ZERO, DEVANAGARI_ZERO], ids=str)
def test_digits_of_other_scripts_do_not_bypass_the_guard(
    text: str, kind: PersonalDataKind, zero: int
) -> None:
    """A phone number, date, address or postcode typed with Arabic-Indic, full-width or Devanagari digits
    is found all the same."""
    typed = in_script(text, zero)
    assert not typed.isascii()
    assert find_personal_data(typed) == frozenset({kind})


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (
            "\uff53\uff41\uff52\uff41\uff48\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
            EMAIL,
        ),
        ("\uff2d\uff11 \uff11\uff21\uff25", POSTCODE),  # full-width M1 1AE
        ("My\u00a0name\u00a0is\u00a0Sarah", NAME),
        ("my na\u200bme is Sarah", NAME),
        ("\u0660\u0667\u0667\u0660\u0660\u00a0\u0669\u0660\u0660\u0661\u0662\u0663", PHONE_NUMBER),
        ("\u0663\u060d\u0663\u060d\u0661\u0669\u0665\u0662", DATE_OF_BIRTH),  # Arabic date separator
        ("07700\u2012900123", PHONE_NUMBER),  # figure dash
    ],
)
def test_look_alike_characters_do_not_bypass_the_guard(text: str, kind: PersonalDataKind) -> None:
    """Full-width letters, no-break and zero-width spaces, unusual dashes and Arabic separators are folded."""
    assert find_personal_data(text) == frozenset({kind})


# --- the reply -----------------------------------------------------------------------------------------


def test_the_reply_names_the_one_kind_found_and_asks_for_the_nhs_number_only() -> None:
    """The reply says the message was removed, what it seemed to contain, and that only the NHS number is needed."""
    reply = explain(frozenset({DATE_OF_BIRTH}))
    assert reply.startswith("I've removed your message because it looked like it contained a date of birth.")
    assert "only need your NHS number" in reply


def test_the_reply_lists_several_kinds_in_a_fixed_readable_order() -> None:
    """Several kinds are listed once each, in a stable order, joined with commas and "and"."""
    reply = explain(frozenset({EMAIL, NAME, PHONE_NUMBER}))
    assert "contained a name, a phone number and an email address." in reply
    assert explain(frozenset({PHONE_NUMBER, EMAIL, NAME})) == reply


@pytest.mark.parametrize("kind", list(PersonalDataKind))
def test_every_kind_has_words_in_the_reply(kind: PersonalDataKind) -> None:
    """Each kind of detail has its own wording in the reply."""
    others = {explain(frozenset({other})) for other in PersonalDataKind if other is not kind}
    assert explain(frozenset({kind})) not in others


def test_the_reply_never_repeats_what_the_patient_sent() -> None:
    """The reply is built from fixed words, so the removed details never reappear in the chat."""
    text = "My name is Sarah Jones, 07700 900123"
    reply = explain(find_personal_data(text))
    assert "Sarah" not in reply
    assert "07700" not in reply


def test_explaining_nothing_is_a_programming_error() -> None:
    """explain() refuses an empty set: no message should have been removed."""
    with pytest.raises(ValueError, match="at least one"):
        explain(frozenset())


# --- properties and speed ------------------------------------------------------------------------------


@given(st.text())
@PROPERTY
def test_random_text_never_raises(text: str) -> None:
    """Whatever a patient sends, the guard answers with a set of kinds, never an exception."""
    found = find_personal_data(text)
    assert isinstance(found, frozenset)
    assert found <= frozenset(PersonalDataKind)


@given(
    st.integers(999_000_000, 999_999_999).map(lambda stem: with_check_digit(f"{stem:09d}")),
    st.sampled_from(["{a} {b} {c}", "{a}{b}{c}", "{a}-{b}-{c}", "NHS number: {a} {b} {c}", "{a} {b} {c}."]),
)
@PROPERTY
def test_no_nhs_number_is_ever_flagged(number: str | None, layout: str) -> None:
    """Any valid test-range NHS number, in any of the usual layouts, passes the guard."""
    if number is None:
        return
    text = layout.format(a=number[:3], b=number[3:6], c=number[6:])
    assert find_personal_data(text) == frozenset()


ADVERSARIAL = [
    "a" * 60_000 + "@",
    "a@" * 30_000,
    "0 " * 30_000,
    "07700 " * 10_000,
    "1/" * 30_000,
    "12 " * 20_000,
    "12 High " * 7_000,
    "Mr " * 20_000,
    "my name is " * 5_000,
    "born " * 12_000,
    "DOB " * 15_000,
    "SW1A" * 15_000,
    "\u0660" * 60_000,
    "\u200b" * 60_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda text: repr(text[:12]))
def test_a_long_hostile_message_is_checked_quickly(text: str) -> None:
    """A 60 KB message built to make pattern matching slow is still checked in well under a second."""
    started = time.perf_counter()
    find_personal_data(text)
    assert time.perf_counter() - started < 0.5


def test_an_ordinary_message_is_checked_in_well_under_a_millisecond() -> None:
    """A typical message is checked in well under a millisecond on average, so the guard never slows a chat."""
    messages = CONCERN_DESCRIPTIONS + [text for text, _ in TRUE_POSITIVES]
    started = time.perf_counter()
    for _ in range(20):
        for message in messages:
            find_personal_data(message)
    average = (time.perf_counter() - started) / (20 * len(messages))
    assert average < 0.001
