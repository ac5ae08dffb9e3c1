"""Waiting for the homeserver at start-up: back-off, giving up only when stopped, misconfiguration raised."""

from __future__ import annotations

import asyncio

import pytest

from bot.matrix.gateway import TransientMatrixError
from bot.matrix.reachability import (
    HomeserverMisconfiguredError,
    HomeserverUnreachableError,
    wait_until_reachable,
)
from bot.startup import come_online

URL = "http://127.0.0.1:1"


async def test_the_wait_doubles_up_to_a_minute_and_ends_when_the_homeserver_answers() -> None:
    """Each failed probe waits twice as long as the one before, never more than 60 s, and the wait ends at
    the first answer."""
    answers = iter([False] * 8 + [True])
    waits: list[float] = []

    async def check(url: str) -> None:
        if not next(answers):
            raise HomeserverUnreachableError(f"the homeserver at {url} cannot be reached.")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    assert await wait_until_reachable(URL, lambda: False, sleep, check=check)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


async def test_a_misconfigured_url_is_raised_not_waited_on() -> None:
    """A URL that answers, but not as a Matrix homeserver, stops the wait at once: waiting would not fix it."""

    async def check(url: str) -> None:
        raise HomeserverMisconfiguredError(f"the homeserver at {url} answered HTTP 404")

    async def sleep(seconds: float) -> None:
        raise AssertionError("no wait expected")

    with pytest.raises(HomeserverMisconfiguredError):
        await wait_until_reachable(URL, lambda: False, sleep, check=check)


async def test_a_stop_while_waiting_returns_false_without_starting() -> None:
    """SIGTERM while the homeserver is down ends the wait; nothing is started."""
    stop = asyncio.Event()
    started: list[bool] = []

    async def check(url: str) -> None:
        stop.set()
        raise HomeserverUnreachableError("down")

    async def start() -> None:
        started.append(True)

    assert not await come_online(URL, start, stop, check=check)
    assert started == []


async def test_a_start_that_fails_transiently_is_tried_again() -> None:
    """Key upload failing because the homeserver went away again is retried after the homeserver answers."""
    stop = asyncio.Event()
    attempts: list[int] = []

    async def check(url: str) -> None:
        return None

    async def start() -> None:
        attempts.append(len(attempts))
        if len(attempts) < 2:
            raise TransientMatrixError("keys upload: the homeserver is busy (502)")

    async with asyncio.timeout(10):
        assert await come_online(URL, start, stop, check=check)
    assert attempts == [0, 1]
