"""Destroying a practice's rows when the practice is removed from a host (`photobot practice remove`).

On PostgreSQL the practice's tables are its own schema (`practice_NAME`, bot.practices), dropped whole
(`DROP SCHEMA ... CASCADE`): PostgreSQL unlinks the tables' files at commit; what stays is in the WAL and in
base backups until they are recycled or expire, readable only with the master key destroyed before.
In an object store, every object under the practice's own prefix (`<prefix>/practices/NAME/`) is deleted.

Called after the practice's master key is destroyed (everything sealed or wrapped under it is unreadable
from then on, in every copy), and before its files are removed. Every table is dropped with SQLite's
`secure_delete` on, so the freed pages are overwritten with zeros, and the write-ahead log, which holds
earlier copies of pages, is checkpointed and truncated; then the database files are removed. A drop, not
a DELETE: the audit log's append-only triggers refuse deletes, and the practice's whole log goes with it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql as pgsql

from bot.durable_files import fsync_directory
from storage.postgres import CONNECT_TIMEOUT_SECONDS, _split_url
from storage.s3_vault import S3Location, new_client
from storage.sql import DatabaseError
from storage.vault import VaultConfigError, VaultUnavailableError

SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class DestroyedRows:
    tables: int
    rows: int


async def destroy_database(path: Path) -> DestroyedRows:
    """Drop every table of the SQLite database at `path` (zeroing the freed pages), truncate its WAL and
    remove its files. A database that is not there destroys nothing (a removal run again after a crash)."""
    if not path.exists():
        _remove_files(path)
        return DestroyedRows(0, 0)
    rows = 0
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        await connection.execute("PRAGMA secure_delete=ON")
        await connection.execute("PRAGMA busy_timeout=10000")
        async with connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ) as cursor:
            tables = [str(row[0]) for row in await cursor.fetchall()]
        await connection.execute("PRAGMA foreign_keys=OFF")
        await connection.execute("BEGIN IMMEDIATE")
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            async with connection.execute(f"SELECT count(*) FROM {quoted}") as cursor:  # noqa: S608 - a name from sqlite_master
                row = await cursor.fetchone()
            rows += int(row[0]) if row else 0
            await connection.execute(f"DROP TABLE {quoted}")
        await connection.execute("COMMIT")
        await connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await connection.close()
    _remove_files(path)
    return DestroyedRows(len(tables), rows)


def _remove_files(path: Path) -> None:
    for name in (path.name, *(path.name + suffix for suffix in SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            (path.parent / name).unlink()
    with contextlib.suppress(FileNotFoundError):
        fsync_directory(path.parent)


async def destroy_schema(url: str) -> DestroyedRows:
    """Drop the PostgreSQL schema the URL names (its `schema=`), with every table in it. Never `public`:
    a host's practices each have their own schema, and a URL without one is not a practice's."""
    kept, schema = _split_url(url, None)
    if schema == "public":
        raise DatabaseError("A practice's tables are in its own schema, never public: nothing was dropped.")
    try:
        connection = await psycopg.AsyncConnection.connect(
            kept, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="photobot"
        )
    except psycopg.OperationalError as error:
        raise DatabaseError(f"Cannot connect to the database to drop schema {schema}: {error}") from None
    rows = 0
    try:
        cursor = await connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (schema,),
        )
        tables = [str(row[0]) for row in await cursor.fetchall()]
        async with connection.transaction():
            for table in tables:
                counted = await connection.execute(
                    pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(schema, table))
                )
                row = await counted.fetchone()
                rows += int(row[0]) if row else 0
            await connection.execute(
                pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(schema))
            )
    finally:
        await connection.close()
    return DestroyedRows(len(tables), rows)


def destroy_objects(location: S3Location) -> int:
    """Delete every object under the location's prefix (never a whole bucket); the number deleted.
    Synchronous, like the vault: run it in a worker thread."""
    prefix = location.prefix.strip("/")
    if not prefix:
        raise VaultConfigError(
            "A practice's images are under its own prefix, never a bucket's top: nothing deleted."
        )
    client = new_client(location)
    deleted = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=prefix + "/"
        ):
            names = [entry["Key"] for entry in page.get("Contents", [])]
            for name in names:
                client.delete_object(Bucket=location.bucket, Key=name)
            deleted += len(names)
    except (ClientError, BotoCoreError) as error:
        raise VaultUnavailableError(
            f"the object store did not delete the practice's images ({type(error).__name__}); run the removal again"
        ) from None
    return deleted
