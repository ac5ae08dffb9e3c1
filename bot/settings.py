"""Settings: parsed once at start-up into an immutable, typed object.

One model for the configuration: `PracticeConfig` declares what a practice may change at run time (the
admin room's `!set`, `photobot admin set`), and `Settings.practice` holds the environment's values of those
same fields, the starting point that storage/practice_config.py lays the stored changes over. The rest of
`Settings` (where the homeserver and data are, logging, test switches) is fixed for the life of the process.

Only the entry point reads the environment; it hands the mapping to `load_settings`, which reports every
problem at once (an operator fixing a deployment should not have to restart ten times to find ten typos).
Secrets are wrapped in `Secret`, whose repr never shows the value, so a settings object can be logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.durations import format_duration, parse_duration
from bot.ids import RoomID, UserID, server_name
from bot.logs import LOG_FORMATS
from bot.reminders import WEEKDAYS, ReminderPolicy, parse_days, parse_hours, parse_time
from bot.texts import Texts
from bot.web_chat.settings import WebChatSettings

T = TypeVar("T")

PREFIX = "PHOTOBOT_"


@dataclass(frozen=True)
class Secret:
    """A value that must never appear in a repr, a log line or an exception message."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)" if self.value else "Secret(<empty>)"

    def __str__(self) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class DatabaseUrl:
    """`PHOTOBOT_DATABASE_URL`: `sqlite:///absolute/path` (the embedded default) or `postgresql://...`.
    Its repr and `shown` never carry a password, so settings can be logged."""

    url: str = field(repr=False)

    @property
    def engine(self) -> str:
        return "postgresql" if self.url.startswith(("postgresql://", "postgres://")) else "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.url.removeprefix("sqlite://")) if self.engine == "sqlite" else None

    @property
    def shown(self) -> str:
        if self.engine == "sqlite":
            return self.url
        parts = urlparse(self.url)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"  # no password, no query

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.shown!r})"

    def __str__(self) -> str:
        return self.shown


def _database_url(read: _Reader, data_dir: Path) -> DatabaseUrl:
    default = DatabaseUrl(f"sqlite://{data_dir / 'photobot.sqlite3'}")
    raw = read.raw("DATABASE_URL")
    if raw is None:
        return default
    given = DatabaseUrl(raw)
    if given.engine == "postgresql":
        try:
            urlparse(raw).port  # noqa: B018  # a port that is not a number raises here
        except ValueError:
            read.problems.append(f"{PREFIX}DATABASE_URL has a port that is not a number.")
            return default
        return given
    if not raw.startswith("sqlite:///"):
        read.problems.append(
            f"{PREFIX}DATABASE_URL must be sqlite:///absolute/path/to/file or postgresql://user@host/database."
        )
        return default
    return given


class SettingsError(Exception):
    """Every problem found in the configuration, each a sentence saying what to do."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("The configuration has problems:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class PracticeConfig:
    """What the practice may change at run time: who the clinicians and admins are, which rooms the bot
    serves, the practice's name, texts, limits and windows, and the homeserver-admin credential."""

    practice_name: str
    clinicians: frozenset[UserID]
    admins: frozenset[UserID]
    clinician_rooms: frozenset[RoomID]
    admin_room: RoomID | None
    max_photos: int
    max_photo_mb: int
    max_megapixels: int
    conversation_timeout: timedelta
    viewing_window: timedelta
    request_expiry: timedelta
    retention: timedelta
    retention_warning: timedelta
    retention_max_per_run: int
    texts: Mapping[str, str] = field(default_factory=dict)
    homeserver_admin_token: Secret = field(default_factory=lambda: Secret(""))
    # How long an earlier screening in the same chat travels with the next submission (a refusal too).
    screening_memory: timedelta = timedelta(days=30)
    # Staff who have no cross-signing identity: "refuse" (their commands are not obeyed and their devices
    # get no keys) or "allow" (every device of theirs is trusted on first use, as before cross-signing).
    staff_without_cross_signing: str = "refuse"

    @property
    def max_photo_bytes(self) -> int:
        return self.max_photo_mb * 1_000_000

    @property
    def max_pixels(self) -> int:
        return self.max_megapixels * 1_000_000

    def patient_texts(self) -> Texts:
        """The patient-facing texts: the built-in ones with the practice's changes laid over them."""
        return replace(Texts(), **dict(self.texts))

    def is_clinician(self, user_id: UserID) -> bool:
        return user_id in self.clinicians

    def is_admin(self, user_id: UserID) -> bool:
        return user_id in self.admins

    def staff_room_kind(self, room_id: RoomID) -> str | None:
        if room_id in self.clinician_rooms:
            return "clinician"
        if room_id == self.admin_room:
            return "admin"
        return None


@dataclass(frozen=True)
class Settings:
    homeserver_url: str
    user_id: UserID
    data_dir: Path
    master_key_file: Path
    password: Secret
    device_name: str
    allowed_servers: frozenset[str]
    practice: PracticeConfig  # the environment's values; the database's changes win (LiveConfig)
    test_mode: bool
    cpu_workers: int
    log_level: str
    log_format: str
    fault_points: frozenset[str]
    status_host: str = "127.0.0.1"
    status_port: int = 0  # 0: the metrics and health endpoint is off
    status_public: bool = False
    test_clock_file: Path | None = None  # test mode only: a file holding seconds to add to the clock
    practice_phone: str = ""  # printed on the poster when set
    opening_times: str = ""  # printed on the poster when set
    reminders: ReminderPolicy = field(default_factory=lambda: default_reminder_policy())  # noqa: PLW0108 (defined below)
    undo_window: timedelta = timedelta(minutes=2)  # a described view-then-delete's photos wait this long
    web_chat: WebChatSettings = field(default_factory=WebChatSettings)  # off unless its port is set
    database_url: DatabaseUrl | None = None  # None: the SQLite file under the data directory
    vault: VaultSettings | None = None  # PHOTOBOT_VAULT_URL and PHOTOBOT_S3_*; None: files in vault_dir

    @property
    def store_dir(self) -> Path:
        """nio's encryption store: its own directory, 0700."""
        return self.data_dir / "nio-store"

    @property
    def vault_dir(self) -> Path:
        """The file vault's directory: PHOTOBOT_VAULT_URL's path if it is file://, else the data directory's."""
        if self.vault is not None and self.vault.directory is not None:
            return self.vault.directory
        return self.data_dir / "vault"

    @property
    def database(self) -> DatabaseUrl:
        """Where the bot's state is: the configured URL, or the SQLite file under the data directory."""
        return self.database_url or DatabaseUrl(f"sqlite://{self.data_dir / 'photobot.sqlite3'}")

    @property
    def database_path(self) -> Path:
        """The SQLite file (the configured one, or the default under the data directory). With PostgreSQL
        configured there is no file: this is where one would be, which never exists."""
        return self.database.sqlite_path or self.data_dir / "photobot.sqlite3"

    @property
    def server_name(self) -> str:
        return server_name(self.user_id)


class _Reader:
    """Reads typed values from the environment mapping, collecting problems instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(PREFIX + name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str | None = None) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                self.problems.append(f"{PREFIX}{name} is missing: see config.example.env.")
                return ""
            return default
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            self.problems.append(f"{PREFIX}{name} must be {expected}; it is {value!r}.")
            return default

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        def parse(value: str) -> int:
            if not value.isascii() or not value.isdigit():
                raise ValueError(value)
            number = int(value)
            if not minimum <= number <= maximum:
                raise ValueError(value)
            return number

        return self.parsed(name, default, parse, f"a whole number from {minimum} to {maximum}")

    def duration(self, name: str, default: timedelta, minimum: timedelta, maximum: timedelta) -> timedelta:
        def parse(value: str) -> timedelta:
            return parse_duration(value, minimum=minimum, maximum=maximum)

        expected = (
            f"a duration from {format_duration(minimum)} to {format_duration(maximum)}, like 30m or 30d"
        )
        return self.parsed(name, default, parse, expected)

    def flag(self, name: str, default: bool) -> bool:
        def parse(value: str) -> bool:
            lowered = value.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)

        return self.parsed(name, default, parse, "true or false")

    def items(self, name: str) -> list[str]:
        value = self.raw(name)
        if value is None:
            return []
        return [item.strip() for item in value.split(",") if item.strip()]

    def user_ids(self, name: str) -> frozenset[UserID]:
        users = []
        for item in self.items(name):
            if not is_user_id(item):
                self.problems.append(f"{PREFIX}{name}: {item!r} is not a Matrix user id like @name:server.")
            else:
                users.append(UserID(item))
        return frozenset(users)

    def room_ids(self, name: str) -> frozenset[RoomID]:
        rooms = []
        for item in self.items(name):
            # Room version 12 ids have no server part (!abc...); older ones do (!abc:server).
            if not (item.startswith("!") and len(item) > 1 and " " not in item):
                self.problems.append(f"{PREFIX}{name}: {item!r} is not a Matrix room id (it starts with !).")
            else:
                rooms.append(RoomID(item))
        return frozenset(rooms)


def is_user_id(value: str) -> bool:
    """`@name:server`: the shape of a Matrix user id (the homeserver decides whether it exists)."""
    localpart, sep, server = value.partition(":")
    return value.startswith("@") and bool(sep) and len(localpart) > 1 and bool(server) and " " not in value


def _conversation_timeout(read: _Reader) -> timedelta:
    """Minutes in production; tests may shorten it to seconds, but only in test mode."""
    minutes = read.integer("CONVERSATION_TIMEOUT_MINUTES", 24 * 60, 5, 30 * 24 * 60)
    seconds = read.integer("TEST_CONVERSATION_TIMEOUT_SECONDS", 0, 0, 3600)
    if seconds and read.flag("TEST_MODE", False):
        return timedelta(seconds=seconds)
    return timedelta(minutes=minutes)


def _test_clock_file(read: _Reader) -> Path | None:
    raw = read.raw("TEST_CLOCK_FILE")
    if raw is None:
        return None
    if not read.flag("TEST_MODE", False):
        read.problems.append(f"{PREFIX}TEST_CLOCK_FILE is for tests only: it needs {PREFIX}TEST_MODE=true.")
        return None
    return Path(raw).absolute()


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse the whole configuration; raise SettingsError listing every problem at once."""
    read = _Reader(env)
    homeserver_url = read.text("HOMESERVER_URL").rstrip("/")
    if homeserver_url and urlparse(homeserver_url).scheme not in {"http", "https"}:
        read.problems.append(
            f"{PREFIX}HOMESERVER_URL must start with https:// (or http:// for a local test)."
        )
    user_id = read.text("USER_ID")
    if user_id and not is_user_id(user_id):
        read.problems.append(f"{PREFIX}USER_ID must be the bot's Matrix user id, like @photobot:example.org.")
    data_dir = Path(read.text("DATA_DIR", "./data")).expanduser().absolute()
    master_key_file = Path(read.text("MASTER_KEY_FILE", str(data_dir / "master.key"))).expanduser().absolute()
    bot_server = server_name(UserID(user_id)) if user_id else ""
    allowed = frozenset(read.items("ALLOWED_SERVERS")) or frozenset({bot_server} - {""})
    admin_rooms = read.room_ids("ADMIN_ROOM")
    if len(admin_rooms) > 1:
        read.problems.append(f"{PREFIX}ADMIN_ROOM takes one room id.")
    log_format = read.text("LOG_FORMAT", "text").lower()
    if log_format not in LOG_FORMATS:
        read.problems.append(f"{PREFIX}LOG_FORMAT must be text or json.")
    log_level = read.text("LOG_LEVEL", "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        read.problems.append(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR.")
    settings = Settings(
        homeserver_url=homeserver_url,
        user_id=UserID(user_id),
        data_dir=data_dir,
        master_key_file=master_key_file,
        password=Secret(read.raw("PASSWORD") or ""),
        device_name=read.text("DEVICE_NAME", "GP Photo Bot"),
        allowed_servers=allowed,
        practice=PracticeConfig(
            practice_name=read.text("PRACTICE_NAME", "your GP practice"),
            clinicians=read.user_ids("CLINICIANS"),
            admins=read.user_ids("ADMINS"),
            clinician_rooms=read.room_ids("CLINICIAN_ROOMS"),
            admin_room=next(iter(admin_rooms), None),
            max_photos=read.integer("MAX_PHOTOS", 5, 1, 20),
            max_photo_mb=read.integer("MAX_PHOTO_MB", 20, 1, 100),
            max_megapixels=read.integer("MAX_MEGAPIXELS", 50, 1, 200),
            conversation_timeout=_conversation_timeout(read),
            viewing_window=read.duration(
                "VIEWING_WINDOW", timedelta(minutes=30), timedelta(seconds=10), timedelta(days=2)
            ),
            request_expiry=read.duration(
                "REQUEST_EXPIRY", timedelta(days=3), timedelta(minutes=5), timedelta(days=30)
            ),
            retention=read.duration("RETENTION", timedelta(days=30), timedelta(days=1), timedelta(days=3650)),
            retention_warning=read.duration(
                "RETENTION_WARNING", timedelta(days=7), timedelta(hours=1), timedelta(days=365)
            ),
            retention_max_per_run=read.integer("RETENTION_MAX_PER_RUN", 20, 1, 1000),
            screening_memory=read.duration(
                "SCREENING_MEMORY", timedelta(days=30), timedelta(hours=1), timedelta(days=365)
            ),
            homeserver_admin_token=Secret(read.raw("HOMESERVER_ADMIN_TOKEN") or ""),
        ),
        test_mode=read.flag("TEST_MODE", False),
        cpu_workers=read.integer("CPU_WORKERS", 2, 1, 64),
        log_level=log_level,
        log_format=log_format,
        fault_points=frozenset(read.items("FAULT_POINTS")),
        status_host=read.text("STATUS_HOST", "127.0.0.1"),
        status_port=read.integer("STATUS_PORT", 0, 0, 65535),
        status_public=read.flag("STATUS_PUBLIC", False),
        test_clock_file=_test_clock_file(read),
        practice_phone=read.text("PRACTICE_PHONE", ""),
        opening_times=read.text("OPENING_TIMES", ""),
        reminders=_reminder_policy(read),
        undo_window=read.duration(
            "UNDO_WINDOW", timedelta(minutes=2), timedelta(seconds=10), timedelta(hours=1)
        ),
        web_chat=_web_chat(read, homeserver_url),
        database_url=_database_url(read, data_dir),
        vault=_vault(read, data_dir),
    )
    if read.problems:
        raise SettingsError(read.problems)
    return settings


def default_reminder_policy() -> ReminderPolicy:
    return ReminderPolicy(
        after=timedelta(hours=2),
        days=WEEKDAYS,
        start=time(8),
        end=time(18, 30),
        digest_at=time(8),
        zone=ZoneInfo("Europe/London"),
    )


def _reminder_policy(read: _Reader) -> ReminderPolicy:
    """The practice's time zone, working days and hours, reminder delay and digest time."""
    default = default_reminder_policy()
    zone_name = read.text("TIME_ZONE", "Europe/London")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        read.problems.append(
            f"{PREFIX}TIME_ZONE must be a time zone like Europe/London (if it is one, the system's time zone"
            " data is missing: install the tzdata package)."
        )
        zone = default.zone
    days = parse_days(read.text("WORKING_DAYS", "mon-fri"))
    if days is None:
        read.problems.append(f"{PREFIX}WORKING_DAYS must be days like mon-fri or mon,tue,thu.")
    hours = parse_hours(read.text("WORKING_HOURS", "08:00-18:30"))
    if hours is None:
        read.problems.append(f"{PREFIX}WORKING_HOURS must be like 08:00-18:30 (00:00-24:00 for all day).")
    digest_text = read.text("DIGEST_AT", "08:00").lower()
    digest_at = None if digest_text in {"", "off", "none"} else parse_time(digest_text)
    if digest_at is None and digest_text not in {"", "off", "none"}:
        read.problems.append(f"{PREFIX}DIGEST_AT must be a time like 08:00, or off.")
    return ReminderPolicy(
        after=read.duration("REMINDER_AFTER", default.after, timedelta(minutes=5), timedelta(days=14)),
        days=days or default.days,
        start=hours[0] if hours else default.start,
        end=hours[1] if hours else default.end,
        digest_at=digest_at,
        zone=zone,
    )


def _web_chat(read: _Reader, homeserver_url: str) -> WebChatSettings:
    """The web chat (issue 18): off unless PHOTOBOT_WEB_CHAT_PORT is set, and then it needs the page's URL."""
    port = read.integer("WEB_CHAT_PORT", 0, 0, 65535)
    url = read.text("WEB_CHAT_URL", "")
    if port and urlparse(url).scheme not in {"http", "https"}:
        read.problems.append(
            f"{PREFIX}WEB_CHAT_URL must be the page's public address, like https://photos.example.org/, when "
            f"{PREFIX}WEB_CHAT_PORT is set."
        )
    public_homeserver = read.text("WEB_CHAT_HOMESERVER_URL", homeserver_url).rstrip("/")
    test_mode = read.flag("TEST_MODE", False)
    minimum_period = timedelta(minutes=1) if test_mode else timedelta(days=1)
    return WebChatSettings(
        url=url,
        host=read.text("WEB_CHAT_HOST", "127.0.0.1"),
        port=port,
        public=read.flag("WEB_CHAT_PUBLIC", False),
        homeserver_url=public_homeserver,
        contact=read.text("WEB_CHAT_CONTACT", "Please phone the practice instead."),
        account_period=read.duration(
            "WEB_CHAT_ACCOUNT_PERIOD", timedelta(days=14), minimum_period, timedelta(days=90)
        ),
        end_grace=read.duration(
            "WEB_CHAT_END_GRACE",
            timedelta(minutes=30),
            timedelta(seconds=1) if test_mode else timedelta(minutes=1),
            timedelta(days=1),
        ),
        poster_link_life=read.duration(
            "WEB_CHAT_POSTER_LINK_LIFE", timedelta(minutes=10), timedelta(minutes=1), timedelta(hours=1)
        ),
        poster_per_address=read.integer("WEB_CHAT_POSTER_PER_ADDRESS", 5, 1, 1000),
        poster_per_day=read.integer("WEB_CHAT_POSTER_PER_DAY", 200, 1, 100_000),
        trust_proxy=read.flag("WEB_CHAT_TRUST_PROXY", False),
        sweep_every=timedelta(seconds=2) if test_mode else timedelta(minutes=1),
    )


@dataclass(frozen=True)
class VaultSettings:
    """Where the encrypted images live: PHOTOBOT_VAULT_URL, and the object store's PHOTOBOT_S3_* settings.

    `directory` is set for ``file:///path``; `bucket` (with `prefix` and the S3 fields) for ``s3://bucket/prefix``.
    """

    url: str
    directory: Path | None = None
    bucket: str = ""
    prefix: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: Secret = field(default_factory=lambda: Secret(""))
    s3_region: str = "us-east-1"

    @property
    def is_s3(self) -> bool:
        return bool(self.bucket)


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _vault(read: _Reader, data_dir: Path) -> VaultSettings:
    """PHOTOBOT_VAULT_URL: file:///path (default: the data directory's vault) or s3://bucket/prefix."""
    default = (data_dir / "vault").as_uri()
    url = read.text("VAULT_URL", default)
    parsed = urlparse(url)
    s3_names = ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION")
    if parsed.scheme == "file":
        if parsed.netloc not in {"", "localhost"} or not parsed.path.startswith("/"):
            read.problems.append(f"{PREFIX}VAULT_URL must be file:///absolute/path or s3://bucket/prefix.")
        if any(read.raw(name) for name in s3_names):
            read.problems.append(
                f"{PREFIX}S3_* settings are set but {PREFIX}VAULT_URL is not s3://: set it to s3://bucket/prefix"
                " or remove them."
            )
        return VaultSettings(url=url, directory=Path(unquote(parsed.path)))
    if parsed.scheme != "s3":
        read.problems.append(f"{PREFIX}VAULT_URL must be file:///absolute/path or s3://bucket/prefix.")
        return VaultSettings(url=default, directory=data_dir / "vault")
    bucket = parsed.netloc
    if not bucket:
        read.problems.append(f"{PREFIX}VAULT_URL names no bucket: write it as s3://bucket/prefix.")
    elif not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        read.problems.append(
            f"{PREFIX}VAULT_URL: {bucket!r} is not a bucket name (3-63 of a-z, 0-9, '.' and '-')."
        )
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        read.problems.append(
            f"{PREFIX}VAULT_URL must be just s3://bucket/prefix: put the keys in {PREFIX}S3_ACCESS_KEY and"
            f" {PREFIX}S3_SECRET_KEY."
        )
    prefix = parsed.path.strip("/")
    if prefix and not all(
        part and re.fullmatch(r"[A-Za-z0-9_.-]+", part) and part not in {".", ".."}
        for part in prefix.split("/")
    ):
        read.problems.append(
            f"{PREFIX}VAULT_URL's prefix must be names of A-Z, a-z, 0-9, '_', '.' and '-' separated by '/'."
        )
    endpoint = read.raw("S3_ENDPOINT") or ""
    endpoint_url = urlparse(endpoint)
    if not endpoint:
        read.problems.append(
            f"{PREFIX}S3_ENDPOINT is missing: the object store's address, like https://s3.example.org, is"
            f" needed with an s3:// {PREFIX}VAULT_URL."
        )
    elif endpoint_url.scheme not in {"http", "https"} or not endpoint_url.hostname:
        read.problems.append(f"{PREFIX}S3_ENDPOINT must be an address like https://s3.example.org.")
    elif endpoint_url.username or endpoint_url.password:
        read.problems.append(
            f"{PREFIX}S3_ENDPOINT must not hold credentials: put them in {PREFIX}S3_ACCESS_KEY and"
            f" {PREFIX}S3_SECRET_KEY."
        )
    access_key = read.raw("S3_ACCESS_KEY") or ""
    secret_key = read.raw("S3_SECRET_KEY") or ""
    for name, value in (("S3_ACCESS_KEY", access_key), ("S3_SECRET_KEY", secret_key)):
        if not value:
            read.problems.append(f"{PREFIX}{name} is missing: it is needed with an s3:// {PREFIX}VAULT_URL.")
    return VaultSettings(
        url=url,
        bucket=bucket,
        prefix=prefix,
        s3_endpoint=endpoint.rstrip("/"),
        s3_access_key=access_key,
        s3_secret_key=Secret(secret_key),
        s3_region=read.text("S3_REGION", "us-east-1"),
    )
