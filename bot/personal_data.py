"""The personal-data guard: spots a patient message that carries details the bot must not collect.

The patient identifies themselves with their NHS number only, never a name, date of birth or address
(product rule 7). When a message looks as if it carries one of those, or a postcode, phone number or email
address, the bot removes it from the chat (redaction) and replies with `explain(found)`. The guard is a
safety net, not a proof: it prefers a redaction the patient can shrug off ("I'll send it again without
that") to a leak, but it must stay out of the way of ordinary descriptions of a concern ("on my left arm,
about 3 days", "it's 2 cm wide", "since 3 March"), of menu answers ("1", "yes") and of a message that is
only an NHS number ("943 476 5919" is not a phone number).

Pure and stateless: the patterns are compiled once into module-level constants.

Before matching, the text is normalised so look-alike characters cannot slip past:
    - NFKC, which folds full-width letters and digits, ligatures and compatibility spaces;
    - every decimal digit of any script (category Nd: Arabic-Indic, Extended Arabic-Indic,
      Devanagari...) mapped EXPLICITLY to ASCII with `bot.nhs_number.normalise_digits`, the same
      normalisation the NHS-number parser uses; digits are then matched with [0-9], never \\d;
    - invisible format characters (category Cf: zero-width spaces, direction marks) removed, so
      "0770\u200b0 900123" is still a phone number;
    - all dashes to "-", curly apostrophes to "'", fraction and Arabic date slashes to "/".

What counts (and the deliberate exceptions)
    EMAIL          local@domain.tld
    PHONE_NUMBER   UK numbers: 0 then 1, 2, 3 or 7, ten or eleven digits in all (mobiles 07..., landlines
                   01/02/03), or +44 / 0044 with an optional "(0)"; spaces, dashes, dots and brackets
                   anywhere; and any other international +number of 8 to 16 digits. Ten digits written
                   3-3-4 or unbroken are the shape of an NHS number (Scottish CHI numbers start with 0) and
                   are left to the NHS-number parser; an 11-digit number, or 10 grouped otherwise
                   ("01632 96012"), is a phone number.
    POSTCODE       every UK format, any case, with or without the space ("SW1A 1AA", "M1 1AE", "b338th"),
                   using the letters each position may hold (the inward code never uses C, I, K, M, O or V,
                   so "2 mm", "5 ml" and "3 kg" are never postcodes).
    DATE_OF_BIRTH  a full date with a year ("03/03/1952", "3-3-52", "1952-03-03", "3rd March 1952",
                   "March 3, 1952"); "born" followed by a year, a month or a date ("born 1952", "born in
                   May"); "DOB", "D.O.B.", "date of birth" followed by a digit or a month within a few
                   words. A date without a year is not a date of birth ("since 3 March"), and a full date
                   right after an onset word ("since", "started", "noticed it on", "from") is when the
                   concern began, not a birthday.
    ADDRESS        a house number followed by one to three words and a street word: "12 High Street",
                   "4a The Crescent", "7 Mill Lane". Words that could be ordinary English (Close, Way,
                   Court, Park, Green, Drive...) count only after capitalised words ("9 Rose Close"), and a
                   time, unit or little word between number and street word ("2 weeks down the road")
                   rules it out. Also "Flat 3" (not "flat 2 cm"), "I live at 12..." and "my address is".
    NAME           cue phrases: "my name is X", "name: X", "I am / I'm / this is" + two capitalised words,
                   a title (Mr, Mrs, Mx + any word; Ms, Miss, Dr + a capitalised word), and a sign-off
                   ("regards", "thanks", "signed"...) + a capitalised word. A name on its own, with no cue,
                   cannot be told from other words and is not detected.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum

from bot.nhs_number import normalise_digits


class PersonalDataKind(Enum):
    """A kind of personal detail the bot does not want; the values are stable names for records."""

    NAME = "name"
    DATE_OF_BIRTH = "date_of_birth"
    ADDRESS = "address"
    POSTCODE = "postcode"
    PHONE_NUMBER = "phone_number"
    EMAIL = "email"


_KIND_PHRASES: dict[PersonalDataKind, str] = {
    PersonalDataKind.NAME: "a name",
    PersonalDataKind.DATE_OF_BIRTH: "a date of birth",
    PersonalDataKind.ADDRESS: "an address",
    PersonalDataKind.POSTCODE: "a postcode",
    PersonalDataKind.PHONE_NUMBER: "a phone number",
    PersonalDataKind.EMAIL: "an email address",
}


def explain(found: frozenset[PersonalDataKind], *, offer: bool = False) -> str:
    """The reply sent after the message was removed: what it seemed to contain, and why only the NHS number.

    Raises ValueError for an empty set: there is nothing to explain, and no message should have been removed.
    """
    if not found:
        raise ValueError("explain() needs at least one kind of personal data")
    phrases = [_KIND_PHRASES[kind] for kind in PersonalDataKind if kind in found]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    if offer:  # the rest of the message is offered back without the details: no need to send it again
        return (
            f"I've removed your message because it looked like it contained {listed}. To keep your details "
            "safe, I only need your NHS number."
        )
    return (
        f"I've removed your message because it looked like it contained {listed}. To keep your details "
        "safe, I only need your NHS number: please don't send your name, date of birth, address, "
        "postcode, phone number or email here. If you were telling us about your concern, please send "
        "it again without those details."
    )


def find_personal_data(text: str) -> frozenset[PersonalDataKind]:
    """Which kinds of unwanted personal data the message seems to carry; empty if none."""
    norm = _normalise(text)
    found: set[PersonalDataKind] = set()
    if "@" in norm and EMAIL.search(norm):
        found.add(PersonalDataKind.EMAIL)
    if _has_phone_number(norm):
        found.add(PersonalDataKind.PHONE_NUMBER)
    if POSTCODE.search(norm):
        found.add(PersonalDataKind.POSTCODE)
    if _has_date_of_birth(norm):
        found.add(PersonalDataKind.DATE_OF_BIRTH)
    if _has_address(norm):
        found.add(PersonalDataKind.ADDRESS)
    if _has_name(norm):
        found.add(PersonalDataKind.NAME)
    return frozenset(found)


# --- normalisation -------------------------------------------------------------------------------------

_CHARACTER_MAP = {
    "\u2019": "'",  # right single quotation mark, what phones type for an apostrophe
    "\u2018": "'",
    "\u02bc": "'",  # modifier letter apostrophe
    "\u2212": "-",  # minus sign
    "\u2044": "/",  # fraction slash
    "\u2215": "/",  # division slash
    "\u060d": "/",  # Arabic date separator
}


def _normalise(text: str) -> str:
    if text.isascii():
        return text
    text = normalise_digits(unicodedata.normalize("NFKC", text))
    out: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        if category == "Pd":
            out.append("-")
        elif ch.isspace():
            out.append(" ")
        else:
            out.append(_CHARACTER_MAP.get(ch, ch))
    return "".join(out)


# --- email ---------------------------------------------------------------------------------------------

# The local part must start at the start of the text or after a delimiter: anchoring it keeps the search
# linear on a long run of characters without an "@".
EMAIL = re.compile(
    r"""(?<![^\s<>()\[\]{},;:"'])
        [\w.!#$%&'*+/=?^`{|}~-]{1,64}
        @[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}""",
    re.VERBOSE,
)

# --- phone numbers -------------------------------------------------------------------------------------

_SEP = r"[ \-.()]{0,2}"
UK_PHONE_NATIONAL = re.compile(rf"(?<![0-9+])0[1237](?:{_SEP}[0-9]){{8,9}}(?![0-9])")
UK_PHONE_INTERNATIONAL = re.compile(
    rf"(?<![0-9])(?:\+|00){_SEP}44{_SEP}(?:\(0\){_SEP}|0{_SEP})?[1237](?:{_SEP}[0-9]){{8,9}}(?![0-9])"
)
OTHER_INTERNATIONAL_PHONE = re.compile(rf"(?<![0-9])\+{_SEP}[1-9](?:{_SEP}[0-9]){{7,15}}(?![0-9])")
_DIGIT_GROUPS = re.compile(r"[0-9]+")


def _has_phone_number(text: str) -> bool:
    if UK_PHONE_INTERNATIONAL.search(text) or OTHER_INTERNATIONAL_PHONE.search(text):
        return True
    for match in UK_PHONE_NATIONAL.finditer(text):
        groups = [len(group) for group in _DIGIT_GROUPS.findall(match.group())]
        looks_like_nhs_number = groups in ([3, 3, 4], [10])
        if not looks_like_nhs_number:
            return True
    return False


# --- postcodes -----------------------------------------------------------------------------------------

# Outward code: A9, A99, AA9, AA99, A9A, AA9A, with the letters each position may hold; inward code: 9AA
# without C, I, K, M, O, V. Plus the odd one out, GIR 0AA.
POSTCODE = re.compile(
    r"""(?<![A-Za-z0-9])
        (?:
            GIR\s{0,2}0AA
          | (?:[A-PR-UWYZ][0-9]{1,2}
              |[A-PR-UWYZ][A-HK-Y][0-9]{1,2}
              |[A-PR-UWYZ][0-9][A-HJKPSTUW]
              |[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY])
            \s{0,2}[0-9][ABD-HJLNP-UW-Z]{2}
        )
        (?![A-Za-z0-9])""",
    re.VERBOSE | re.IGNORECASE,
)

# --- dates of birth ------------------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])"
)
_ORDINAL = r"(?:st|nd|rd|th)?"

NUMERIC_DATE = re.compile(
    r"(?<![0-9/.\-])([0-9]{1,2})([/.\-])([0-9]{1,2})\2([0-9]{4}|[0-9]{2})(?![0-9]|[/.\-][0-9])"
)
ISO_DATE = re.compile(
    r"(?<![0-9])(?:19|20)[0-9]{2}([/.\-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12][0-9]|3[01])(?![0-9])"
)
TEXT_DATE = re.compile(
    rf"""(?<![0-9a-z])
        (?:[0-9]{{1,2}}{_ORDINAL}(?:\s+of)?\s+{_MONTH}\.?
          |{_MONTH}\.?\s+(?:the\s+)?[0-9]{{1,2}}{_ORDINAL})
        \s*,?\s*(?:(?:19|20)[0-9]{{2}}|'?[0-9]{{2}})(?![0-9])
        (?!\s*(?:days?|weeks?|months?|years?|hours?|minutes?|mins?|times?|cm|mm)\b)""",
    re.VERBOSE | re.IGNORECASE,
)
BORN = re.compile(
    rf"""\bborn\b[\s,:]*(?:(?:in|on)\s+)?(?:the\s+)?
        (?:(?:19|20)[0-9]{{2}}(?![0-9])
          |[0-9]{{1,2}}{_ORDINAL}(?:\s+of)?\s+{_MONTH}
          |{_MONTH}
          |[0-9]{{1,2}}[/.\-][0-9]{{1,2}})""",
    re.VERBOSE | re.IGNORECASE,
)
DATE_OF_BIRTH_CUE = re.compile(
    rf"\b(?:d\.?o\.?b\b\.?|date\s+of\s+birth|birth\s*date)[^.!?\n0-9]{{0,20}}?(?:[0-9]|{_MONTH})",
    re.IGNORECASE,
)
# A full date right after one of these is when the concern began, not a birthday.
_ONSET_BEFORE = re.compile(
    r"""\b(?:since|from|start(?:ed|ing)?|began|begun|noticed|appeared|happened|first|until|till|after|before)
        (?:\s+(?:it|on|in|around|about|the))*\s*$""",
    re.VERBOSE | re.IGNORECASE,
)


def _is_onset_date(text: str, start: int) -> bool:
    return _ONSET_BEFORE.search(text, max(0, start - 40), start) is not None


def _plausible_numeric_date(first: str, second: str, year: str) -> bool:
    # The groups are ASCII digits ([0-9] after explicit normalisation), so int() reads them safely.
    a, b = int(first), int(second)
    day_month = 1 <= a <= 31 and 1 <= b <= 12
    month_day = 1 <= a <= 12 and 1 <= b <= 31
    return (day_month or month_day) and (len(year) == 2 or year[:2] in ("19", "20"))


def _has_date_of_birth(text: str) -> bool:
    if BORN.search(text) or DATE_OF_BIRTH_CUE.search(text):
        return True
    for match in NUMERIC_DATE.finditer(text):
        if _plausible_numeric_date(match.group(1), match.group(3), match.group(4)) and not _is_onset_date(
            text, match.start()
        ):
            return True
    return any(
        not _is_onset_date(text, match.start())
        for pattern in (ISO_DATE, TEXT_DATE)
        for match in pattern.finditer(text)
    )


# --- addresses -----------------------------------------------------------------------------------------


def _word_set(words: str) -> frozenset[str]:
    """A set of lower-case words written as one string, which reads better than a long list literal."""
    return frozenset(words.split())


_STREET_WORDS = _word_set(
    """
    road rd street avenue ave lane crescent cres terrace terr gardens gdns mews boulevard blvd
    """
)
# Street words that are also ordinary English: they count only after capitalised words.
_AMBIGUOUS_STREET_WORDS = _word_set(
    """
    close way court ct place pl park hill green view walk rise row grove square sq drive dr st parade
    wharf yard vale gate
    """
)
# Words that never sit between a house number and a street word, but do between a number and "road" in
# a description ("2 weeks down the road", "5 minutes walk along the lane").
_NOT_STREET_NAME_WORDS = _word_set(
    """
    a an my your his her their our in on at to of by for from down up along across near over under off
    into onto and or ago it is was were times time x days day weeks week months month years year hours
    hour minutes minute mins min seconds secs cm mm m km miles mile inches inch ft feet foot metres
    metre meters meter yards kg g lb lbs spots spot
    """
)
# A house number (with an optional letter), an optional comma, then two to four words.
ADDRESS_CANDIDATE = re.compile(r"(?<![\w/.\-])[0-9]{1,4}[A-Za-z]?(?:\s*,)?((?:\s+[^\W\d_][\w'\-]*\.?){2,4})")
FLAT = re.compile(
    r"""\b(?:flat|apartment|apt)\.?\s*(?:no\.?\s*)?[0-9]{1,4}[A-Za-z]?(?![\w])
        (?!\s*(?:cm|mm|m|in|inch|inches|ft|feet|x|days?|weeks?|months?|years?|hours?|times?)\b)""",
    re.VERBOSE | re.IGNORECASE,
)
LIVING_AT = re.compile(r"\b(?i:live\s+at\s+(?:number\s+)?)[0-9A-Z]")
# Not "email address:", which is an email address, not a postal one.
ADDRESS_CUE = re.compile(
    r"(?:\bmy\s+(?:home\s+|postal\s+)?address\s*(?:is\b|:)|(?<!mail\s)(?<!mail-)\baddress\s*:)\s*\w",
    re.IGNORECASE,
)


def _has_address(text: str) -> bool:
    if FLAT.search(text) or LIVING_AT.search(text) or ADDRESS_CUE.search(text):
        return True
    for match in ADDRESS_CANDIDATE.finditer(text):
        words = [word.rstrip(".") for word in match.group(1).split()]
        for index in range(1, len(words)):
            street = words[index].lower()
            if street not in _STREET_WORDS and street not in _AMBIGUOUS_STREET_WORDS:
                continue
            name = words[:index]
            if any(word.lower() in _NOT_STREET_NAME_WORDS for word in name):
                break
            if street in _STREET_WORDS or all(_is_capitalised(word) for word in name):
                return True
            break
    return False


# --- names ---------------------------------------------------------------------------------------------

_WORD = r"[^\W\d_][\w'\-]*"
NAME_IS = re.compile(rf"\b(?:sur|fore)?name(?:'s|\s+is|\s+was|\s*[:=\-])\s*({_WORD})", re.IGNORECASE)
I_AM = re.compile(rf"\b(?:i\s+am|i'm|im|this\s+is)\s+({_WORD})\s+({_WORD})", re.IGNORECASE)
TITLE = re.compile(rf"\b(mr|mrs|mx|ms|miss|dr)\b\.?\s+({_WORD})", re.IGNORECASE)
SIGN_OFF = re.compile(
    rf"\b(?:signed|regards|sincerely|best\s+wishes|many\s+thanks|thanks|thank\s+you|cheers)\b[\s,:\-]*({_WORD})",
    re.IGNORECASE,
)
# Titles that are never ordinary words ("miss", "ms" and "dr" can be).
_UNAMBIGUOUS_TITLES = frozenset({"mr", "mrs", "mx"})
# Words that follow a cue without being a name ("my name is on the letter", "I'm Not Sure", "Thanks Doctor").
_NOT_NAMES = _word_set(
    """
    a an the and or but not no yes so very really just also still now then here there on in at is it of
    to for with from by as my your his her their our this that these those same below above attached
    sure ok okay fine well worried sorry happy unsure unable able afraid concerned going having sending
    trying looking getting feeling waiting writing messaging hoping glad doctor doc dr nurse gp nhs team
    everyone all you again much lots god bye goodbye sir madam hi hello please thanks thank regards best
    kind warm many mum dad mother father son daughter wife husband partner carer patient surgery
    practice photo picture today tomorrow yesterday tonight morning afternoon evening night monday
    tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december
    """
)


def _is_capitalised(word: str) -> bool:
    """Title case, as a name is written: 'Sarah', "O'Brien", 'McDonald', 'The'; not 'OK', 'SARAH', "I'll"."""
    if len(word) < 2 or not word[0].isupper():
        return False
    if word[1] == "'":
        return len(word) > 3 and word[2].isupper() and word[3].islower()
    return word[1].islower()


def _could_be_name(word: str, *, capitalised: bool) -> bool:
    lowered = word.lower()
    if lowered in _NOT_NAMES or lowered.removesuffix("'s") in _NOT_NAMES:
        return False
    return _is_capitalised(word) if capitalised else True


def _has_name(text: str) -> bool:
    if any(_could_be_name(match.group(1), capitalised=False) for match in NAME_IS.finditer(text)):
        return True
    for match in I_AM.finditer(text):
        if all(_could_be_name(match.group(i), capitalised=True) for i in (1, 2)):
            return True
    for match in TITLE.finditer(text):
        title, surname = match.group(1), match.group(2)
        if title.lower() in _UNAMBIGUOUS_TITLES:
            if _could_be_name(surname, capitalised=False):
                return True
        elif title[0].isupper() and _could_be_name(surname, capitalised=True):
            return True
    return any(_could_be_name(match.group(1), capitalised=True) for match in SIGN_OFF.finditer(text))


# --- masking -------------------------------------------------------------------------------------------

MASK = "[…]"
_MASKED_WHOLE = (
    EMAIL,
    UK_PHONE_INTERNATIONAL,
    OTHER_INTERNATIONAL_PHONE,
    POSTCODE,
    FLAT,
    ISO_DATE,
    TEXT_DATE,
)
_REST_OF_SENTENCE = r"[^.!?\n]*"
_CUE_SENTENCES = tuple(
    re.compile(pattern.pattern + _REST_OF_SENTENCE, pattern.flags)
    for pattern in (ADDRESS_CUE, LIVING_AT, DATE_OF_BIRTH_CUE, BORN)
)
_MIN_WORDS_LEFT = 2
# Words that only introduce the removed details: a message of nothing else is not worth offering back.
_ONLY_ABOUT_THE_DETAILS = _word_set(
    """
    my name is i am im was born on in date of birth dob postcode address live at phone number mobile email
    and the a me call here it s this hi hello mr mrs ms miss mx dr thanks regards
    """
)
_NEXT_NAME = re.compile(r"\s+[A-Z][\w'\-]*")


def mask(text: str) -> str | None:
    """The message with every personal detail the guard looks for replaced by "[…]", keeping the other
    words (a date right after "since" or "started" is when the concern began, and stays); None when what
    is left would still look personal, or has too few words to be worth keeping.

    A safety net like `find_personal_data`: the masked text is checked again with it before it is offered.
    """
    masked = _normalise(text)
    spans: list[tuple[int, int]] = []
    for pattern in (*_MASKED_WHOLE, *_CUE_SENTENCES):
        spans += [match.span() for match in pattern.finditer(masked)]
    spans += [match.span() for match in UK_PHONE_NATIONAL.finditer(masked)]
    spans += [
        match.span() for match in NUMERIC_DATE.finditer(masked) if not _is_onset_date(masked, match.start())
    ]
    spans += [match.span() for match in ADDRESS_CANDIDATE.finditer(masked)]
    for pattern, groups in ((NAME_IS, (1,)), (I_AM, (1, 2)), (TITLE, (2,)), (SIGN_OFF, (1,))):
        for match in pattern.finditer(masked):
            for group in groups:
                start, end = match.span(group)
                # A surname (or two) after the first name goes too.
                while (more := _NEXT_NAME.match(masked, end)) is not None:
                    end = more.end()
                spans.append((start, end))
    for start, end in sorted(spans, reverse=True):
        masked = masked[:start] + MASK + masked[end:]
    masked = re.sub(r"(?:\[…\]\s*)+", MASK + " ", masked).strip()
    words = [
        word
        for word in re.findall(r"[^\W\d_][\w'\-]*", masked.lower())
        if word not in _ONLY_ABOUT_THE_DETAILS
    ]
    if len(words) < _MIN_WORDS_LEFT or find_personal_data(masked):
        return None
    return masked
