"""What every repository and caller types against: a database, the connection a transaction yields, its
cursors and rows. Two engines satisfy it: SQLite (`storage.database.SqliteDatabase`, the embedded default,
whose aiosqlite connection already has this shape) and PostgreSQL (`storage.postgres.PostgresDatabase`,
whose adapter gives psycopg the same shape).

The surface is the subset the repositories use, and no more:
- `connection.execute(sql, params)`: awaited for a cursor, or `async with ... as cursor`;
- `cursor.fetchone()`, `cursor.fetchall()`, `cursor.rowcount`;
- rows read by column name (`row["photo_id"]`) or position (`row[0]`).

Statements are written once, in SQLite's dialect with `?` placeholders; the PostgreSQL adapter translates
the placeholders. Where a statement cannot be the same on both, the repository asks `database.dialect`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class Row(Protocol):
    """A result row: `row["name"]` or `row[0]`; `keys()` gives the column names in order."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> Iterable[Row]: ...


class Executed(Protocol):
    """What `execute` returns: awaited, a cursor; or used as `async with ... as cursor`."""

    def __await__(self) -> Generator[Any, None, Cursor]: ...

    async def __aenter__(self) -> Cursor: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None: ...


class Connection(Protocol):
    """The connection a transaction yields (and `Database.connection`, for reads outside one)."""

    def execute(self, sql: str, parameters: Iterable[Any] | None = None, /) -> Executed: ...


class Database(Protocol):
    """An open database of either engine. Open one with `bot.backends.open_database(settings)`.

    `transaction()` is BEGIN ... COMMIT (ROLLBACK if the block raises), taken one at a time; repositories
    that write inside a caller's transaction use the connection it yields. `connection` serves reads
    outside a transaction.
    """

    @property
    def dialect(self) -> Dialect: ...

    @property
    def description(self) -> str:
        """Where the database is, for messages and logs: a file's path, or a server without its password."""
        ...

    @property
    def connection(self) -> Connection: ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...

    async def shred_checkpoint(self) -> None:
        """After a destruction: make the engine drop the deleted rows' old bytes it still keeps."""
        ...

    async def integrity_check(self) -> list[str]:
        """The engine's own consistency check: ["ok"], or the problems it found."""
        ...

    async def answers(self) -> bool:
        """Whether the database answers a trivial query (the health endpoint's probe)."""
        ...

    async def schema_version(self) -> int: ...


class DatabaseError(Exception):
    """The database cannot be used as it is (for example, it was written by a newer version)."""


class DatabaseBusyError(DatabaseError):
    """Another process holds the database for longer than the busy timeout: try again later."""


def holds_bytes(column: str, dialect: Dialect) -> str:
    """An SQL condition: the column holds bytes. A SQLite column takes a value of any type, so its type is
    checked (`typeof`); a PostgreSQL bytea column holds nothing else, so any value will do."""
    return f"typeof({column}) = 'blob'" if dialect == "sqlite" else f"{column} IS NOT NULL"


def newer_schema_error(where: str, current: int, latest: int) -> DatabaseError:
    return DatabaseError(
        f"The database {where} was written by a newer version of GP Photo Bot (schema {current}; "
        f"this version knows up to {latest}). Upgrade the bot, or restore a backup made by this version."
    )
