"""Several practices in one process: a host directory, each practice's settings and data, and serving them all.

A host directory holds one directory per practice, and nothing else that belongs to a practice:

    HOST/photobot.lock                    held by `photobot run` while it serves the host
    HOST/practices/NAME/practice.env      the practice's settings (its bot account, rooms, people, texts...)
    HOST/practices/NAME/                  its data directory: master key, database, vault, nio store, ledger
    HOST/practices/NAME/REMOVING          present while `photobot practice remove NAME` destroys it

A practice is the existing single-practice bot: its own `Settings`, read from its own file only (never from
the process environment, which every practice would share), its data directory forced to its own folder,
and its own `App` built by `bot.app.open_app` - its own database, keyring, vault, nio client and store,
rooms and configuration. The practices share the process and its event loop, nothing else: no object of one
practice's `App` is reachable from another's, so one practice's staff reach another's data by no command.
On the shared engines the host chooses each practice's place too: its own PostgreSQL schema,
`practice_NAME`, and its own object-store prefix, `<prefix>/practices/NAME/` (`practice_values`).

`isolation_problems` refuses what would join two practices through the homeserver instead: the same bot
account, a room served by both, the same master key file, the same listening port.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dotenv import dotenv_values

from bot.app import NotInitialisedError, open_app
from bot.clock import Clock
from bot.keyring import MasterKeyError
from bot.logs import PRACTICE
from bot.matrix.gateway import MatrixError
from bot.serve import run
from bot.settings import PREFIX, Settings, SettingsError, load_settings
from bot.standby import held_lease, lock_data_dir
from storage.data_dir_lock import DataDirBusyError
from storage.database import DatabaseError

log = logging.getLogger(__name__)

PRACTICE_ENV = "practice.env"
REMOVING = "REMOVING"
HOST_DIR_VARIABLE = "PHOTOBOT_HOST_DIR"
# A letter, then letters, digits or underscores: usable as a directory, a PostgreSQL schema (practice_NAME)
# and an object-store prefix as it is, so one name means the same practice everywhere.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Read from the practice's file only at `practice add` (to log the bot in once), never kept in the host.
ADD_ONLY = (f"{PREFIX}PASSWORD",)
# Set by the host for each practice; a practice's file that sets them is refused.
HOST_OWNED = (f"{PREFIX}DATA_DIR",)
DATABASE_URL = f"{PREFIX}DATABASE_URL"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
VAULT_URL = f"{PREFIX}VAULT_URL"

POLL_SECONDS = 2.0  # how soon a practice added or marked for removal is started or stopped
RETRY_SECONDS = 30.0  # how long a practice that stopped with an error waits before it is started again


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise SettingsError(
            [
                f"{name!r} is not a practice name: use 1 to 40 lower-case letters, digits or underscores, "
                "starting with a letter (like riverside or practice_2)."
            ]
        )
    return name


@dataclass(frozen=True)
class Host:
    """A host directory: where each practice's settings and data live."""

    root: Path

    @property
    def practices_dir(self) -> Path:
        return self.root / "practices"

    def practice_dir(self, name: str) -> Path:
        return self.practices_dir / check_name(name)

    def env_file(self, name: str) -> Path:
        return self.practice_dir(name) / PRACTICE_ENV

    def exists(self, name: str) -> bool:
        return self.practice_dir(name).is_dir()

    def is_removing(self, name: str) -> bool:
        return (self.practice_dir(name) / REMOVING).exists()

    def names(self) -> list[str]:
        """Every practice of the host (those being removed too), in name order."""
        if not self.practices_dir.is_dir():
            return []
        return sorted(
            path.name for path in self.practices_dir.iterdir() if path.is_dir() and _NAME.fullmatch(path.name)
        )

    def serving_names(self) -> list[str]:
        """The practices to serve: set up (they have their settings file) and not being removed."""
        return [name for name in self.names() if self.env_file(name).is_file() and not self.is_removing(name)]

    def values(self, name: str) -> dict[str, str]:
        """The practice's settings file as written, and the host's own values over it."""
        path = self.env_file(name)
        if not path.is_file():
            raise SettingsError([f"practice {name}: {path} is missing; add it with `photobot practice add`."])
        values = {k: v for k, v in dotenv_values(path).items() if v is not None}
        return practice_values(self, name, values)

    def settings(self, name: str) -> Settings:
        """The practice's settings, each problem naming the practice (a host has several files to fix)."""
        if not self.exists(name):
            known = ", ".join(self.names()) or "none yet"
            raise SettingsError([f"there is no practice {name!r} in {self.root} (practices: {known})."])
        if self.is_removing(name):
            raise SettingsError(
                [f"practice {name} is being removed: finish with `photobot practice remove {name}`."]
            )
        try:
            return load_settings(self.values(name))
        except SettingsError as error:
            raise SettingsError([f"practice {name}: {problem}" for problem in error.problems]) from None


def practice_values(host: Host, name: str, values: Mapping[str, str]) -> dict[str, str]:
    """A practice's settings as the host gives them: its data directory is its folder of the host, whatever
    its file says; on PostgreSQL its tables are in its own schema, `practice_NAME`; in an object store its
    images are under its own prefix, `<prefix>/practices/NAME`; a SQLite database and a file vault are always
    in its folder."""
    kept = {key: value for key, value in values.items() if key not in HOST_OWNED}
    url = kept.pop(DATABASE_URL, "").strip()
    if url.startswith(POSTGRES_SCHEMES):
        kept[DATABASE_URL] = with_schema(url, practice_schema(name))
    vault = kept.pop(VAULT_URL, "").strip()
    if vault.startswith("s3://"):
        kept[VAULT_URL] = practice_vault_url(vault, name)
    return kept | {f"{PREFIX}DATA_DIR": str(host.practice_dir(name).absolute())}


def practice_schema(name: str) -> str:
    """The PostgreSQL schema that holds a practice's tables when the host's database is PostgreSQL."""
    return f"practice_{check_name(name)}"


def practice_vault_url(url: str, name: str) -> str:
    """The host's `s3://bucket/prefix` with the practice's own prefix under it: `prefix/practices/NAME`."""
    parts = urlsplit(url)
    prefix = "/".join(part for part in (parts.path.strip("/"), "practices", check_name(name)) if part)
    return urlunsplit(parts._replace(path="/" + prefix))


def with_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose `schema=` parameter (the one `storage.postgres` reads first) is `schema`."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def file_problems(values: Mapping[str, str]) -> list[str]:
    """What a practice's settings file must not say under a host (checked by `practice add`)."""
    problems = [
        f"{key} is set by the host (each practice's data is in HOST/practices/NAME): remove it from the file."
        for key in HOST_OWNED
        if values.get(key, "").strip()
    ]
    url = values.get(DATABASE_URL, "").strip()
    if url and not url.startswith(POSTGRES_SCHEMES):
        problems.append(
            f"{DATABASE_URL}: a practice's SQLite database is the file in its folder of the host; leave it out "
            "(or give the host's PostgreSQL URL)."
        )
    elif url and (any(key == "schema" for key, _ in parse_qsl(urlsplit(url).query)) or "search_path" in url):
        problems.append(
            f"{DATABASE_URL} must not choose a schema: the host keeps each practice's tables in practice_NAME."
        )
    vault = values.get(VAULT_URL, "").strip()
    if vault and not vault.startswith("s3://"):
        problems.append(
            f"{VAULT_URL}: a practice's file vault is the folder in its folder of the host; leave it out (or give "
            "the host's s3:// URL)."
        )
    key_file = values.get(f"{PREFIX}MASTER_KEY_FILE", "").strip()
    if key_file and not Path(key_file).expanduser().is_absolute():
        problems.append(f"{PREFIX}MASTER_KEY_FILE must be an absolute path under a host; it is {key_file!r}.")
    return problems


def isolation_problems(practices: Mapping[str, Settings]) -> dict[str, list[str]]:
    """For each practice that shares with another what must be its own, the sentences saying what.

    Its own bot account (one account in two practices would be one device, one store and one set of rooms),
    its own rooms (a room served by two bots lets one practice's staff command the other's bot), its own
    master key file, and its own listening ports. People may be staff of two practices (a locum): each
    practice's bot answers them only in that practice's rooms, with that practice's data.
    """
    problems: dict[str, list[str]] = {}

    def shared(what: str, owners: Mapping[object, list[str]]) -> None:
        for value, names in owners.items():
            if len(names) > 1:
                for name in names:
                    others = ", ".join(other for other in names if other != name)
                    problems.setdefault(name, []).append(f"{what} {value} is also practice {others}'s.")

    accounts: dict[object, list[str]] = {}
    rooms: dict[object, list[str]] = {}
    keys: dict[object, list[str]] = {}
    ports: dict[object, list[str]] = {}
    for name, settings in sorted(practices.items()):
        accounts.setdefault(settings.user_id, []).append(name)
        config = settings.practice
        staff_rooms = set(config.clinician_rooms) | ({config.admin_room} if config.admin_room else set())
        for room in sorted(staff_rooms):
            rooms.setdefault(room, []).append(name)
        keys.setdefault(settings.master_key_file.resolve(), []).append(name)
        listening = {settings.status_port, settings.web_chat.port if settings.web_chat.enabled else 0}
        for port in sorted(listening - {0}):
            ports.setdefault(port, []).append(name)
    _overlapping_prefixes(practices, problems)
    shared("the bot account", accounts)
    shared("the room", rooms)
    shared("the master key file", keys)
    shared("the port", ports)
    return problems


def _overlapping_prefixes(practices: Mapping[str, Settings], problems: dict[str, list[str]]) -> None:
    """Two practices' images in one bucket under prefixes one of which holds the other: one practice's vault
    would list (and could sweep as orphans) the other's objects."""
    located = sorted(
        (name, settings.vault)
        for name, settings in practices.items()
        if settings.vault is not None and settings.vault.is_s3
    )
    for index, (name, vault) in enumerate(located):
        for other, other_vault in located[index + 1 :]:
            if (vault.s3_endpoint, vault.bucket) != (other_vault.s3_endpoint, other_vault.bucket):
                continue
            mine, theirs = vault.prefix + "/", other_vault.prefix + "/"
            if (
                mine.startswith(theirs)
                or theirs.startswith(mine)
                or not vault.prefix
                or not other_vault.prefix
            ):
                where = f"s3://{vault.bucket}/{vault.prefix}"
                problems.setdefault(name, []).append(
                    f"the object store prefix {where} overlaps practice {other}'s."
                )
                problems.setdefault(other, []).append(
                    f"the object store prefix {where} overlaps practice {name}'s."
                )


@dataclass
class _Serving:
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class HostServer:
    """`photobot run` for a host: every practice's app in this process, started and stopped as practices
    are added and removed (the host directory is looked at every `poll` seconds). A practice that stops
    with an error is logged and started again after `retry` seconds; the others go on serving."""

    host: Host
    clock_for: Callable[[Settings], Clock]
    poll: float = POLL_SECONDS
    retry: float = RETRY_SECONDS
    _running: dict[str, _Serving] = field(default_factory=dict)
    _failed_at: dict[str, float] = field(default_factory=dict)
    _reported: dict[str, str] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._reap(loop.time())
                self._adjust(loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll)
        finally:
            for serving in self._running.values():
                serving.stop.set()
            await asyncio.gather(
                *(serving.task for serving in self._running.values()), return_exceptions=True
            )
            log.info("the host stopped (it was serving %d practice(s))", len(self._running))

    def _reap(self, now: float) -> None:
        for name, serving in list(self._running.items()):
            if not serving.task.done():
                continue
            del self._running[name]
            error = None if serving.task.cancelled() else serving.task.exception()
            if error is not None:
                self._failed_at[name] = now
                log.error(
                    "practice %s stopped: %s; it is started again in %.0f s",
                    name,
                    _one_line(error),
                    self.retry,
                    exc_info=not isinstance(error, _OPERATOR_ERRORS),
                )
            else:
                log.info("practice %s is no longer served", name)

    def _adjust(self, now: float) -> None:
        wanted = set(self.host.serving_names())
        for name in set(self._running) - wanted:
            log.info("practice %s is being removed: stopping it", name)
            self._running[name].stop.set()
        candidates: dict[str, Settings] = {}
        for name in sorted(wanted - set(self._running)):
            if name in self._failed_at and now - self._failed_at[name] < self.retry:
                continue
            try:
                candidates[name] = self.host.settings(name)
            except SettingsError as error:
                self._report(name, "; ".join(error.problems))
        together = {name: serving.settings for name, serving in self._running.items()} | candidates
        problems = isolation_problems(together)
        for name, settings in candidates.items():
            if name in problems:
                self._report(name, "not served: " + " ".join(problems[name]))
                continue
            self._reported.pop(name, None)
            self._start(name, settings)

    def _report(self, name: str, problem: str) -> None:
        """Log a practice's problem once (not at every look at the host), until it changes."""
        if self._reported.get(name) != problem:
            self._reported[name] = problem
            log.error("practice %s: %s", name, problem)

    def _start(self, name: str, settings: Settings) -> None:
        stop = asyncio.Event()
        context = contextvars.copy_context()
        context.run(PRACTICE.set, name)  # every log line of this practice's tasks names it
        task = asyncio.create_task(
            serve_practice(name, settings, self.clock_for(settings), stop),
            name=f"practice-{name}",
            context=context,
        )
        self._running[name] = _Serving(settings, stop, task)
        log.info("practice %s: starting (bot %s)", name, settings.user_id)


async def serve_practice(name: str, settings: Settings, clock: Clock, stop: asyncio.Event) -> None:
    """One practice, as `photobot run` serves a single one: on PostgreSQL its lease first (`bot.standby`: it
    waits while another process serves the practice), then its data directory locked, its app built."""
    async with held_lease(settings, stop) as held:
        if not held:
            return
        lock = await lock_data_dir(settings, f"the bot (photobot run, practice {name})", stop)
        if lock is None:
            return
        with lock:
            app = await open_app(settings, clock)
            try:
                await run(app, stop)
            finally:
                await app.close()


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


_OPERATOR_ERRORS = (
    SettingsError,
    NotInitialisedError,
    MasterKeyError,
    MatrixError,
    DataDirBusyError,
    DatabaseError,
)


def describe(host: Host, names: Iterable[str]) -> list[str]:
    """One line per practice for `photobot practice list`."""
    lines = []
    for name in names:
        if host.is_removing(name):
            lines.append(f"{name}: being removed (finish with `photobot practice remove {name}`)")
            continue
        if not host.env_file(name).is_file():
            lines.append(
                f"{name}: half made by an interrupted add (clear it with `photobot practice remove {name}`)"
            )
            continue
        try:
            settings = host.settings(name)
        except SettingsError as error:
            lines.append(f"{name}: cannot be served: {'; '.join(error.problems)}")
            continue
        initialised = settings.database_path.exists() and settings.master_key_file.exists()
        lines.append(
            f"{name}: {settings.practice.practice_name}, bot {settings.user_id}, data {settings.data_dir}"
            + ("" if initialised else " (not initialised: run `photobot init --practice " + name + "`)")
        )
    return lines
