"""A lease per practice: which of several bot processes serves it, held as a PostgreSQL advisory lock.

The lease is a session-level advisory lock (`pg_try_advisory_lock(key)`, the key derived from the
practice's bot account) held on a connection of its own, never the one the repositories use: the lock lives
exactly as long as that session. PostgreSQL ends the session, and so releases the lock, when the holder's
connection closes (a SIGKILLed holder's kernel closes its socket at once), when an administrator terminates
the backend, when the server restarts, and when the server's TCP keepalives find the holder's machine gone
(`SERVER_DEAD_PEER_SECONDS` below: the holder's machine vanished, or the network between them).

Two threads keep it, so that a stalled event loop delays neither:
- the keeper confirms every `confirm_every` seconds, on the lease's own connection, that this session
  still holds the lock (`pg_locks`); a confirmation that fails (the connection closed or broke, or the lock
  is not there) means the lease is lost at once;
- the watchdog calls the loss too when no confirmation succeeded for `loss_deadline` seconds (a
  confirmation that hangs on a broken network). `loss_deadline` is shorter than the server's own dead-peer
  bound, so a holder cut off from the database stops before the server gives the lease to another.

What a loss does is the caller's `on_lost` (the bot ends its process: `bot.standby`). A waiter tries the
lock every `retry_every` seconds, reconnecting when its connection breaks.

    Lease(url, key, on_lost=...)      acquire(stop) -> bool: waits until held (True) or stop is set (False)
                                      release(): unlocks and closes (also on a failed acquire)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

log = logging.getLogger(__name__)

CONFIRM_EVERY_SECONDS = 1.0
LOSS_DEADLINE_SECONDS = 3.0  # no confirmation for this long: the holder stops
RETRY_EVERY_SECONDS = 1.0
UNREACHABLE_LOG_EVERY = 60  # tries: a waiting standby says the database is unreachable once a minute
# The server ends the holder's session this long after its machine stops answering: TCP keepalives after
# 5 s of silence, then 3 probes 1 s apart (and unacknowledged data is given up after 8 s). The holder sends
# a confirmation every second, so a live holder is never silent that long.
SERVER_DEAD_PEER_SECONDS = 8.0
_SERVER_OPTIONS = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 "
    "-c tcp_user_timeout=8000 -c idle_in_transaction_session_timeout=0 -c statement_timeout=2000"
)
# The same on the holder's side: its own socket gives up on a vanished server within about 5 s.
_CLIENT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
    "application_name": "photobot lease",
}

_TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
_UNLOCK = "SELECT pg_advisory_unlock(%s)"
# A bigint advisory key is stored as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
_HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
    "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s"
)
_HOLDER = (
    "SELECT a.application_name, a.client_addr::text, a.pid FROM pg_locks l JOIN pg_stat_activity a "
    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s"
)


def _without_schema(url: str) -> str:
    """The URL without the bot's own `schema=` parameter (`storage.postgres`), which libpq would refuse: the
    lease needs no schema, advisory locks belong to the database."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def lease_key(name: str) -> int:
    """The advisory-lock key of a practice's lease (a signed 64-bit integer), from its bot account's id."""
    digest = hashlib.sha256(b"photobot lease\0" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease:
    """One practice's lease, held from a successful `acquire` until `release`, a loss, or the process's end."""

    def __init__(
        self,
        url: str,
        key: int,
        *,
        on_lost: Callable[[str], None],
        confirm_every: float = CONFIRM_EVERY_SECONDS,
        loss_deadline: float = LOSS_DEADLINE_SECONDS,
        retry_every: float = RETRY_EVERY_SECONDS,
    ) -> None:
        self._url = _without_schema(url)
        self.key = key
        self._on_lost = on_lost
        self._confirm_every = confirm_every
        self._loss_deadline = loss_deadline
        self._retry_every = retry_every
        self._connection: psycopg.Connection[Any] | None = None
        self._closing = threading.Event()
        self._lost = threading.Event()
        self._losing = threading.Lock()
        self._last_confirmed = 0.0
        self._threads: list[threading.Thread] = []
        self.attempts = 0  # tries of the lock, for the waiting log line and the tests
        self._unreachable = 0  # tries in a row that could not reach the database (logged now and then)

    @property
    def held(self) -> bool:
        return self._connection is not None and not self._lost.is_set() and not self._closing.is_set()

    async def acquire(self, stop: asyncio.Event, on_busy: Callable[[], None] | None = None) -> bool:
        """Wait until the lease is held (True), or until `stop` is set (False). `on_busy` is called once,
        when a try first reaches the database and finds another holder (not when the database is down)."""
        loop = asyncio.get_running_loop()
        busy_said = False
        while not stop.is_set():
            got = await loop.run_in_executor(None, self._try_once)
            if got:
                self._start_keeping()
                return True
            if not busy_said and self._unreachable == 0 and on_busy is not None:
                on_busy()
                busy_said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._retry_every)
        self.release()
        return False

    def holder(self) -> str | None:
        """Who holds the lease, as PostgreSQL knows them (application name, address, backend pid)."""
        try:
            with psycopg.connect(self._url, autocommit=True, **_CLIENT_OPTIONS) as connection:
                row = connection.execute(_HOLDER, (self.key,)).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else f"{row[0]} from {row[1] or 'a local socket'}, backend {row[2]}"

    def release(self) -> None:
        """Give the lease up (unlock, close the connection) and stop the threads; no loss is reported."""
        self._closing.set()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.execute(_UNLOCK, (self.key,))
            with contextlib.suppress(psycopg.Error):
                connection.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def _try_once(self) -> bool:
        self.attempts += 1
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(
                    self._url, autocommit=True, options=_SERVER_OPTIONS, **_CLIENT_OPTIONS
                )
            row = self._connection.execute(_TRY_LOCK, (self.key,)).fetchone()
        except psycopg.Error as error:
            # Said at the first failure and then every UNREACHABLE_LOG_EVERY tries, not once a second.
            if self._unreachable % UNREACHABLE_LOG_EVERY == 0:
                log.warning(
                    "lease: the database cannot be reached (%s, %d tries so far); trying again",
                    type(error).__name__,
                    self._unreachable + 1,
                )
            self._unreachable += 1
            self._drop_connection()
            return False
        self._unreachable = 0
        if row is not None and row[0] is True:
            self._last_confirmed = time.monotonic()
            return True
        return False

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()

    def _start_keeping(self) -> None:
        for name, target in (("lease keeper", self._keep), ("lease watchdog", self._watch)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _keep(self) -> None:
        while not self._closing.wait(self._confirm_every):
            connection = self._connection
            if connection is None:
                return
            try:
                row = connection.execute(_HELD, (self.key,)).fetchone()
            except psycopg.Error as error:
                if self._closing.is_set():
                    return
                self._lose(f"the lease's connection failed ({type(error).__name__})")
                return
            if row is None or row[0] != 1:
                self._lose("the lock is no longer held by this session")
                return
            self._last_confirmed = time.monotonic()

    def _watch(self) -> None:
        step = min(0.1, self._loss_deadline / 10)
        while not self._closing.wait(step):
            silent = time.monotonic() - self._last_confirmed
            if silent > self._loss_deadline:
                self._lose(f"not confirmed for {silent:.1f} s")
                return

    def _lose(self, reason: str) -> None:
        with self._losing:  # the keeper and the watchdog may both find the loss: report it once
            if self._closing.is_set() or self._lost.is_set():
                return
            self._lost.set()
        self._on_lost(reason)
