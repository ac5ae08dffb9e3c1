"""The lease on the suite's real PostgreSQL: one holder at a time; the lease passes on when the holder dies
or its session is ended; and a holder cut off from the database notices within the loss deadline."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from storage.lease import LOSS_DEADLINE_SECONDS, Lease, lease_key

KEY = lease_key("@photobot:example.org")


class Losses:
    """What `on_lost` was told, and when."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.at: float | None = None
        self.happened = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.at = time.monotonic()
        self.happened.set()


def _lease(url: str, losses: Losses | None = None, key: int = KEY) -> Lease:
    return Lease(url, key, on_lost=losses or Losses())


async def _acquire_within(lease: Lease, seconds: float) -> bool:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await lease.acquire(stop)


async def test_only_one_of_two_holds_the_lease_until_it_is_released(postgres_url: str) -> None:
    """A second process waits while the first holds the lease, and takes it within a retry once released."""
    first, second = _lease(postgres_url), _lease(postgres_url)
    try:
        assert await _acquire_within(first, 5)
        waiting = asyncio.create_task(_acquire_within(second, 10))
        await asyncio.sleep(2.5)
        assert not waiting.done()
        assert second.attempts >= 2
        assert first.held
        holder = second.holder()
        assert holder is not None
        assert "photobot lease" in holder
        released = time.monotonic()
        first.release()
        assert await waiting
        assert time.monotonic() - released < 1.5
        assert second.held
    finally:
        first.release()
        second.release()


async def test_different_practices_have_different_leases(postgres_url: str) -> None:
    """Each practice's lease is its own: holding one does not keep another practice waiting."""
    one = _lease(postgres_url, key=lease_key("@bot-a:example.org"))
    other = _lease(postgres_url, key=lease_key("@bot-b:example.org"))
    try:
        assert await _acquire_within(one, 5)
        assert await _acquire_within(other, 5)
    finally:
        one.release()
        other.release()


async def test_a_practice_of_a_host_has_its_lease_in_the_database_whatever_its_schema(
    postgres_url: str,
) -> None:
    """A host's practice names its own schema in its URL (`?schema=practice_NAME`): its lease is taken in the
    database all the same, and is the same lease whatever schema is named."""
    separator = "&" if "?" in postgres_url else "?"
    one = _lease(f"{postgres_url}{separator}schema=practice_riverside")
    other = _lease(f"{postgres_url}{separator}schema=practice_elsewhere")
    try:
        assert await _acquire_within(one, 5)
        assert not await _acquire_within(other, 1.5)
    finally:
        one.release()
        other.release()


_HOLDER_SCRIPT = """
import sys, time, psycopg
connection = psycopg.connect(sys.argv[1], autocommit=True)
assert connection.execute("SELECT pg_try_advisory_lock(%s)", (int(sys.argv[2]),)).fetchone()[0]
print("held", flush=True)
time.sleep(600)
"""


async def test_a_sigkilled_holder_releases_the_lease_at_once(postgres_url: str) -> None:
    """When the holding process is SIGKILLed, its session ends and the waiter takes the lease within a retry."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER_SCRIPT, postgres_url, str(KEY), stdout=asyncio.subprocess.PIPE
    )
    waiter = _lease(postgres_url)
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"held"
        waiting = asyncio.create_task(_acquire_within(waiter, 15))
        await asyncio.sleep(1.5)
        assert not waiting.done()
        killed = time.monotonic()
        holder.kill()
        assert await waiting
        assert time.monotonic() - killed < 2.0
    finally:
        with contextlib.suppress(ProcessLookupError):
            holder.kill()
        await holder.wait()
        waiter.release()


async def test_a_terminated_session_is_noticed_by_its_holder_and_passes_on(postgres_url: str) -> None:
    """An administrator (or a server restart) ending the holder's session: the holder is told within about
    a second, and the waiter takes the lease."""
    losses = Losses()
    holder, waiter = _lease(postgres_url, losses), _lease(postgres_url)
    try:
        assert await _acquire_within(holder, 5)
        waiting = asyncio.create_task(_acquire_within(waiter, 10))
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = time.monotonic()
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'photobot lease'"
                " AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
            )
        assert await asyncio.to_thread(losses.happened.wait, 5)
        assert losses.at is not None
        assert losses.at - ended < 1.5
        assert "connection" in losses.reasons[0]
        assert await waiting
    finally:
        holder.release()
        waiter.release()


class FreezableProxy:
    """A TCP relay to PostgreSQL that can stop forwarding without closing anything: a network that silently
    drops every packet, as a vanished route does."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.frozen.is_set():  # held back, never delivered while frozen
                    time.sleep(0.05)
                sink.sendall(data)

    def close(self) -> None:
        for item in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                item.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FreezableProxy]:
    parts = urlsplit(postgres_url)
    assert parts.hostname is not None
    assert parts.port is not None
    relay = FreezableProxy((parts.hostname, parts.port))
    try:
        yield relay
    finally:
        relay.close()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_a_holder_cut_off_from_the_database_stops_within_the_loss_deadline(
    postgres_url: str, proxy: FreezableProxy
) -> None:
    """A holder whose confirmations hang (the network to the database drops everything) is told the lease is
    lost within the loss deadline: before the server could give the lease to another process."""
    losses = Losses()
    holder = _lease(_through(postgres_url, proxy.port), losses)
    try:
        assert await _acquire_within(holder, 5)
        await asyncio.sleep(2.5)
        assert not losses.happened.is_set()  # confirmations pass while the network is up
        frozen = time.monotonic()
        proxy.frozen.set()
        assert await asyncio.to_thread(losses.happened.wait, LOSS_DEADLINE_SECONDS + 2.5)
        assert losses.at is not None
        assert losses.at - frozen < LOSS_DEADLINE_SECONDS + 1.5
        assert "not confirmed" in losses.reasons[0]
    finally:
        proxy.frozen.clear()
        holder.release()
