"""Opening the bot's backends from its settings: the database by `PHOTOBOT_DATABASE_URL`.

Every place that needs the database (the bot, `photobot init`, the admin and maintenance commands, the
start-up checks) opens it here, so the engine is chosen in one place.
"""

from __future__ import annotations

from bot.settings import Settings
from bot.startup_checks import open_sqlite_database
from storage.postgres import PostgresDatabase
from storage.sql import Database


async def open_database(settings: Settings, *, schema: str | None = None) -> Database:
    """The configured database, migrated: the SQLite file (the default, under the data directory) or a
    PostgreSQL schema (`schema`, else the URL's `?schema=` or search_path, else public)."""
    if settings.database.engine == "postgresql":
        return await PostgresDatabase.open(settings.database.url, schema=schema)
    return await open_sqlite_database(settings.database_path)
