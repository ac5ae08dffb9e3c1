"""Warnings for the clinician when what a patient said does not fit their screening answers.

Two sources, both pure functions (no I/O, no clock):
- `note_flags`: a note typed at the photo step that contradicts the screening (it names an intimate area
  when the answer was "not intimate", it suggests a child, it describes urgent symptoms). Read by words,
  deliberately broad: a false alarm costs the clinician a glance; a missed "it IS on my genitals, bleeding"
  costs a patient. Negations ("not bleeding") still flag: the clinician reads the note itself.
- `screening_warnings`: the screening answers changed since an earlier screening in the same chat within
  the practice's period, above all after an intimate + under-18 refusal.

A flag names a category in fixed words of ours, never the patient's text or NHS number: flags are shown in
the new-request alert, which carries no patient words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

_INTIMATE_WORDS = (
    "genital",
    "genitals",
    "genitalia",
    "penis",
    "vagina",
    "vaginal",
    "vulva",
    "labia",
    "clitoris",
    "testicle",
    "testicles",
    "testes",
    "scrotum",
    "foreskin",
    "anus",
    "anal",
    "rectum",
    "groin",
    "pubic",
    "privates",
    "private parts",
    "private part",
    "intimate",
    "breast",
    "breasts",
    "nipple",
    "nipples",
    "bum",
    "my bottom",
    "his bottom",
    "her bottom",
    "buttock",
    "buttocks",
    "willy",
    "fanny",
    "down below",
)
_CHILD_WORDS = (
    "child",
    "childs",
    "children",
    "my son",
    "my sons",
    "my daughter",
    "my daughters",
    "baby",
    "babies",
    "toddler",
    "infant",
    "newborn",
    "kid",
    "kids",
    "teen",
    "teenager",
    "under 18",
    "under eighteen",
    "minor",
    "schoolboy",
    "schoolgirl",
    "little boy",
    "little girl",
)
# Urgent symptoms, each with the fixed word the flag uses for it.
_URGENT_WORDS: dict[str, tuple[str, ...]] = {
    "bleeding": ("bleeding", "bleeds", "bleed", "bled", "blood", "bloody"),
    "spreading": (
        "spreading",
        "spreads",
        "spread",
        "getting bigger",
        "growing fast",
        "red streak",
        "red line",
    ),
    "fever": ("fever", "feverish", "high temperature", "temperature", "shivering", "rigors"),
    "pus or infection": ("pus", "oozing", "weeping", "infected", "infection"),
    "severe pain": ("agony", "severe pain", "excruciating", "unbearable"),
    "breathing": ("cant breathe", "cannot breathe", "short of breath", "breathless"),
    "swelling": ("swelling", "swollen"),
}
# "aged 12", "12 years old", "12 yrs", "12yo", "12 year old"
_AGE = re.compile(r"\b(?:aged?\s+(\d{1,2})\b|(\d{1,2})\s*(?:years?|yrs?|yo)\b)")


def _normalise(text: str) -> str:
    lowered = text.replace("\u2019", "'").replace("'", "").casefold()
    return " " + re.sub(r"[^a-z0-9]+", " ", lowered).strip() + " "


def _mentions(text: str, words: Iterable[str]) -> bool:
    return any(f" {word} " in text for word in words)


def _mentions_minor_age(text: str) -> bool:
    for match in _AGE.finditer(text):
        age = int(match.group(1) or match.group(2))
        if age < 18:
            return True
    return False


def note_flags(notes: Sequence[str], *, intimate: bool, under_18: bool | None) -> tuple[str, ...]:
    """Warnings for the clinician about `notes` (the patient's typed words at the photo step), given the
    screening answers. Empty when nothing in the notes contradicts them."""
    said = [_normalise(note) for note in notes]
    flags: list[str] = []
    if not intimate and any(_mentions(text, _INTIMATE_WORDS) for text in said):
        flags.append(
            "**A note suggests an intimate area**, but the screening answer was *not intimate*: check "
            "before viewing, and treat the photos as intimate (describe, then destroy) if so."
        )
    if under_18 is not True and any(
        _mentions(text, _CHILD_WORDS) or _mentions_minor_age(text) for text in said
    ):
        if intimate:
            flags.append(
                "**A note suggests the person may be a child**, but the screening said *intimate area, "
                "18 or over*: the practice does not accept intimate photos of anyone under 18."
            )
        else:
            flags.append("**A note suggests the person in the photos may be a child.**")
    urgent = [name for name, words in _URGENT_WORDS.items() if any(_mentions(text, words) for text in said)]
    if urgent:
        flags.append(f"**A note mentions possibly urgent symptoms** ({', '.join(urgent)}): read it first.")
    return tuple(flags)


OUTCOMES = frozenset({"refused", "submitted", "cancelled", "expired"})


@dataclass(frozen=True)
class EarlierScreening:
    """The answers of an earlier screening in the same chat (None: not asked or not answered)."""

    at: datetime  # when that conversation began
    intimate: bool | None
    under_18: bool | None
    outcome: str  # how that conversation ended: 'refused', 'submitted', 'cancelled' or 'expired'

    @property
    def refused(self) -> bool:
        return self.outcome == "refused"

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at.astimezone(UTC).isoformat(),
            "intimate": self.intimate,
            "under_18": self.under_18,
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: object) -> EarlierScreening:
        if not isinstance(data, dict):
            raise ValueError("an earlier screening must be an object")
        at = datetime.fromisoformat(str(data.get("at")))
        if at.utcoffset() is None:
            raise ValueError("an earlier screening's time must carry a timezone")
        intimate, under_18, outcome = data.get("intimate"), data.get("under_18"), data.get("outcome")
        if not all(value is None or isinstance(value, bool) for value in (intimate, under_18)):
            raise ValueError("an earlier screening's answers must be true, false or null")
        if outcome not in OUTCOMES:
            raise ValueError("an earlier screening's outcome is unknown")
        return cls(at.astimezone(UTC), intimate, under_18, str(outcome))

    def describe(self) -> str:
        when = self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts = [f"intimate area: {_answer(self.intimate)}"]
        if self.intimate:
            parts.append(f"under 18: {_answer(self.under_18)}")
        outcome = "**refused**" if self.refused else self.outcome
        return f"{when}: {', '.join(parts)} ({outcome})"


def _differs(screening: EarlierScreening, *, intimate: bool, under_18: bool | None) -> bool:
    if screening.intimate is not None and screening.intimate != intimate:
        return True
    return intimate and screening.under_18 is not None and screening.under_18 != under_18


def _answer(value: bool | None) -> str:
    return "not answered" if value is None else ("yes" if value else "no")


def screening_warnings(
    earlier: Sequence[EarlierScreening], *, intimate: bool, under_18: bool | None
) -> tuple[str, ...]:
    """Warnings when this submission's screening answers differ from earlier ones in the same chat.

    After an intimate + under-18 refusal, any different answer is the strongest warning the bot gives: the
    submission goes through (the bot cannot see what a photo shows, and a patient may have mistyped), but
    the clinician is told first, with every earlier answer."""
    changed = [
        screening
        for screening in earlier
        # an earlier request that was submitted is a different request, not a changed answer
        if screening.outcome != "submitted" and _differs(screening, intimate=intimate, under_18=under_18)
    ]
    if not changed:
        return ()
    history = "; ".join(screening.describe() for screening in earlier)
    now = f"intimate area: {_answer(intimate)}" + (f", under 18: {_answer(under_18)}" if intimate else "")
    if any(screening.refused for screening in changed):
        return (
            "**WARNING: screening answers changed after a refusal.** Earlier in this chat the patient was "
            "refused (intimate area, under 18), then started again and answered differently "
            f"(now {now}; earlier {history}). These photos may be intimate photos of a child: check this "
            "warning before viewing them.",
        )
    return (
        f"**Screening answers changed** since an earlier attempt in this chat (now {now}; earlier {history}).",
    )
