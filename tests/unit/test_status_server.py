"""The status server, spoken to over real TCP connections on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot.metrics import Metrics
from bot.status_server import (
    HealthReport,
    Heartbeat,
    PublicBindRefusedError,
    StatusServer,
    health_of,
    is_loopback,
    start_status_server,
)


@dataclass
class Health:
    """What the health check will say next; a test changes it."""

    report: HealthReport = field(default_factory=lambda: HealthReport(ok=True, checks={"sync": "1.2 s ago"}))
    error: Exception | None = None

    async def __call__(self) -> HealthReport:
        if self.error is not None:
            raise self.error
        return self.report


@dataclass
class Running:
    server: StatusServer
    metrics: Metrics
    health: Health


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def exchange(port: int, request: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, then read until the server closes the connection (b"" if it reset it unanswered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()


def parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return Reply(int(status_line.split(" ")[1]), headers, body)


async def get(port: int, path: str) -> Reply:
    return parse(await exchange(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode("ascii")))


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    metrics = Metrics()
    metrics.counter("replies_sent_total", "Messages sent.").inc(3)
    health = Health()
    server = await start_status_server("127.0.0.1", 0, metrics, health, read_timeout=5.0)
    yield Running(server, metrics, health)
    await server.close()


async def test_metrics_are_served_in_prometheus_text_format(running: Running) -> None:
    """GET /metrics returns 200 with the Prometheus content type and the current samples."""
    reply = await get(running.server.port, "/metrics")

    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert reply.body.decode("utf-8") == await running.metrics.render()
    assert "replies_sent_total 3.0" in reply.body.decode("utf-8").splitlines()


async def test_healthy_bot_answers_ok_with_its_checks(running: Running) -> None:
    """GET /healthz returns 200 and a JSON body saying ok, with each check's line."""
    reply = await get(running.server.port, "/healthz")

    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert json.loads(reply.body) == {"status": "ok", "checks": {"sync": "1.2 s ago"}}


async def test_unhealthy_bot_answers_503(running: Running) -> None:
    """When the health check reports a problem, GET /healthz returns 503 and says which check failed."""
    running.health.report = HealthReport(ok=False, checks={"sync": "no sync for 300 s"})

    reply = await get(running.server.port, "/healthz")

    assert reply.status == 503
    assert json.loads(reply.body) == {"status": "unhealthy", "checks": {"sync": "no sync for 300 s"}}


async def test_a_health_check_that_raises_counts_as_unhealthy(running: Running) -> None:
    """If the health check itself crashes, GET /healthz returns 503 instead of failing the connection."""
    running.health.error = RuntimeError("database gone")

    reply = await get(running.server.port, "/healthz")

    assert reply.status == 503
    assert json.loads(reply.body)["status"] == "unhealthy"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 404),
        (b"GET /metrics/../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", 405),
        (b"hello\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
    ],
)
async def test_anything_but_get_metrics_or_healthz_is_refused(
    running: Running, request_bytes: bytes, status: int
) -> None:
    """Unknown paths get 404, other methods 405, and malformed requests 400, each with no metrics in it."""
    reply = parse(await exchange(running.server.port, request_bytes))

    assert reply.status == status
    assert b"replies_sent_total" not in reply.body


async def test_405_names_the_allowed_method(running: Running) -> None:
    """A refused method is told that only GET is allowed."""
    reply = parse(await exchange(running.server.port, b"PUT /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"))

    assert reply.headers["allow"] == "GET"


async def test_a_query_string_does_not_change_the_page(running: Running) -> None:
    """GET /metrics?x=1 serves the same metrics as GET /metrics."""
    reply = await get(running.server.port, "/metrics?x=1")

    assert reply.status == 200
    assert b"replies_sent_total 3.0" in reply.body


async def test_an_oversized_request_is_refused_and_closed() -> None:
    """A request head beyond the size limit is refused (400, aiohttp's answer) and the connection is closed."""
    server = await start_status_server("127.0.0.1", 0, Metrics(), Health(), max_head_bytes=1024)
    try:
        raw = await exchange(server.port, b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"a" * 4000, timeout=2.0)
    finally:
        await server.close()

    assert parse(raw).status == 400


async def test_a_slow_client_does_not_block_another_request(running: Running) -> None:
    """While one client dawdles over its request, another client's request is answered at once."""
    _, slow_writer = await asyncio.open_connection("127.0.0.1", running.server.port)
    slow_writer.write(b"GET /met")
    await slow_writer.drain()
    try:
        started = time.monotonic()
        reply = await get(running.server.port, "/healthz")
        elapsed = time.monotonic() - started
    finally:
        slow_writer.close()
        await slow_writer.wait_closed()

    assert reply.status == 200
    assert elapsed < 1.0


async def test_a_client_that_never_finishes_is_timed_out() -> None:
    """A client that never completes its request gets 408 after the read timeout and is disconnected."""
    server = await start_status_server("127.0.0.1", 0, Metrics(), Health(), read_timeout=0.2)
    try:
        started = time.monotonic()
        raw = await exchange(server.port, b"GET /metrics HTTP/1.1\r\n", timeout=2.0)
        elapsed = time.monotonic() - started
    finally:
        await server.close()

    assert parse(raw).status == 408
    assert 0.15 < elapsed < 1.5


async def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    """With the connection limit reached, a new connection is closed without an answer."""
    server = await start_status_server("127.0.0.1", 0, Metrics(), Health(), max_connections=1)
    _, holder = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        holder.write(b"GET /met")
        await holder.drain()
        await asyncio.sleep(0.1)  # let the server accept the first connection
        refused = await exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", timeout=2.0
        )
    finally:
        holder.close()
        await holder.wait_closed()
    try:
        await asyncio.sleep(0.1)  # let the server notice the first connection is gone
        accepted = parse(
            await exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", timeout=2.0)
        )
    finally:
        await server.close()

    assert refused == b""
    assert accepted.status == 200


async def test_closing_drops_waiting_connections_and_stops_listening() -> None:
    """After close, a connection still waiting is dropped and new connections are refused."""
    server = await start_status_server("127.0.0.1", 0, Metrics(), Health())
    port = server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /met")
    await writer.drain()
    await asyncio.sleep(0.05)

    await server.close()

    try:
        async with asyncio.timeout(2.0):
            assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "", "::", "192.0.2.10", "status.example.org"],  # noqa: S104 - addresses that must be refused
)
async def test_a_public_address_is_refused_unless_allowed(host: str) -> None:
    """Binding to anything but loopback is refused unless public serving was explicitly allowed."""
    with pytest.raises(PublicBindRefusedError):
        await start_status_server(host, 0, Metrics(), Health())


async def test_a_public_address_is_served_when_allowed() -> None:
    """With allow_public, the server listens on all interfaces and answers."""
    server = await start_status_server("0.0.0.0", 0, Metrics(), Health(), allow_public=True)  # noqa: S104 - the point of the test
    try:
        reply = await get(server.port, "/healthz")
    finally:
        await server.close()

    assert reply.status == 200


async def test_localhost_listens_on_one_port() -> None:
    """ "localhost" with port 0 binds one loopback socket, so the reported port is the one that answers."""
    server = await start_status_server("localhost", 0, Metrics(), Health())
    try:
        reply = await get(server.port, "/healthz")
    finally:
        await server.close()

    assert reply.status == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.8.8", True), ("::1", True), ("localhost", True), ("10.0.0.1", False)],
)
def test_loopback_addresses_are_recognised(host: str, loopback: bool) -> None:
    """Loopback IPv4, IPv6 and the name localhost count as loopback; other addresses do not."""
    assert is_loopback(host) is loopback


@dataclass
class FakeMonotonic:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_sync_heartbeat_is_healthy_while_recent_and_unhealthy_when_stale() -> None:
    """The sync check passes while the last sync is recent and fails once it is older than the limit."""
    clock = FakeMonotonic()
    heartbeat = Heartbeat(clock)
    probe = heartbeat.probe("successful sync", max_age=120)

    clock.now += 5
    assert await probe() == (True, "no successful sync yet (5.0 s since start, limit 120 s)")
    clock.now += 200
    assert await probe() == (False, "no successful sync yet (205.0 s since start, limit 120 s)")
    heartbeat.beat()
    clock.now += 2.5
    assert await probe() == (True, "last successful sync 2.5 s ago (limit 120 s)")
    clock.now += 150
    assert await probe() == (False, "last successful sync 152.5 s ago (limit 120 s)")


async def test_health_is_ok_only_when_every_probe_is() -> None:
    """/healthz is ok when all probes pass; one failing or crashing probe makes it unhealthy, named."""

    async def fine() -> tuple[bool, str]:
        return True, "answers"

    async def stale() -> tuple[bool, str]:
        return False, "last successful sync 300.0 s ago"

    async def broken() -> tuple[bool, str]:
        raise OSError("database is locked")

    assert await health_of({"sync": fine, "database": fine})() == HealthReport(
        ok=True, checks={"sync": "answers", "database": "answers"}
    )
    assert await health_of({"sync": stale, "database": fine})() == HealthReport(
        ok=False, checks={"sync": "last successful sync 300.0 s ago", "database": "answers"}
    )
    assert await health_of({"sync": fine, "database": broken})() == HealthReport(
        ok=False, checks={"sync": "answers", "database": "failed (OSError)"}
    )
