"""A bounded pool for CPU-heavy work (image cleaning, HEIC conversion), off the event loop.

One patient's 2-second HEIC conversion must never stall another patient's chat: the event loop only
awaits. The pool is bounded (threads = CPU workers; the heavy libraries release the GIL), and a semaphore
bounds how many jobs may wait, so memory stays proportional to photos in flight, not to patients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class CpuPool:
    def __init__(self, workers: int, *, max_in_flight: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="photobot-cpu")
        self._slots = asyncio.Semaphore(max_in_flight or workers * 2)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, lambda: function(*args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
