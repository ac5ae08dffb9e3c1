"""The practice's configuration at run time: who the clinicians and admins are, which rooms the bot serves,
the practice's name, texts, limits and windows, and the homeserver-admin credential.

The environment gives the starting values; an admin changes them at run time (admin room or CLI), and a
value changed at run time is kept in the database and wins over the environment from then on, so a
restart never brings a revoked clinician back. `LiveConfig.refresh` re-reads the table (a dozen rows) at the
start of every sync batch and after every change, so a revocation takes effect with the next event.

The fields themselves are declared once, in `bot.settings.PracticeConfig` (re-exported here for the
modules that read the configuration in force); the environment's values are `Settings.practice`.
Each setting is declared once in `SETTINGS`, with how to parse it and what it means; admin commands, the
CLI and `photobot config show` all go through that table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from bot.clock import Clock, iso
from bot.durations import format_duration, parse_duration
from bot.ids import RoomID, UserID
from bot.keyring import Sealer
from bot.settings import PracticeConfig, Secret, Settings, is_user_id
from storage.sql import Connection, Database

__all__ = [
    "ID_SETS",
    "SETTINGS",
    "ConfigError",
    "ConfigRepository",
    "LiveConfig",
    "PracticeConfig",
    "Setting",
    "apply_overrides",
    "defaults_from",
    "parse_room_id",
    "parse_user_id",
    "show_value",
    "stored_form",
]


class ConfigError(ValueError):
    """A value an admin gave that cannot be used; the message says what would work."""


def defaults_from(settings: Settings) -> PracticeConfig:
    """The configuration the environment gives, before any change made at run time."""
    return settings.practice


# ---- parsing admins' values ----------------------------------------------------------------------------


def _whole(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isascii() or not text.isdigit() or not minimum <= int(text) <= maximum:
            raise ConfigError(f"give a whole number from {minimum} to {maximum}.")
        return int(text)

    return parse


def _duration(minimum: timedelta, maximum: timedelta) -> Callable[[str], timedelta]:
    def parse(text: str) -> timedelta:
        try:
            return parse_duration(text, minimum=minimum, maximum=maximum)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    return parse


def _name(text: str) -> str:
    name = " ".join(text.split())
    if not 2 <= len(name) <= 80:
        raise ConfigError("give a name of 2 to 80 characters.")
    return name


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ConfigError(f"give one of: {', '.join(choices)}.")
        return value

    return parse


def _token(text: str) -> Secret:
    token = text.strip()
    if token in {"", "none", "-"}:
        return Secret("")
    if not re.fullmatch(r"[A-Za-z0-9_.~+/=-]{16,512}", token):
        raise ConfigError("that does not look like an access token.")
    return Secret(token)


def parse_user_id(text: str) -> UserID:
    if not is_user_id(text.strip()):
        raise ConfigError(f"{text!r} is not a Matrix user id like @name:server.")
    return UserID(text.strip())


def parse_room_id(text: str) -> RoomID:
    value = text.strip()
    if not (value.startswith("!") and len(value) > 1 and " " not in value):
        raise ConfigError(f"{text!r} is not a room id (it starts with !; find it in the room's settings).")
    return RoomID(value)


@dataclass(frozen=True)
class Setting:
    """A single-valued setting an admin can change with `!set <name> <value>`."""

    name: str
    attribute: str
    parse: Callable[[str], Any]
    meaning: str
    secret: bool = False


SETTINGS: dict[str, Setting] = {
    setting.name: setting
    for setting in (
        Setting("practice_name", "practice_name", _name, "the name patients see"),
        Setting("max_photos", "max_photos", _whole(1, 20), "photos one patient may send in one request"),
        Setting("max_photo_mb", "max_photo_mb", _whole(1, 100), "the largest photo accepted, in MB"),
        Setting(
            "max_megapixels", "max_megapixels", _whole(1, 200), "the largest photo accepted, in megapixels"
        ),
        Setting(
            "conversation_timeout",
            "conversation_timeout",
            _duration(timedelta(minutes=5), timedelta(days=30)),
            "an unfinished conversation expires after this much silence",
        ),
        Setting(
            "viewing_window",
            "viewing_window",
            _duration(timedelta(seconds=10), timedelta(days=2)),
            "how long a viewed photo stays in the clinician room",
        ),
        Setting(
            "request_expiry",
            "request_expiry",
            _duration(timedelta(minutes=5), timedelta(days=30)),
            "how long a photo request stays open",
        ),
        Setting(
            "retention",
            "retention",
            _duration(timedelta(days=1), timedelta(days=3650)),
            "unreviewed submissions are destroyed after this long",
        ),
        Setting(
            "retention_warning",
            "retention_warning",
            _duration(timedelta(hours=1), timedelta(days=365)),
            "clinicians are warned this long before",
        ),
        Setting(
            "retention_max_per_run",
            "retention_max_per_run",
            _whole(1, 1000),
            "most submissions the retention job destroys in one run",
        ),
        Setting(
            "staff_without_cross_signing",
            "staff_without_cross_signing",
            _choice("refuse", "allow"),
            "staff with no cross-signing identity: refuse their commands and keys, or allow every device",
        ),
        Setting(
            "homeserver_admin_token",
            "homeserver_admin_token",
            _token,
            "homeserver-admin access token for deleting uploads ('none' to remove)",
            secret=True,
        ),
    )
}

# Sets of ids: changed with add/remove, stored as sorted JSON lists.
ID_SETS: dict[str, Callable[[str], str]] = {
    "clinicians": parse_user_id,
    "admins": parse_user_id,
    "clinician_rooms": parse_room_id,
}


def show_value(config: PracticeConfig, name: str) -> str:
    """A setting's value for `!config`; a secret only says whether it is set."""
    value = getattr(config, SETTINGS[name].attribute if name in SETTINGS else name)
    if isinstance(value, Secret):
        return "set" if value else "not set"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) or "(none)"
    return "(none)" if value is None else str(value)


# ---- storage --------------------------------------------------------------------------------------------


class ConfigRepository:
    """The run-time changes, one row per setting; the admin credential sealed."""

    def __init__(self, database: Database, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock

    async def overrides(self) -> dict[str, Any]:
        async with self._db.connection.execute("SELECT key, value, sealed FROM practice_config") as cursor:
            rows = await cursor.fetchall()
        values: dict[str, Any] = {}
        for row in rows:
            raw = bytes(row["value"])
            if row["sealed"]:
                raw = self._sealer.open(raw, context=f"practice_config:{row['key']}")
            values[str(row["key"])] = json.loads(raw)
        return values

    async def put(self, db: Connection, key: str, value: Any, *, by: str, sealed: bool = False) -> None:
        raw = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
        stored = self._sealer.seal(raw, context=f"practice_config:{key}") if sealed else raw
        await db.execute(
            "INSERT INTO practice_config (key, value, sealed, updated_by, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, sealed = excluded.sealed,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (key, stored, int(sealed), by, iso(self._clock.now())),
        )


def apply_overrides(defaults: PracticeConfig, overrides: Mapping[str, Any]) -> PracticeConfig:
    """The environment's configuration with the run-time changes laid over it. A stored value that no
    longer parses is ignored (the environment's value stands) rather than stopping the bot."""
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        try:
            if key in SETTINGS:
                setting = SETTINGS[key]
                changes[setting.attribute] = setting.parse(str(value))
            elif key in ID_SETS and isinstance(value, list):
                changes[key] = frozenset(ID_SETS[key](str(item)) for item in value)
            elif key == "admin_room":
                changes[key] = parse_room_id(str(value)) if value else None
            elif key == "texts" and isinstance(value, dict):
                texts = {str(name): str(text) for name, text in value.items()}
                replace(defaults, texts=texts).patient_texts()  # the model validates every template
                changes[key] = texts
        except (ConfigError, TypeError, ValueError):
            continue
    known = {item.name for item in fields(PracticeConfig)}
    return replace(defaults, **{key: value for key, value in changes.items() if key in known})


def stored_form(config: PracticeConfig, key: str) -> Any:
    """What `ConfigRepository.put` stores for a setting's current value."""
    value = getattr(config, SETTINGS[key].attribute if key in SETTINGS else key)
    if isinstance(value, Secret):
        return value.value
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


class LiveConfig:
    """The configuration in force: the environment's defaults with the stored changes laid over them."""

    def __init__(self, defaults: PracticeConfig, repository: ConfigRepository) -> None:
        self.defaults = defaults
        self.repository = repository
        self._current = defaults
        self._listeners: list[Callable[[PracticeConfig], None]] = []

    @property
    def current(self) -> PracticeConfig:
        return self._current

    def on_change(self, listener: Callable[[PracticeConfig], None]) -> None:
        self._listeners.append(listener)

    async def refresh(self) -> PracticeConfig:
        overrides = await self.repository.overrides()
        updated = apply_overrides(self.defaults, overrides)
        if updated != self._current:
            self._current = updated
            for listener in self._listeners:
                listener(updated)
        return updated
