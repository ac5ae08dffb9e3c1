"""The project's own storage for a handler unit test: a real database (SQLite in a temporary directory, or a
fresh PostgreSQL database of the suite's server) and a keyring (the storage is not faked; only Matrix is,
see `tests.support.fake_matrix`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.clock import Clock, SystemClock
from bot.keyring import Keyring, MasterKey, Sealer
from bot.metrics import BotGaugeSources, BotMetrics, Metrics
from storage.database import SqliteDatabase
from storage.postgres import PostgresDatabase
from storage.sql import Database

# Where a test's database comes from: a migrated SQLite file to copy, or a fresh PostgreSQL database's URL.
StorageTemplate = Path | str


@dataclass(frozen=True)
class Storage:
    database: Database
    keyring: Keyring
    sealer: Sealer
    clock: Clock
    directory: Path


async def migrated_template(directory: Path) -> Path:
    """An empty database with every migration applied, to copy for each test (migrating takes ~0.15 s)."""
    path = directory / "template.sqlite3"
    database = await SqliteDatabase.open(path)
    await database.close()
    return path


@asynccontextmanager
async def real_storage(
    directory: Path, *, template: StorageTemplate | None = None, clock: Clock | None = None
) -> AsyncIterator[Storage]:
    """A migrated database (a copy of the SQLite `template` if given, or the PostgreSQL database at the
    URL `template`) and a fresh master key under `directory`, closed afterwards."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyring = Keyring(MasterKey.generate())
    database: Database
    if isinstance(template, str):
        database = await PostgresDatabase.open(template)
    else:
        if template is not None:
            shutil.copyfile(template, directory / "bot.sqlite3")
            (directory / "bot.sqlite3").chmod(0o600)
        database = await SqliteDatabase.open(directory / "bot.sqlite3")
    try:
        yield Storage(database, keyring, Sealer(keyring), clock or SystemClock(), directory)
    finally:
        await database.close()


async def _no_counts() -> Mapping[str, float]:
    return {}


async def _zero() -> float:
    return 0.0


def unscraped_metrics() -> BotMetrics:
    """The bot's metric set in a registry of its own (a unit test never serves a scrape)."""
    return BotMetrics.create(
        Metrics(prefix="photobot_"), BotGaugeSources(_no_counts, _no_counts, _zero, _zero)
    )
