"""Named fault points, for tests that kill, stall or starve the bot at the worst moment and check nothing is lost.

Switched on only by the PHOTOBOT_FAULT_POINTS setting *and* test mode; in production every call does nothing.
Each entry of the setting arms one point:

- ``point`` or ``point@N``: the N-th time (default the first) the point is hit, the process ends at once
  with `os._exit`, as abruptly as SIGKILL: no cleanup, no flushing, no `finally` blocks.
- ``point=ENOSPC`` (or any errno name, ``point=ENOSPC@N`` from the N-th hit on): `hit` raises the OSError
  the disk or kernel would, every time from then on, so a test sees how the bot answers a full disk or a
  failing device without filling a real one.
- ``point=pause``: `pause` waits at the point, having created ``<fault_dir>/<point>.paused``, until the test
  creates ``<fault_dir>/<point>.release``; a test restarts the homeserver, locks the database or corrupts a
  file at exactly that moment. Synchronous `hit` ignores pause entries and async `pause` ignores the rest.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path

FAULT_EXIT_CODE = 86
PAUSE_POLL_SECONDS = 0.05


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Armed:
    point: str
    action: str  # "kill", "pause" or an errno name
    from_hit: int


def parse_fault(entry: str) -> Armed:
    """``point``, ``point@N``, ``point=ENOSPC``, ``point=ENOSPC@N`` or ``point=pause``."""
    spec, _, count = entry.partition("@")
    point, _, action = spec.partition("=")
    action = action or "kill"
    if not point.isidentifier():
        raise FaultSpecError(f"fault point {point!r} is not a name")
    if action not in ("kill", "pause") and not isinstance(getattr(errno, action, None), int):
        raise FaultSpecError(f"fault action {action!r} is neither kill, pause nor an errno name")
    if count and (not count.isdigit() or int(count) < 1):
        raise FaultSpecError(f"fault count {count!r} is not a whole number from 1")
    if count and action == "pause":
        raise FaultSpecError("a pause point pauses every time; it takes no count")
    return Armed(point, action, int(count or 1))


class FaultInjector:
    def __init__(self, entries: frozenset[str], *, enabled: bool, fault_dir: Path | None = None) -> None:
        armed = [parse_fault(entry) for entry in entries] if enabled else []
        self._armed = {fault.point: fault for fault in armed}
        self._hits: dict[str, int] = {}
        self._fault_dir = fault_dir

    def hit(self, point: str) -> None:
        """Kill the process, or raise the armed OSError, if `point` is armed and its hit count is reached."""
        fault = self._armed.get(point)
        if fault is None or fault.action == "pause":
            return
        self._hits[point] = hits = self._hits.get(point, 0) + 1
        if hits < fault.from_hit:
            return
        if fault.action == "kill":
            sys.stderr.write(f"fault injected at {point}\n")
            sys.stderr.flush()
            os._exit(FAULT_EXIT_CODE)
        code: int = getattr(errno, fault.action)
        raise OSError(code, f"{os.strerror(code)} (fault injected at {point})")

    async def pause(self, point: str) -> None:
        """Wait at `point` until the test releases it, if it is armed to pause."""
        fault = self._armed.get(point)
        if fault is None or fault.action != "pause" or self._fault_dir is None:
            return
        self._fault_dir.mkdir(parents=True, exist_ok=True)
        paused, release = self._fault_dir / f"{point}.paused", self._fault_dir / f"{point}.release"
        paused.touch()
        while not release.exists():  # noqa: ASYNC110 - the signal is a file another process creates
            await asyncio.sleep(PAUSE_POLL_SECONDS)
        release.unlink()
        paused.unlink(missing_ok=True)


NO_FAULTS = FaultInjector(frozenset(), enabled=False)
