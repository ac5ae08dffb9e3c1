"""The clinician's warnings: notes that contradict the screening, answers changed after a refusal."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.screening_flags import EarlierScreening, note_flags, screening_warnings

AT = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def test_a_note_naming_genitals_and_bleeding_is_flagged_when_the_screening_said_not_intimate() -> None:
    """ "it IS on my genitals, bleeding" after "not intimate" gives an intimate-area flag and an urgent one."""
    flags = note_flags(["it IS on my genitals, bleeding"], intimate=False, under_18=None)
    assert len(flags) == 2
    assert "intimate area" in flags[0]
    assert "urgent" in flags[1] and "bleeding" in flags[1]


def test_flags_never_carry_the_patients_words_or_numbers() -> None:
    """A flag is our fixed wording: the note's own text and any number in it stay out of the alert."""
    note = "my penis since 999 765 4323 zebra"
    flags = note_flags([note], intimate=False, under_18=None)
    assert flags
    assert all("zebra" not in flag and "999" not in flag and "penis" not in flag for flag in flags)


def test_a_child_is_flagged_by_word_or_by_age() -> None:
    """ "my daughter", "aged 9" and "12 years old" suggest a child; "45 years old" does not."""
    for note in ("it's my daughter's arm", "she is aged 9", "12 years old, rash", "for my 6yo"):
        assert any("child" in flag for flag in note_flags([note], intimate=False, under_18=None)), note
    assert note_flags(["I am 45 years old"], intimate=False, under_18=None) == ()


def test_a_child_after_an_intimate_adult_screening_names_the_under_18_rule() -> None:
    """An intimate photo said to be of an adult, with a note about a child, gets the under-18 warning."""
    (flag,) = note_flags(["it's my son"], intimate=True, under_18=False)
    assert "under 18" in flag


def test_notes_that_fit_the_screening_give_no_flag() -> None:
    """A note about a rash on the arm, or "intimate" notes for an intimate submission, flag nothing."""
    assert note_flags(["rash on my left arm for 3 days, itchy"], intimate=False, under_18=None) == ()
    assert note_flags(["it is on my vulva"], intimate=True, under_18=False) == ()


def test_spreading_and_fever_are_urgent() -> None:
    """Spreading redness and a fever are named as urgent symptoms."""
    (flag,) = note_flags(["it's spreading and I have a fever"], intimate=False, under_18=None)
    assert "spreading" in flag and "fever" in flag


def test_a_changed_answer_after_a_refusal_is_the_strongest_warning() -> None:
    """Refused as intimate + under 18, then "not intimate": a warning naming the refusal and both answers."""
    refused = EarlierScreening(AT, intimate=True, under_18=True, outcome="refused")
    (warning,) = screening_warnings([refused], intimate=False, under_18=None)
    assert "WARNING" in warning and "refused" in warning
    assert "intimate area: no" in warning and "under 18: yes" in warning


def test_same_answers_or_an_earlier_submitted_request_give_no_warning() -> None:
    """The same answers again, or a different earlier request that was submitted, are not a changed answer."""
    cancelled = EarlierScreening(AT, intimate=False, under_18=None, outcome="cancelled")
    submitted = EarlierScreening(AT, intimate=True, under_18=False, outcome="submitted")
    assert screening_warnings([cancelled, submitted], intimate=False, under_18=None) == ()


def test_a_changed_answer_without_a_refusal_is_noted() -> None:
    """Intimate said yes then cancelled, now "no": the clinician is told the answers changed."""
    cancelled = EarlierScreening(AT, intimate=True, under_18=None, outcome="cancelled")
    (warning,) = screening_warnings([cancelled], intimate=False, under_18=None)
    assert warning.startswith("**Screening answers changed**")


def test_an_earlier_screening_survives_storage() -> None:
    """An earlier screening read back from its stored form is the same."""
    screening = EarlierScreening(AT, intimate=True, under_18=True, outcome="refused")
    assert EarlierScreening.from_dict(screening.to_dict()) == screening
