"""Opening the bot's backends from its settings: the database by `PHOTOBOT_DATABASE_URL`, the image vault
by `PHOTOBOT_VAULT_URL`.

Every place that needs the database (the bot, `photobot init`, the admin and maintenance commands, the
start-up checks) opens it here, so the engine is chosen in one place; so does every place that builds the
running bot's vault.
"""

from __future__ import annotations

from bot.keyring import Keyring
from bot.settings import Settings
from bot.startup_checks import open_sqlite_database
from storage.postgres import PostgresDatabase
from storage.s3_vault import S3Location, S3Vault
from storage.sql import Database
from storage.vault import ImageVault, Vault


async def open_database(settings: Settings, *, schema: str | None = None) -> Database:
    """The configured database, migrated: the SQLite file (the default, under the data directory) or a
    PostgreSQL schema (`schema`, else the URL's `?schema=` or search_path, else public)."""
    if settings.database.engine == "postgresql":
        return await PostgresDatabase.open(settings.database.url, schema=schema)
    return await open_sqlite_database(settings.database_path)


def s3_location(settings: Settings) -> S3Location | None:
    """Where PHOTOBOT_VAULT_URL=s3://... points, with the PHOTOBOT_S3_* credentials; None for a file vault."""
    vault = settings.vault
    if vault is None or not vault.is_s3:
        return None
    return S3Location(
        bucket=vault.bucket,
        prefix=vault.prefix,
        endpoint=vault.s3_endpoint,
        access_key=vault.s3_access_key,
        secret_key=vault.s3_secret_key.value,
        region=vault.s3_region,
    )


def open_vault(settings: Settings, keyring: Keyring) -> ImageVault:
    """The image vault PHOTOBOT_VAULT_URL names: files in a directory (the default), or an S3 bucket."""
    location = s3_location(settings)
    if location is not None:
        return S3Vault(location, keyring)
    return Vault(settings.vault_dir, keyring)
