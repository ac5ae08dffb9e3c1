"""The PostgreSQL engine: the same migrations, the same statements, through an adapter with SQLite's shape.

Why psycopg 3: it is maintained by PostgreSQL's own Python community, speaks the server's protocol with
server-side parameters, has a native asyncio connection, and its binary wheel carries libpq (nothing to
install on the host). Its cursor already has the fetchone/fetchall/rowcount shape the repositories use.

Two connections, one lock:
- the writer runs every transaction, one at a time (`_write_lock`, as on SQLite), BEGIN ... COMMIT;
- the reader (autocommit) serves reads made outside a transaction, so another task's read never sees an
  open transaction's uncommitted rows, and never interleaves statements into it. A read made inside a
  transaction, by the task running it, goes to the writer and sees that transaction's own writes (a context
  variable marks the task), as it does on SQLite.

Statements are written in SQLite's dialect with `?` (or `:name`) placeholders; `translate_placeholders`
turns them into psycopg's `%s` (`%(name)s`) outside string literals, quoted names and comments, and doubles
every literal `%`. Rows index by name and by position. Python booleans are sent as 0/1 and datetimes as
SQLite's default text form, because the columns are the same integer and text columns on both engines.

Migrations: `storage.migrations.MIGRATIONS`, translated mechanically (`postgres_statements`): BLOB -> BYTEA,
INTEGER -> BIGINT (SQLite integers are 64-bit), INTEGER PRIMARY KEY -> an identity column, TEXT -> TEXT
COLLATE "C" (byte order, as SQLite compares text), WITHOUT ROWID dropped, a trigger that RAISE(ABORT)s -> a plpgsql function and trigger (a DELETE guard also refuses
TRUNCATE), tables created in the order their references need. A migration the translation cannot handle
fails loudly; `POSTGRES_OVERRIDES` may then give its PostgreSQL text. The schema version is kept in the
table `photobot_schema`; a database newer than the code is refused with the same message as on SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
import zlib
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import RowMaker

from storage.database import split_statements
from storage.migrations import MIGRATIONS, Migration
from storage.sql import DatabaseBusyError, DatabaseError, Dialect, newer_schema_error

log = logging.getLogger(__name__)

SCHEMA_TABLE: Final = "photobot_schema"
CONNECT_TIMEOUT_SECONDS: Final = 10
# Per-migration PostgreSQL text, for a migration the mechanical translation cannot handle (none yet).
POSTGRES_OVERRIDES: Final[Mapping[int, str]] = {}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Params = Sequence[Any] | Mapping[str, Any]


# --- statements -------------------------------------------------------------------------------------------


def _segments(sql: str) -> Iterator[tuple[str, str]]:
    """Split a statement into ("code" | "literal" | "comment", text) pieces: string literals and quoted
    names are "literal", `--` and `/* */` comments "comment"."""
    i, start, n = 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            if start < i:
                yield "code", sql[start:i]
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # a doubled quote stays inside
                        end += 2
                        continue
                    break
                end += 1
            yield "literal", sql[i : end + 1]
            i = start = end + 1
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            if start < i:
                yield "code", sql[start:i]
            end = sql.find("\n", i) if c == "-" else sql.find("*/", i + 2)
            end = n if end < 0 else (end if c == "-" else end + 2)
            yield "comment", sql[i:end]
            i = start = end
        else:
            i += 1
    if start < n:
        yield "code", sql[start:n]


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def translate_placeholders(sql: str) -> str:
    """`?` -> `%s` and `:name` -> `%(name)s` outside literals and comments; every `%` doubled."""
    out: list[str] = []
    for kind, text in _segments(sql):
        escaped = text.replace("%", "%%")
        if kind == "code":
            escaped = _NAMED.sub(r"%(\1)s", escaped.replace("?", "%s"))
        out.append(escaped)
    return "".join(out)


def _adapt(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")  # sqlite3's default adapter
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _parameters(parameters: Iterable[Any] | None) -> Params:
    if parameters is None:
        return ()
    if isinstance(parameters, Mapping):
        return {key: _adapt(value) for key, value in parameters.items()}
    return tuple(_adapt(value) for value in parameters)


# --- rows and cursors -------------------------------------------------------------------------------------


class PostgresRow:
    """A row that reads like sqlite3.Row: by position, or by column name (case-insensitively)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str, /) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key.lower()]]
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PostgresRow):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"<PostgresRow of {len(self._values)} columns>"  # values may be sealed bytes: not shown

    def keys(self) -> list[str]:
        return list(self._index)


def _load(value: Any) -> Any:
    if type(value) is Decimal:  # SUM of integers is numeric on PostgreSQL, an integer on SQLite
        return int(value) if value == value.to_integral_value() else float(value)
    if type(value) is memoryview:
        return bytes(value)
    return value


def _row_factory(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[PostgresRow]:
    names = [column.name for column in cursor.description or ()]
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name.lower(), position)

    def make(values: Sequence[Any]) -> PostgresRow:
        return PostgresRow(tuple(_load(value) for value in values), index)

    return make


class PostgresCursor:
    """A finished statement's results (held by the client), read like aiosqlite's cursor."""

    def __init__(self, cursor: psycopg.AsyncCursor[PostgresRow]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> PostgresRow | None:
        if self._cursor.description is None:
            return None
        return await self._cursor.fetchone()

    async def fetchall(self) -> list[PostgresRow]:
        if self._cursor.description is None:
            return []
        return await self._cursor.fetchall()


class _Executed:
    """An `execute` in flight: awaited, it gives the cursor; `async with` gives it too."""

    __slots__ = ("_run",)

    def __init__(self, run: Callable[[], Generator[Any, None, PostgresCursor]]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, PostgresCursor]:
        return self._run()

    async def __aenter__(self) -> PostgresCursor:
        return await self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        return None


async def _execute(
    connection: psycopg.AsyncConnection[Any], sql: str, parameters: Iterable[Any] | None
) -> PostgresCursor:
    cursor = connection.cursor(row_factory=_row_factory)
    await cursor.execute(translate_placeholders(sql), _parameters(parameters))
    return PostgresCursor(cursor)


class PostgresConnection:
    """A psycopg connection with the shape of aiosqlite's: `execute(sql, params)`, awaited or `async with`."""

    def __init__(self, raw: psycopg.AsyncConnection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Iterable[Any] | None = None, /) -> _Executed:
        return _Executed(lambda: _execute(self.raw, sql, parameters).__await__())


class _ReadConnection:
    """`database.connection`: the reader, or the writer when this task is inside a transaction."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    def execute(self, sql: str, parameters: Iterable[Any] | None = None, /) -> _Executed:
        def run() -> Generator[Any, None, PostgresCursor]:
            raw = self._database._in_transaction.get() or self._database._reader
            return _execute(raw, sql, parameters).__await__()

        return _Executed(run)


# --- migrations -------------------------------------------------------------------------------------------

_TRIGGER = re.compile(
    r"^CREATE\s+TRIGGER\s+(\w+)\s+(BEFORE|AFTER)\s+(UPDATE|DELETE|INSERT)\s+ON\s+(\w+)\s+"
    r"BEGIN\s+SELECT\s+RAISE\s*\(\s*ABORT\s*,\s*'((?:[^']|'')*)'\s*\)\s*;\s*END\s*;?$",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_TABLE = re.compile(r"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
_NAMED_TABLES = re.compile(r"\b(?:REFERENCES|ON|ALTER\s+TABLE)\s+(\w+)", re.IGNORECASE)
_SQLITE_ONLY = re.compile(
    r"\b(AUTOINCREMENT|PRAGMA|strftime|julianday|datetime|randomblob|TRIGGER|GLOB|COLLATE\s+NOCASE)\b",
    re.IGNORECASE,
)


def _strip_comments(statement: str) -> str:
    return "".join(text for kind, text in _segments(statement) if kind != "comment").strip()


def _trigger(match: re.Match[str]) -> list[str]:
    name, when, event, table, message = match.groups()
    function = f"{name}_refuse"
    statements = [
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation'; END $$",
        f"CREATE TRIGGER {name} {when} {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()",
    ]
    if event.upper() == "DELETE":  # TRUNCATE deletes every row without firing row triggers
        statements.append(
            f"CREATE TRIGGER {name}_truncate {when} TRUNCATE ON {table} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {function}()"
        )
    return statements


def _translate(statement: str) -> list[str]:
    statement = _strip_comments(statement).rstrip(";").strip()
    trigger = _TRIGGER.match(statement)
    if trigger:
        return _trigger(trigger)
    unknown = _SQLITE_ONLY.search(statement)
    if unknown:
        raise ValueError(
            f"no PostgreSQL translation for {unknown.group(1)!r}: add a POSTGRES_OVERRIDES entry"
        )
    pieces: list[str] = []
    for kind, original in _segments(statement):
        text = original
        if kind == "code":
            text = re.sub(r"\bWITHOUT\s+ROWID\b", "", text, flags=re.IGNORECASE)
            text = re.sub(
                r"\bINTEGER\s+PRIMARY\s+KEY\b",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                text,
                flags=re.IGNORECASE,
            )
            text = re.sub(r"\bINTEGER\b", "BIGINT", text, flags=re.IGNORECASE)
            text = re.sub(r"\bBLOB\b", "BYTEA", text, flags=re.IGNORECASE)
            # Text compares and sorts byte by byte, as SQLite's BINARY collation does, whatever the
            # database's locale (a locale's collation can order ISO times or references differently).
            text = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', text, flags=re.IGNORECASE)
        pieces.append(text)
    return ["".join(pieces).strip()]


def _in_dependency_order(statements: list[str]) -> list[str]:
    """Each statement after the creation of every table it names that this migration creates (SQLite lets
    a table reference one created later; PostgreSQL does not). Otherwise the written order is kept."""
    created = {m.group(1).lower() for s in statements if (m := _CREATE_TABLE.match(s))}
    done: set[str] = set()
    ordered: list[str] = []
    pending = list(statements)
    while pending:
        left: list[str] = []
        for statement in pending:
            own = _CREATE_TABLE.match(statement)
            own_name = own.group(1).lower() if own else None
            needs = {name.lower() for name in _NAMED_TABLES.findall(statement)} & created
            needs -= done | {own_name}
            if needs or (left and own_name is None and _touches(statement, left)):
                left.append(statement)
                continue
            ordered.append(statement)
            if own_name:
                done.add(own_name)
        if len(left) == len(pending):
            raise ValueError("the migration's tables reference each other in a cycle")
        pending = left
    return ordered


def _touches(statement: str, postponed: list[str]) -> bool:
    """Whether a statement names a table whose creation was postponed (it must then wait too)."""
    names = {name.lower() for name in _NAMED_TABLES.findall(statement)}
    return any((m := _CREATE_TABLE.match(s)) and m.group(1).lower() in names for s in postponed)


def postgres_statements(migration: Migration) -> list[str]:
    """A migration's statements for PostgreSQL: its override, or its SQLite text translated."""
    override = POSTGRES_OVERRIDES.get(migration.version)
    if override is not None:
        return [s.rstrip(";").strip() for s in split_statements(override)]
    translated = [t for statement in split_statements(migration.sql) for t in _translate(statement)]
    return _in_dependency_order([t for t in translated if t])


# --- the database -----------------------------------------------------------------------------------------


def _split_url(url: str, schema: str | None) -> tuple[str, str]:
    """The connection string without our own `schema=` parameter, and the schema: the argument, the URL's
    `schema=`, the first name of a `search_path` in its `options`, or public."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError("A PostgreSQL database URL starts with postgresql://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    from_url = [value for key, value in query if key == "schema"]
    kept = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
    chosen = schema or (from_url[-1] if from_url else None)
    if chosen is None:
        options = conninfo_to_dict(kept).get("options") or ""
        found = re.search(r"(?:-c\s*|--)search_path\s*=\s*([^\s,]+)", str(options))
        chosen = found.group(1).strip("\"'") if found else "public"
    if not _SCHEMA_NAME.match(chosen):
        raise DatabaseError(f"{chosen[:70]!r} is not a schema name this bot uses (lower case, digits, _).")
    return kept, chosen


def describe_url(url: str) -> str:
    """A database URL as it may be shown and logged: never its password."""
    try:
        params = conninfo_to_dict(_split_url(url, None)[0])
    except (psycopg.ProgrammingError, DatabaseError, ValueError):
        return "postgresql://(unreadable URL)"
    user = str(params.get("user") or "")
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "")
    where = f"{host}:{port}" if port else str(host)
    return f"postgresql://{user + '@' if user else ''}{where}/{params.get('dbname') or ''}"


async def _connect(url: str, schema: str) -> psycopg.AsyncConnection[Any]:
    connection = await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="photobot"
    )
    try:
        await connection.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
    except BaseException:
        await connection.close()
        raise
    return connection


@dataclass
class PostgresDatabase:
    """An open PostgreSQL database (it satisfies `storage.sql.Database`). Create it with
    `PostgresDatabase.open(url, schema=...)`; close it with `close()`."""

    _writer: psycopg.AsyncConnection[Any]
    _reader: psycopg.AsyncConnection[Any]
    schema: str
    _where: str
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _in_transaction: ContextVar[psycopg.AsyncConnection[Any] | None] = field(
        default_factory=lambda: ContextVar("photobot_pg_transaction", default=None)
    )

    @classmethod
    async def open(
        cls, url: str, *, schema: str | None = None, migrations: Sequence[Migration] = MIGRATIONS
    ) -> PostgresDatabase:
        """Connect, create the schema if it does not exist, and migrate it. `schema` (or `?schema=` or a
        `search_path` in the URL's options) keeps the bot's tables in their own schema; public otherwise."""
        url, schema = _split_url(url, schema)
        where = describe_url(url) + ("" if schema == "public" else f" (schema {schema})")
        try:
            writer = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="photobot"
            )
        except psycopg.OperationalError as error:
            message = f"Cannot connect to the database {where}: {_first_line(error)}"
            if _temporary(str(error)):
                raise DatabaseBusyError(message + "; trying again later.") from None
            raise DatabaseError(message) from None  # refused: the role, password or database name
        try:
            await writer.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
            await writer.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
            reader = await _connect(url, schema)
        except BaseException:
            await writer.close()
            raise
        database = cls(writer, reader, schema, where)
        try:
            await database._migrate(migrations)
        except BaseException:
            await database.close()
            raise
        return database

    @property
    def dialect(self) -> Dialect:
        return "postgresql"

    @property
    def description(self) -> str:
        return self._where

    @property
    def connection(self) -> _ReadConnection:
        return _ReadConnection(self)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        """BEGIN ... COMMIT, or ROLLBACK if the block raises. Everything in it lands or nothing."""
        async with self._write_lock:
            await self._writer.execute("BEGIN")
            token = self._in_transaction.set(self._writer)
            try:
                yield PostgresConnection(self._writer)
            except BaseException:
                self._in_transaction.reset(token)
                await self._writer.execute("ROLLBACK")
                raise
            self._in_transaction.reset(token)
            await self._writer.execute("COMMIT")

    async def shred_checkpoint(self) -> None:
        """Rewrite the tables that hold wrapped keys and sealed values (VACUUM FULL), so a destroyed key's
        bytes leave the table's files; WAL and backups are another matter (docs/operator.md).

        Why FULL: a deleted or updated row stays in its page as a dead tuple until vacuumed, and a plain
        VACUUM only marks its space free (measured: about half of the destroyed keys were still in the heap
        file after it). VACUUM FULL copies the live rows into new files and drops the old ones. It locks
        each table while it runs: a practice's tables are small (milliseconds), and destructions are rare.
        The append-only audit log never has dead rows and is left alone."""
        async with self._write_lock:
            async with self._writer.cursor() as cursor:
                await cursor.execute(
                    "SELECT DISTINCT table_name FROM information_schema.columns"
                    " WHERE table_schema = %s AND data_type = 'bytea' AND table_name != 'audit_log'"
                    " ORDER BY table_name",
                    (self.schema,),
                )
                tables = [str(row[0]) for row in await cursor.fetchall()]
            for table in tables:
                await self._writer.execute(
                    pgsql.SQL("VACUUM (FULL) {}").format(pgsql.Identifier(self.schema, table))
                )

    async def integrity_check(self) -> list[str]:
        """PostgreSQL checks its own pages (checksums, when the cluster has them) as it reads them; here we
        check that the schema is readable and at a version this code knows."""
        try:
            await self.schema_version()
        except psycopg.Error as error:
            return [_first_line(error)]
        return ["ok"]

    async def answers(self) -> bool:
        try:
            async with self._reader.cursor() as cursor:
                await cursor.execute("SELECT 1")
                row = await cursor.fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and row[0] == 1

    async def schema_version(self) -> int:
        async with self._reader.cursor() as cursor:
            await cursor.execute(
                pgsql.SQL("SELECT version FROM {} WHERE id = 1").format(pgsql.Identifier(SCHEMA_TABLE))
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self, migrations: Sequence[Migration]) -> None:
        latest = migrations[-1].version if migrations else 0
        # Two processes opening the same schema at once (a standby) migrate one after the other.
        lock_key = zlib.crc32(f"photobot-migrate:{self.schema}".encode())
        version_table = pgsql.Identifier(SCHEMA_TABLE)
        async with self.transaction() as db:
            await db.raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            await db.raw.execute(
                pgsql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
                ).format(version_table)
            )
        for migration in [None, *migrations]:
            async with self.transaction() as db:
                await db.raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
                cursor = await db.raw.execute(
                    pgsql.SQL("SELECT version FROM {} WHERE id = 1").format(version_table)
                )
                row = await cursor.fetchone()
                current = int(row[0]) if row else 0
                if current > latest:
                    raise newer_schema_error(self._where, current, latest)
                if migration is None or migration.version <= current:
                    continue
                for statement in postgres_statements(migration):
                    await db.raw.execute(statement)  # our own DDL, no parameters
                await db.raw.execute(
                    pgsql.SQL(
                        "INSERT INTO {} (id, version) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET version = excluded.version"
                    ).format(version_table),
                    (migration.version,),
                )
                log.info("database migrated to schema %d", migration.version)


_TEMPORARY_REFUSALS = ("starting up", "shutting down", "in recovery mode", "too many", "remaining connection")


def _temporary(message: str) -> bool:
    """Whether a failed connection is worth trying again: the server was not reached, or it answered that
    it cannot take us now (libpq reports the server's refusal as "FATAL: ..."; a wrong role, password or
    database name is also a FATAL refusal, and is not temporary)."""
    refusal = message.partition("FATAL:")[2]
    return not refusal or any(words in refusal for words in _TEMPORARY_REFUSALS)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
