"""What the kernel says a process has used: CPU time (utime + stime) and peak resident memory (VmHWM).

Read from /proc, so Linux only. CPU time of a process counts all its threads (a CPU pool included). A
process group is summed over every live process in it (Synapse runs in its own group), but a child that
has exited and been reaped is no longer counted: the bench compares readings of long-lived processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Fields of /proc/<pid>/stat after the ")" closing the command name (man 5 proc): state is field 3.
_STAT_UTIME, _STAT_STIME, _STAT_PGRP = 14, 15, 5
_STAT_PPID, _STAT_CUTIME, _STAT_CSTIME = 4, 16, 17
_FIRST_FIELD_AFTER_NAME = 3


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds used so far (user and system), summed over the processes read."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, earlier: CpuReading) -> CpuReading:
        return CpuReading(self.user - earlier.user, self.system - earlier.system)

    def __add__(self, other: CpuReading) -> CpuReading:
        return CpuReading(self.user + other.user, self.system + other.system)


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat from field 3 on (the command name may hold spaces and parentheses)."""
    text = (PROC / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _field(fields: list[str], number: int) -> str:
    return fields[number - _FIRST_FIELD_AFTER_NAME]


def process_cpu(pid: int) -> CpuReading:
    """CPU time of one process (all its threads)."""
    fields = _stat_fields(pid)
    return CpuReading(
        int(_field(fields, _STAT_UTIME)) / CLOCK_TICKS, int(_field(fields, _STAT_STIME)) / CLOCK_TICKS
    )


def group_pids(pgid: int) -> list[int]:
    """Every live process whose process group is `pgid`."""
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_field(_stat_fields(int(entry.name)), _STAT_PGRP)) == pgid:
                pids.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue  # it exited while we looked
    return sorted(pids)


def group_cpu(pgid: int) -> CpuReading:
    """CPU time summed over the live processes of a process group."""
    user = system = 0.0
    for pid in group_pids(pgid):
        try:
            reading = process_cpu(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        user += reading.user
        system += reading.system
    return CpuReading(user, system)


def _children(pid_of_parent: dict[int, int], root: int) -> list[int]:
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in pid_of_parent.items() if parent in frontier]
        tree += frontier
    return tree


def tree_cpu(root: int) -> CpuReading:
    """CPU time of a process and all its descendants, those that exited and were reaped included (their
    parents' cutime and cstime). PostgreSQL's backends put themselves in sessions of their own (setsid), so
    a process group does not hold them: a server is read as its process tree."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_field(_stat_fields(int(entry.name)), _STAT_PPID))
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                continue  # it exited while we looked
    user = system = 0.0
    for pid in _children(parents, root):
        try:
            fields = _stat_fields(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        user += (int(_field(fields, _STAT_UTIME)) + int(_field(fields, _STAT_CUTIME))) / CLOCK_TICKS
        system += (int(_field(fields, _STAT_STIME)) + int(_field(fields, _STAT_CSTIME))) / CLOCK_TICKS
    return CpuReading(user, system)


def own_cpu() -> CpuReading:
    """CPU time of this (the bench's) process: the simulated patients' share of the machine."""
    times = os.times()
    return CpuReading(times.user, times.system)


def memory_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status in KiB, e.g. "VmHWM" (peak resident) or "VmRSS" (resident now)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise KeyError(f"/proc/{pid}/status has no {field}")
