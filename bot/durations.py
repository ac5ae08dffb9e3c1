"""Durations as people write them in configuration: '45s', '30m', '12h', '30d', or several ('1d 12h')."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d{1,6})(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, minimum: timedelta, maximum: timedelta) -> timedelta:
    """The duration `text` names; ValueError, with a sentence saying what would work, otherwise."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _PART.findall(cleaned)
    if not parts or "".join(number + unit for number, unit in parts) != cleaned:
        raise ValueError("give a duration like 30m, 12h or 30d (s, m, h or d).")
    value = timedelta(seconds=sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts))
    if not minimum <= value <= maximum:
        raise ValueError(f"give a duration from {format_duration(minimum)} to {format_duration(maximum)}.")
    return value


def format_duration(value: timedelta) -> str:
    """The shortest exact way to write `value`: 30d, 12h, 30m or 45s."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
