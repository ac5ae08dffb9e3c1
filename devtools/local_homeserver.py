"""A throwaway Synapse homeserver on 127.0.0.1, for the test suite, the demo and the benchmarks.

Synapse runs from its own virtual environment as a child process; this module never imports it and
talks to it only over HTTP. The child gets its own process group and `PR_SET_PDEATHSIG(SIGKILL)`,
so a test run that is killed takes its homeserver with it. The kernel sends that signal when the
*thread* that started Synapse ends, so start it from the thread that outlives it (the event loop's).
Synapse's files are created with umask 077. Linux only.

Everything Synapse keeps lives in `base_dir`: `homeserver.yaml` (rewritten on every start),
`log_config.yaml`, `homeserver.log` (WARNING and above; media loggers at ERROR so no media path is
written), `console.log` (what Synapse prints before its logging is set up), `homeserver.db`,
`media_store/`, `signing.key` (made by Synapse on first start) and `registration_shared_secret`
(made here on first start and reused, so a restart keeps the same secret and data).

The configuration files are written as JSON, which YAML parsers read unchanged, so the bot's
environment needs no YAML library.
"""

import asyncio
import contextlib
import ctypes
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import aiohttp

from bot.ids import DeviceID, UserID

LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 10.0
PROGRESS_EVERY_SECONDS: Final = 5.0
POLL_INTERVAL_SECONDS: Final = 0.1
PORT_ATTEMPTS: Final = 3
RESTART_PORT_WAIT_SECONDS: Final = 5.0
LOG_TAIL_LINES: Final = 40

# `prctl(2)` option: the signal the kernel sends this process when the thread that forked it dies.
_PR_SET_PDEATHSIG: Final = 1

# Far above anything a test, the demo or a benchmark does; Synapse's defaults allow a handful per second.
_NO_LIMIT: Final = {"per_second": 100_000, "burst_count": 100_000}


@dataclass(frozen=True)
class RegisteredUser:
    """A user created on the local homeserver, logged in on one device."""

    user_id: UserID
    password: str = field(repr=False)
    access_token: str = field(repr=False)
    device_id: DeviceID


class HomeserverError(RuntimeError):
    """The local homeserver did not start, or refused a request; the message says why."""


def default_synapse_python(project_root: Path) -> Path:
    """The Python interpreter of the virtual environment Synapse is installed in."""
    return project_root / ".venv-synapse" / "bin" / "python"


def rate_limits_lifted() -> dict[str, Any]:
    """Every `rc_*` setting Synapse 1.163 reads (synapse/config/ratelimiting.py), raised out of reach.

    Server admins are not exempt from Synapse's rate limits, and the suites send in bursts.
    """
    return {
        "rc_message": _NO_LIMIT,
        "rc_registration": _NO_LIMIT,
        "rc_registration_token_validity": _NO_LIMIT,
        "rc_login": {"address": _NO_LIMIT, "account": _NO_LIMIT, "failed_attempts": _NO_LIMIT},
        "rc_admin_redaction": _NO_LIMIT,
        "rc_joins": {"local": _NO_LIMIT, "remote": _NO_LIMIT},
        "rc_joins_per_room": _NO_LIMIT,
        "rc_key_requests": _NO_LIMIT,
        "rc_3pid_validation": _NO_LIMIT,
        "rc_invites": {"per_room": _NO_LIMIT, "per_user": _NO_LIMIT, "per_issuer": _NO_LIMIT},
        "rc_third_party_invite": _NO_LIMIT,
        "rc_media_create": _NO_LIMIT,
        "rc_presence": {"per_user": _NO_LIMIT},
        "rc_delayed_event_mgmt": _NO_LIMIT,
        "rc_room_creation": _NO_LIMIT,
        "rc_reports": _NO_LIMIT,
        "rc_user_directory": _NO_LIMIT,
        "rc_profile": _NO_LIMIT,
        "rc_federation": {
            "window_size": 1000,
            "sleep_limit": 100_000,
            "sleep_delay": 0,
            "reject_limit": 100_000,
            "concurrent": 100_000,
        },
    }


def homeserver_config(
    *,
    server_name: str,
    port: int,
    base_dir: Path,
    database_path: Path,
    media_store: Path,
    log_config_path: Path,
    shared_secret_path: Path,
) -> dict[str, Any]:
    """The contents of homeserver.yaml for a throwaway, loopback-only, federation-free Synapse."""
    return {
        "server_name": server_name,
        "public_baseurl": f"http://{LOOPBACK}:{port}/",
        "pid_file": str(base_dir / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": [LOOPBACK],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                # In 1.163 the `client` resource also mounts the media repository
                # (/_matrix/media/v3, /_matrix/client/v1/media) and the admin API (/_synapse/admin).
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(database_path)}},
        "log_config": str(log_config_path),
        "media_store_path": str(media_store),
        "enable_media_repo": True,
        "max_upload_size": "50M",
        "url_preview_enabled": False,
        "signing_key_path": str(base_dir / "signing.key"),
        "registration_shared_secret_path": str(shared_secret_path),
        # Registration only with a registration token, which only an admin (the bot's web chat) makes.
        "enable_registration": True,
        "registration_requires_token": True,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        # An empty allow-list: this server talks to no other homeserver.
        "federation_domain_whitelist": [],
        "bcrypt_rounds": 4,
        "presence": {"enabled": False},
        "redaction_retention_period": "5m",
        **rate_limits_lifted(),
    }


def synapse_log_config(log_file: Path) -> dict[str, Any]:
    """A logging dictConfig for Synapse: WARNING and above to one file.

    At INFO Synapse logs every request path (media ids included) and the media repository logs
    file paths, so those loggers stay quiet. `synapse.storage.SQL` at DEBUG would log access tokens.
    """
    quiet = {"level": "ERROR"}
    return {
        "version": 1,
        "formatters": {
            "precise": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(request)s - %(message)s"}
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(log_file),
                "encoding": "utf8",
            }
        },
        "loggers": {
            "synapse.storage.SQL": {"level": "WARNING"},
            "synapse.access": {"level": "WARNING"},
            "synapse.media": quiet,
            "synapse.rest.media": quiet,
            "synapse.rest.client.media": quiet,
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def registration_mac(secret: str, nonce: str, localpart: str, password: str, *, admin: bool) -> str:
    """The HMAC-SHA1 Synapse's shared-secret registration expects (synapse/rest/admin/users.py)."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode()]))
    mac.update(b"\x00admin" if admin else b"\x00notadmin")
    return mac.hexdigest()


def pick_free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether Synapse could listen on `port` now (it sets SO_REUSEADDR, so TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive SIGKILL when the thread that started it dies.

    libc is resolved here, in the parent, so the child only makes two system calls before exec.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def in_child() -> None:
        os.umask(0o077)  # the database and media files are for this user only
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path, lines: int, *, since: int) -> str:
    """The last `lines` lines written to `path` after it was `since` bytes long."""
    try:
        with path.open("rb") as file:
            file.seek(since)
            return "".join(line.decode("utf8", "replace") for line in deque(file, maxlen=lines))
    except FileNotFoundError:
        return ""


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing any earlier version."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf8") as file:
        file.write(text)


class LocalHomeserver:
    """One Synapse process serving the client API on 127.0.0.1; data and port survive `restart()`."""

    def __init__(
        self,
        base_dir: Path,
        *,
        synapse_python: Path,
        server_name: str = "localhost",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.server_name = server_name
        self.media_store = base_dir / "media_store"
        self.database_path = base_dir / "homeserver.db"
        self.log_path = base_dir / "homeserver.log"
        self.console_log_path = base_dir / "console.log"
        self._synapse_python = synapse_python
        self._config_path = base_dir / "homeserver.yaml"
        self._log_config_path = base_dir / "log_config.yaml"
        self._secret_path = base_dir / "registration_shared_secret"
        self._log = log if log is not None else (lambda _message: None)
        self._port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        # How long each log file was when the current process started: its own output comes after.
        self._log_offsets: dict[Path, int] = {}

    @property
    def port(self) -> int:
        """The port the client API listens on; fixed by the first `start()`."""
        if self._port is None:
            raise HomeserverError("the homeserver has not been started yet")
        return self._port

    @property
    def base_url(self) -> str:
        """The homeserver URL to give a Matrix client."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The Synapse process id (also its process group id), or None when it is not running."""
        if self._process is None or self._process.returncode is not None:
            return None
        return self._process.pid

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start Synapse and return once it answers; on the first start, on a newly picked free port."""
        if self.pid is not None:
            raise HomeserverError("the homeserver is already running")
        await self.stop()  # collects a process that exited on its own
        if self._port is not None:
            await self._start_on_own_port()
            return
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = pick_free_port()
            try:
                await self._start_on(port)
            except _PortTakenError:
                self._log(f"port {port} was taken before Synapse could listen (attempt {attempt})")
                continue
            return
        raise HomeserverError(f"no free port after {PORT_ATTEMPTS} attempts")

    async def stop(self) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL if it has not exited in time. Safe to call at any time."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                self._log(f"Synapse ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
            except BaseException:  # cancelled while waiting: do not leave it running
                _signal_group(process.pid, signal.SIGKILL)
                raise
            self._log("Synapse stopped")
        else:
            await process.wait()
            self._log(f"Synapse had already exited (status {process.returncode})")

    async def restart(self) -> None:
        """Stop Synapse and start it again on the same port with the same data."""
        await self.stop()
        await self._start_on_own_port()

    async def register_user(self, localpart: str, password: str, *, admin: bool = False) -> RegisteredUser:
        """Create a user with the shared registration secret and return its first login."""
        secret = (await asyncio.to_thread(self._secret_path.read_text, encoding="utf8")).strip()
        url = f"{self.base_url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                nonce = _string(await _json_or_raise(response, "registration nonce"), "nonce")
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": registration_mac(secret, nonce, localpart, password, admin=admin),
            }
            async with session.post(url, json=body) as response:
                created = await _json_or_raise(response, f"registration of {localpart!r}")
        return RegisteredUser(
            user_id=UserID(_string(created, "user_id")),
            password=password,
            access_token=_string(created, "access_token"),
            device_id=DeviceID(_string(created, "device_id")),
        )

    async def _start_on_own_port(self) -> None:
        """Start on the port of the first start, waiting briefly for an old listener to let go."""
        port = self.port
        deadline = time.monotonic() + RESTART_PORT_WAIT_SECONDS
        while not port_is_free(port):
            if time.monotonic() > deadline:
                raise HomeserverError(f"port {port} is held by another process; cannot start on it")
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
        try:
            await self._start_on(port)
        except _PortTakenError:
            raise HomeserverError(f"port {port} was taken by another process during start-up") from None

    async def _start_on(self, port: int) -> None:
        if not port_is_free(port):
            raise _PortTakenError
        await asyncio.to_thread(self._write_files, port)
        self._log(f"starting Synapse on {LOOPBACK}:{port} (data in {self.base_dir})")
        started = time.monotonic()
        self._log_offsets = {path: _size(path) for path in (self.console_log_path, self.log_path)}
        console = await asyncio.to_thread(
            os.open, self.console_log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(self._synapse_python),
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self._config_path),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # PR_SET_PDEATHSIG can only be set from inside the child, before exec.
                preexec_fn=die_with_parent(),
            )
        finally:
            os.close(console)
        try:
            await self._wait_until_ready(port, started)
        except BaseException:
            await self.stop()
            raise
        self._port = port
        self._log(f"Synapse ready on {self.base_url} after {time.monotonic() - started:.1f} s")

    async def _wait_until_ready(self, port: int, started: float) -> None:
        process = self._process
        assert process is not None
        url = f"http://{LOOPBACK}:{port}/_matrix/client/versions"
        next_report = started + PROGRESS_EVERY_SECONDS
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if process.returncode is not None:
                    await self._raise_early_exit(process.returncode)
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        if response.status == 200 and process.returncode is None:
                            return
                now = time.monotonic()
                if now - started > START_TIMEOUT_SECONDS:
                    tails = await asyncio.to_thread(self._log_tails)
                    raise HomeserverError(
                        f"Synapse did not answer within {START_TIMEOUT_SECONDS:.0f} s; "
                        f"end of its log:\n{tails}"
                    )
                if now >= next_report:
                    self._log(f"still waiting for Synapse ({now - started:.0f} s)")
                    next_report += PROGRESS_EVERY_SECONDS
                await asyncio.sleep(POLL_INTERVAL_SECONDS)

    async def _raise_early_exit(self, returncode: int) -> None:
        tails = await asyncio.to_thread(self._log_tails)
        if "Address already in use" in tails:
            raise _PortTakenError
        raise HomeserverError(
            f"Synapse exited during start-up (status {returncode}); end of its log:\n{tails}"
        )

    def _log_tails(self) -> str:
        tails = (
            (path.name, _tail(path, LOG_TAIL_LINES, since=offset))
            for path, offset in self._log_offsets.items()
        )
        return "".join(f"--- {name} ---\n{tail}" for name, tail in tails if tail)

    def _write_files(self, port: int) -> None:
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base_dir.chmod(0o700)
        self.media_store.mkdir(mode=0o700, exist_ok=True)
        if not self._secret_path.exists():
            _write_private(self._secret_path, secrets.token_urlsafe(32))
        _write_private(self._log_config_path, json.dumps(synapse_log_config(self.log_path), indent=2))
        config = homeserver_config(
            server_name=self.server_name,
            port=port,
            base_dir=self.base_dir,
            database_path=self.database_path,
            media_store=self.media_store,
            log_config_path=self._log_config_path,
            shared_secret_path=self._secret_path,
        )
        _write_private(self._config_path, json.dumps(config, indent=2))


class _PortTakenError(Exception):
    """Another process holds the port Synapse was about to listen on."""


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


async def _json_or_raise(response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (aiohttp.ContentTypeError, json.JSONDecodeError):
        body = None
    if response.status != 200 or not isinstance(body, dict):
        detail = body.get("error", "") if isinstance(body, dict) else ""
        raise HomeserverError(f"{what} failed: HTTP {response.status} {detail}".rstrip())
    return body


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise HomeserverError(f"the homeserver's answer has no {key!r}")
    return value
