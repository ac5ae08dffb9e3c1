"""Named crash points, for tests that kill the bot at the worst moment and check nothing is lost.

Switched on only by the PHOTOBOT_FAULT_POINTS setting *and* test mode; in production `hit` does nothing.
A point that is hit ends the process at once with `os._exit`, as abruptly as SIGKILL: no cleanup, no
flushing, no `finally` blocks.
"""

from __future__ import annotations

import os
import sys

FAULT_EXIT_CODE = 86


class FaultInjector:
    def __init__(self, points: frozenset[str], *, enabled: bool) -> None:
        self._points = points if enabled else frozenset()

    def hit(self, point: str) -> None:
        if point in self._points:
            sys.stderr.write(f"fault injected at {point}\n")
            sys.stderr.flush()
            os._exit(FAULT_EXIT_CODE)


NO_FAULTS = FaultInjector(frozenset(), enabled=False)
