"""What every round of a benchmark run shares: the homeserver, its admin token, a scratch directory,
names that never repeat, synthetic NHS numbers, and where progress is reported."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.backends import SQLITE, Backend
from bench.nhs_numbers import synthetic_numbers
from bench.proc_stats import CpuReading, group_cpu
from devtools.local_homeserver import LocalHomeserver


@dataclass
class BenchContext:
    homeserver: LocalHomeserver
    admin_token: str = field(repr=False)
    base_dir: Path
    say: Callable[[str], None]
    profile_dir: Path | None = None  # sample the bot with py-spy during each measured phase (bench.profiler)
    bot_env: dict[str, str] = field(
        default_factory=dict
    )  # extra PHOTOBOT_* settings for every bot (experiments)
    backend: Backend = field(default_factory=lambda: Backend(SQLITE))  # the engines this round's bot uses
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _nhs_numbers: Iterator[str] = field(default_factory=synthetic_numbers)

    def name(self, prefix: str) -> str:
        """A Matrix localpart nobody has used in this run."""
        return f"{prefix}{next(self._serial)}"

    def nhs_number(self) -> str:
        return next(self._nhs_numbers)

    async def bot_environment(self, bot_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Settings for a fresh bot: the run's extras, then its backend's (a new database and bucket)."""
        engines = await asyncio.to_thread(self.backend.environment, bot_name)
        return self.bot_env | (extra or {}) | engines

    def phase_label(self, label: str) -> str:
        """A round's label made unique across backends (profile file names)."""
        return label if self.backend.name == SQLITE else f"{label}-{self.backend.name}"

    def synapse_cpu(self) -> CpuReading:
        """CPU used so far by Synapse (every live process in its process group)."""
        pid = self.homeserver.pid
        if pid is None:
            raise RuntimeError("the homeserver is not running")
        return group_cpu(pid)
