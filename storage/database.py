"""The SQLite database: one connection, durable settings, ordered migrations.

Pragmas, and why:
- `journal_mode=WAL`: readers never block the writer; thousands of small transactions per second.
- `synchronous=FULL`: a committed photo or reply survives a power cut, not just a crash.
- `foreign_keys=ON`: a photo row can never outlive its submission by accident.
- `secure_delete=ON`: deleted rows (wrapped image keys, sealed NHS numbers) are overwritten with zeros, so
  crypto-shredding is real; `shred_checkpoint()` then truncates the WAL, where old pages also linger.
- `busy_timeout`: another process holding a lock (a backup, the CLI) makes us wait, not fail.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from storage.migrations import MIGRATIONS, Migration
from storage.sql import DatabaseBusyError, DatabaseError, Dialect, newer_schema_error

__all__ = ["Database", "DatabaseBusyError", "DatabaseError", "SqliteDatabase", "database_busy"]


@dataclass
class SqliteDatabase:
    """An open SQLite database (it satisfies `storage.sql.Database`). Create it with
    `SqliteDatabase.open(path)`; close it with `close()`.

    One connection serves the whole bot; transactions on it are taken one at a time (`_write_lock`), so
    two rooms handled concurrently never interleave their writes. Repositories that write inside a
    caller's transaction take the connection the transaction yields, never start their own.
    """

    connection: aiosqlite.Connection
    path: Path
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def open(cls, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> SqliteDatabase:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file 0600 ourselves: sqlite would honour the umask, which may be world-readable.
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        database = cls(connection, path)
        try:
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=FULL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",
                "PRAGMA busy_timeout=10000",
            ):
                await connection.execute(pragma)
            await database._migrate(migrations)
        except BaseException:
            await connection.close()
            raise
        for suffix in ("-wal", "-shm"):
            sidecar = path.with_name(path.name + suffix)
            if sidecar.exists():
                sidecar.chmod(0o600)
        return database

    @property
    def dialect(self) -> Dialect:
        return "sqlite"

    @property
    def description(self) -> str:
        return str(self.path)

    async def close(self) -> None:
        await self.connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises. Everything in it lands or nothing."""
        async with self._write_lock:
            await self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                await self.connection.execute("ROLLBACK")
                raise
            await self.connection.execute("COMMIT")

    async def shred_checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it, so deleted pages do not linger in the WAL."""
        async with self._write_lock:
            await self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def integrity_check(self) -> list[str]:
        """SQLite's own check of every page (PRAGMA quick_check): ["ok"], or the problems it found."""
        try:
            async with self.connection.execute("PRAGMA quick_check") as cursor:
                return [str(row[0]) for row in await cursor.fetchall()]
        except sqlite3.DatabaseError as error:
            return [str(error)]

    async def answers(self) -> bool:
        """Whether the database answers a trivial query (the health endpoint's probe)."""
        async with self.connection.execute("SELECT 1") as cursor:
            row = await cursor.fetchone()
        return row is not None and row[0] == 1

    async def schema_version(self) -> int:
        async with self.connection.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        latest = migrations[-1].version if migrations else 0
        current = await self.schema_version()
        if current > latest:
            raise newer_schema_error(str(self.path), current, latest)
        for migration in migrations:
            if migration.version <= current:
                continue
            async with self.transaction() as db:
                for statement in split_statements(migration.sql):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {migration.version:d}")


# The SQLite engine under its old name, for callers that open a file directly (tests, backups).
Database = SqliteDatabase


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements; a semicolon inside a comment or literal does not split."""
    statements: list[str] = []
    current = ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                statements.append(current.strip())
            current = ""
    return statements


def database_busy(error: sqlite3.OperationalError) -> bool:
    """SQLite gave up waiting for a lock another process holds (after the connection's busy timeout)."""
    return (error.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
