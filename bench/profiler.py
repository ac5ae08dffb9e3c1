"""Optional: sample the bot with py-spy during a measured phase, and say where its time went.

`python -m bench --profile DIR` records each round's phase with `py-spy record --threads --format raw`
(collapsed stacks, one file per round) and summarises it: for each thread (the event loop is MainThread,
the CPU pool's threads are photobot-cpu_N), the functions with the most samples, self and inclusive.
py-spy is not a dependency of the bot; install it into the virtualenv to use this (pip install py-spy).
Sampling pauses the bot briefly at each sample, so a profiled run's figures are not the run's figures.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

SAMPLES_PER_SECOND = 200
TOP = 15
_PROCESS = re.compile(r"^process \d+:")
_THREAD_NUMBER = re.compile(r"_\d+$")
# Leaf functions where a thread is waiting, not working: the event loop's poll, the pool's and aiosqlite's
# queues (py-spy may count these as active while the thread wakes or waits for the GIL).
WAITING = frozenset({"EpollSelector.select", "_worker", "_connection_worker_thread", "Condition.wait"})


def py_spy() -> Path:
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        raise RuntimeError("profiling needs py-spy in the virtualenv: .venv/bin/pip install py-spy")
    return path


class Recording:
    """`async with Recording(pid, out):` samples the process until the block ends."""

    def __init__(self, pid: int, out: Path) -> None:
        self._pid = pid
        self.out = out
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Recording:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            str(py_spy()),
            "record",
            "--pid",
            str(self._pid),
            "--rate",
            str(SAMPLES_PER_SECOND),
            "--threads",
            "--format",
            "raw",
            "--output",
            str(self.out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)  # py-spy attaches before the phase starts
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            async with asyncio.timeout(30):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


def _frames(line: str) -> tuple[list[str], int] | None:
    stack, _, count = line.rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = [frame for frame in stack.split(";") if not _PROCESS.match(frame)]
    return frames, int(count)


def _short(frame: str) -> str:
    """'function (path/to/module.py:123)' -> 'function (module.py:123)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def _thread_name(frame: str) -> str:
    """'thread (30509): MainThread' -> 'MainThread'; the pool's 'photobot-cpu_0', '_1' ... -> 'photobot-cpu'."""
    return _THREAD_NUMBER.sub("", frame.partition("): ")[2] or frame)


def _function(frame: str) -> str:
    return frame.partition(" (")[0]


def _below_everything(inclusive: Counter[str], busy: int, top: int) -> list[tuple[str, int]]:
    """The top functions, leaving out the ones on nearly every stack (thread start-up, the event loop)."""
    return [(name, count) for name, count in inclusive.most_common() if count < 0.98 * busy][:top]


def summarise_stacks(lines: Iterable[str], top: int = TOP) -> dict[str, Any]:
    """Per thread (pool threads together): samples busy and waiting, and the functions with the most busy
    samples, self and inclusive (each function counted once per stack; those on nearly every stack are left
    out). Waiting means the stack ends in
    one of `WAITING`: py-spy's idle detection misses a thread blocked inside Python's own wait loops."""
    threads: dict[str, dict[str, Counter[str]]] = {}
    for line in lines:
        parsed = _frames(line.strip())
        if parsed is None:
            continue
        frames, count = parsed
        if frames and frames[0].startswith("thread ("):
            thread, stack = _thread_name(frames[0]), [_short(frame) for frame in frames[1:]]
        else:
            thread, stack = "?", [_short(frame) for frame in frames]
        counters = threads.setdefault(thread, {"self": Counter(), "inclusive": Counter(), "state": Counter()})
        if not stack or _function(stack[-1]) in WAITING:
            counters["state"]["waiting"] += count
            continue
        counters["state"]["busy"] += count
        counters["self"][stack[-1]] += count
        for function in {_function(frame) for frame in stack}:
            counters["inclusive"][function] += count
    return {
        thread: {
            "busy_samples": counters["state"]["busy"],
            "waiting_samples": counters["state"]["waiting"],
            "self": counters["self"].most_common(top),
            "inclusive": _below_everything(counters["inclusive"], counters["state"]["busy"], top),
        }
        for thread, counters in sorted(threads.items(), key=lambda item: -item[1]["state"]["busy"])
    }
