"""A tiny HTTP server for operators: ``GET /metrics`` (Prometheus) and ``GET /healthz`` (JSON).

Built on `asyncio.start_server`, with no web framework: one request per connection, then the connection is
closed. The request line and headers must arrive within `read_timeout` seconds and `max_head_bytes` bytes,
or the connection is answered (408, 431) and closed; a slow client holds only its own connection, and at
most `max_connections` are served at once. Request bodies are never read; only GET is allowed.

It binds to a loopback address unless the operator explicitly allows a public one (`allow_public`): the
metrics hold no patient data, but they say how busy a practice is, and nothing here authenticates.
Requests are not logged (nothing in them is useful, and a path could carry anything).

`/healthz` answers from named probes combined by `health_of`: for the bot, a `Heartbeat` the sync loop
beats after each successful sync, and a query to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 32


@dataclass(frozen=True)
class HealthReport:
    """Whether the bot is healthy, and one short line per check (e.g. "last sync": "2.1 s ago")."""

    ok: bool
    checks: Mapping[str, str] = field(default_factory=dict)


HealthCheck = Callable[[], Awaitable[HealthReport]]
Probe = Callable[[], Awaitable[tuple[bool, str]]]  # one check: (ok, one short line saying why)


def health_of(probes: Mapping[str, Probe]) -> HealthCheck:
    """A health check that runs every probe in turn: healthy when all are; a probe that raises is a failure."""

    async def health() -> HealthReport:
        checks: dict[str, str] = {}
        healthy = True
        for name, probe in probes.items():
            try:
                ok, detail = await probe()
            except Exception as error:  # noqa: BLE001 - a probe that breaks reports unhealthy, with its type
                ok, detail = False, f"failed ({type(error).__name__})"
            healthy = healthy and ok
            checks[name] = detail
        return HealthReport(ok=healthy, checks=checks)

    return health


class Heartbeat:
    """When a loop last completed a round (on a monotonic clock), for a health check to judge it alive.

    Before the first beat the loop counts as starting, and is healthy until `max_age` has passed since the
    heartbeat was made.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._started = now()
        self._last: float | None = None

    def beat(self) -> None:
        self._last = self._now()

    def probe(self, what: str, max_age: float) -> Probe:
        """A probe: ok while the last beat is at most `max_age` seconds old."""

        async def alive() -> tuple[bool, str]:
            now = self._now()
            if self._last is None:
                waited = now - self._started
                return waited <= max_age, f"no {what} yet ({waited:.1f} s since start, limit {max_age:g} s)"
            age = now - self._last
            return age <= max_age, f"last {what} {age:.1f} s ago (limit {max_age:g} s)"

        return alive


class PublicBindRefusedError(ValueError):
    """The status server was asked to listen on a non-loopback address without `allow_public`."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {self.reason}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + self.body


def _plain(status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    return _Response(status, reason, f"{status} {reason}\n".encode("ascii"), headers=headers)


def _request_line(head: bytes) -> tuple[str, str] | None:
    """(method, path without query) from the request head, or None if it is not HTTP/1.x."""
    try:
        line = head.decode("ascii").split("\r\n", 1)[0]
    except UnicodeDecodeError:
        return None
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    method, target, _ = parts
    return method, target.split("?", 1)[0]


class StatusServer:
    def __init__(
        self, metrics: Metrics, health: HealthCheck, *, read_timeout: float, max_connections: int
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the status server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _listen(self, host: str, port: int, max_head_bytes: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=max_head_bytes)

    async def close(self) -> None:
        """Stop listening and drop the connections still open."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs every connection callback in a task
        self._connections.add(task)
        try:
            if len(self._connections) <= self._max_connections:
                response = await self._answer(reader)
                if response is not None:
                    writer.write(response.encode())
                    async with asyncio.timeout(self._read_timeout):
                        await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stopped reading: nothing to tell it
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(self._read_timeout):
                    await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> _Response | None:
        try:
            async with asyncio.timeout(self._read_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return _plain(408, "Request Timeout")
        except asyncio.LimitOverrunError:
            return _plain(431, "Request Header Fields Too Large")
        except asyncio.IncompleteReadError:
            return None  # closed before finishing its request
        request = _request_line(head)
        if request is None:
            return _plain(400, "Bad Request")
        method, path = request
        if path not in ("/metrics", "/healthz"):
            return _plain(404, "Not Found")
        if method != "GET":
            return _plain(405, "Method Not Allowed", headers=(("Allow", "GET"),))
        if path == "/metrics":
            return await self._metrics_page()
        return await self._health_page()

    async def _metrics_page(self) -> _Response:
        try:
            text = await self._metrics.render()
        except Exception:  # a bug in rendering is reported as a 500, not a dead server
            log.exception("metrics could not be rendered")
            return _plain(500, "Internal Server Error")
        return _Response(200, "OK", text.encode("utf-8"), content_type=CONTENT_TYPE)

    async def _health_page(self) -> _Response:
        try:
            async with asyncio.timeout(self._read_timeout):
                report = await self._health()
        except Exception as error:  # noqa: BLE001 - a health check that fails means unhealthy
            log.warning("health check failed: %s", type(error).__name__)
            report = HealthReport(ok=False, checks={"health_check": f"failed ({type(error).__name__})"})
        body = {"status": "ok" if report.ok else "unhealthy", "checks": dict(report.checks)}
        encoded = json.dumps(body, sort_keys=True).encode("utf-8")
        status, reason = (200, "OK") if report.ok else (503, "Service Unavailable")
        return _Response(status, reason, encoded, content_type="application/json")


async def start_status_server(
    host: str,
    port: int,
    metrics: Metrics,
    health: HealthCheck,
    *,
    allow_public: bool = False,
    read_timeout: float = READ_TIMEOUT,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_connections: int = MAX_CONNECTIONS,
) -> StatusServer:
    """Listen on host:port; "localhost" means 127.0.0.1 (one socket, so port 0 gives one port)."""
    if not allow_public and not is_loopback(host):
        raise PublicBindRefusedError(
            f"refusing to serve metrics on non-loopback address {host!r}; allow it explicitly to do so"
        )
    server = StatusServer(metrics, health, read_timeout=read_timeout, max_connections=max_connections)
    await server._listen("127.0.0.1" if host == "localhost" else host, port, max_head_bytes)
    return server
