"""A small HTTP server for operators: ``GET /metrics`` (Prometheus) and ``GET /healthz`` (JSON).

Served by `aiohttp.web`'s low-level server, one request per connection (each answer closes it). A client
must send its request head within `read_timeout` seconds or is answered 408 and dropped (aiohttp itself
never times out a request it is still receiving); a header line longer than `max_head_bytes` is refused by
aiohttp's parser; at most `max_connections` connections are served at once, further ones are closed
unanswered. Request bodies are never read; only GET is allowed.

It binds to a loopback address unless the operator explicitly allows a public one (`allow_public`): the
metrics hold no patient data, but they say how busy a practice is, and nothing here authenticates.
Requests are not logged (nothing in them is useful, and a path could carry anything).

`/healthz` answers from named probes combined by `health_of`: for the bot, a `Heartbeat` the sync loop
beats after each successful sync, and a query to the database.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 32
PATHS = ("/metrics", "/healthz")
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
    b"Connection: close\r\n\r\n408 Request Timeout\n"
)


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


def _plain(status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, headers=headers)
    response.text = f"{status} {response.reason}\n"
    return response


class _Connections(web.Server):
    """aiohttp's low-level server, with the two limits it lacks: connections at once, and a deadline for
    the request head (cancelled once the request has arrived)."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        read_timeout: float,
        max_connections: int,
        max_head_bytes: int,
    ) -> None:
        # No access log and no error log: nothing in a request is useful, and a path could carry anything.
        quiet = logging.Logger("status-server-requests")
        quiet.disabled = True
        super().__init__(
            handler,
            max_line_size=max_head_bytes,
            max_field_size=max_head_bytes,
            access_log=None,
            logger=quiet,
        )
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._deadlines: dict[RequestHandler, asyncio.TimerHandle] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        loop = asyncio.get_running_loop()
        if len(self.connections) > self._max_connections:
            loop.call_soon(transport.abort)  # once aiohttp has finished setting the connection up
            return
        self._deadlines[handler] = loop.call_later(self._read_timeout, self._too_slow, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.request_arrived(handler)
        super().connection_lost(handler, exc)

    def request_arrived(self, handler: RequestHandler) -> None:
        deadline = self._deadlines.pop(handler, None)
        if deadline is not None:
            deadline.cancel()

    def _too_slow(self, transport: asyncio.Transport) -> None:
        if not transport.is_closing():
            transport.write(_TIMED_OUT)
            transport.close()


class StatusServer:
    def __init__(
        self,
        metrics: Metrics,
        health: HealthCheck,
        *,
        read_timeout: float,
        max_connections: int,
        max_head_bytes: int,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._read_timeout = read_timeout
        self._connections = _Connections(
            self._answer,
            read_timeout=read_timeout,
            max_connections=max_connections,
            max_head_bytes=max_head_bytes,
        )
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the status server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connections, host, port)

    async def close(self) -> None:
        """Stop listening and drop the connections still open."""
        if self._server is None:
            return
        self._server.close()
        self._connections.pre_shutdown()
        await self._connections.shutdown(timeout=self._read_timeout)
        await self._server.wait_closed()
        self._server = None

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.protocol is not None:
            self._connections.request_arrived(request.protocol)
        response = await self._page(request)
        response.force_close()  # one request per connection
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _page(self, request: web.BaseRequest) -> web.Response:
        path = request.raw_path.split("?", 1)[0]
        if not path.isascii():
            return _plain(400)
        if path not in PATHS:
            return _plain(404)
        if request.method != "GET":
            return _plain(405, {"Allow": "GET"})
        if path == "/metrics":
            return await self._metrics_page()
        return await self._health_page()

    async def _metrics_page(self) -> web.Response:
        try:
            text = await self._metrics.render()
        except Exception:  # a bug in rendering is reported as a 500, not a dead server
            log.exception("metrics could not be rendered")
            return _plain(500)
        response = web.Response(body=text.encode("utf-8"))
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def _health_page(self) -> web.Response:
        try:
            async with asyncio.timeout(self._read_timeout):
                report = await self._health()
        except Exception as error:  # noqa: BLE001 - a health check that fails means unhealthy
            log.warning("health check failed: %s", type(error).__name__)
            report = HealthReport(ok=False, checks={"health_check": f"failed ({type(error).__name__})"})
        body = {"status": "ok" if report.ok else "unhealthy", "checks": dict(report.checks)}
        return web.Response(
            status=200 if report.ok else 503,
            body=json.dumps(body, sort_keys=True).encode("utf-8"),
            content_type="application/json",
        )


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
    server = StatusServer(
        metrics,
        health,
        read_timeout=read_timeout,
        max_connections=max_connections,
        max_head_bytes=max_head_bytes,
    )
    await server._listen("127.0.0.1" if host == "localhost" else host, port)
    return server
