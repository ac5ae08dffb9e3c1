"""Time, passed in: tests and the retention job use their own clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """Test mode only: the system clock plus a number of seconds read from a file at every call, so an
    end-to-end test can move the running bot's clock (retention, clock jumps) without touching the machine's."""

    def __init__(self, offset_file: Path) -> None:
        self._file = offset_file

    def now(self) -> datetime:
        try:
            offset = float(self._file.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return datetime.now(UTC) + timedelta(seconds=offset)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
