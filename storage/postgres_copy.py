"""Copying a practice's rows between PostgreSQL and a SQLite file of the same schema: how `photobot backup`
and `photobot restore` stay backend-neutral (`storage.backup`).

A backup is always a SQLite file. Made from PostgreSQL, every table's rows are read in one REPEATABLE READ
READ ONLY transaction (one snapshot of the whole database, while the bot goes on writing) and written into
a freshly migrated SQLite file: the tables and columns of that file decide what is copied, so a table of
PostgreSQL's own bookkeeping (the schema version) is not. The same checks and tools then read a backup
whichever engine it came from.

Restored into PostgreSQL, in one transaction: every one of the bot's tables emptied (TRUNCATE, the
audit log's append-only triggers disabled for that transaction only, as the SQLite restore replaces the
whole file and with it the audit log: the chain restored is the backup's own, valid as it was), the backup's
rows inserted (parents before the rows that reference them), each identity column's sequence moved past the
largest id restored, the triggers enabled again. Another session sees the old rows or the new ones, never a
mix, and never the audit log unguarded (ALTER TABLE holds the table's exclusive lock until the commit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from storage.postgres import PostgresDatabase, _split_url

AUDIT_TABLE = "audit_log"


def sqlite_tables(connection: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    """(table, columns) of every table of a SQLite file of the bot's schema, in creation order."""
    tables = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        )
    ]
    return [
        (table, [str(row[1]) for row in connection.execute("SELECT * FROM pragma_table_info(?)", (table,))])
        for table in tables
    ]


# ---- PostgreSQL -> SQLite (backup) --------------------------------------------------------------------------


def copy_postgres_to_sqlite(url: str, schema: str | None, target: Path) -> dict[str, int]:
    """Fill the freshly migrated, empty SQLite file `target` with the rows of every one of its tables, read
    from the PostgreSQL database at `url` in one snapshot. Returns the rows copied per table. Blocking."""
    conninfo, schema_name = _split_url(url, schema)
    copied: dict[str, int] = {}
    with (
        closing(sqlite3.connect(target, isolation_level=None)) as copy,
        psycopg.connect(conninfo, application_name="photobot backup") as origin,
    ):
        tables = sqlite_tables(copy)
        origin.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        origin.read_only = True
        try:
            copy.execute("BEGIN")
            for table, columns in tables:
                names = pgsql.SQL(", ").join(pgsql.Identifier(column) for column in columns)
                insert = (
                    f"INSERT INTO {_quoted(table)} ({', '.join(_quoted(c) for c in columns)})"  # noqa: S608
                    f" VALUES ({', '.join('?' for _ in columns)})"  # names from our own migrated schema
                )
                rows = origin.execute(
                    pgsql.SQL("SELECT {} FROM {}").format(names, pgsql.Identifier(schema_name, table))
                ).fetchall()
                copy.executemany(insert, [_to_sqlite(row) for row in rows])
                copied[table] = len(rows)
            copy.execute("COMMIT")
        finally:
            origin.rollback()  # read only: nothing to keep
    return copied


def _to_sqlite(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---- SQLite -> PostgreSQL (restore) -------------------------------------------------------------------------


def read_sqlite_rows(source: Path) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """(table, columns, rows) of every table of the SQLite file `source`. Blocking."""
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as connection:
        return [
            (
                table,
                columns,
                list(
                    connection.execute(
                        f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {_quoted(table)}"  # noqa: S608
                    )
                ),
            )
            for table, columns in sqlite_tables(connection)
        ]


async def replace_postgres_contents(
    database: PostgresDatabase, tables: Iterable[tuple[str, list[str], list[tuple[Any, ...]]]]
) -> dict[str, int]:
    """Make the practice's schema hold exactly `tables`' rows, in one transaction (see the module docstring).

    `tables` names every table of the bot's schema (the backup's file is migrated to the current schema
    first), so every one of them is replaced; a table of the schema that is not the bot's (PostgreSQL's own
    schema-version table, another tool's) is left alone.
    """
    given = {table: (columns, rows) for table, columns, rows in tables}
    schema = database.schema
    restored: dict[str, int] = {}
    async with database.transaction() as db:
        raw = db.raw
        present = [
            str(row[0])
            for row in await (
                await raw.execute(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
                    (schema,),
                )
            ).fetchall()
        ]
        owned = [table for table in present if table in given]  # the bot's tables; any other is left alone
        unknown = sorted(set(given) - set(owned))
        if unknown:
            raise ValueError(f"the backup has tables this database does not: {', '.join(unknown)}")
        audit = pgsql.Identifier(schema, AUDIT_TABLE)
        if AUDIT_TABLE in owned:
            await raw.execute(pgsql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(audit))
        await raw.execute(
            pgsql.SQL("TRUNCATE {}").format(
                pgsql.SQL(", ").join(pgsql.Identifier(schema, table) for table in owned)
            )
        )
        for table in await _parents_first(raw, schema, owned):
            if table not in given:
                continue
            columns, rows = given[table]
            if rows:
                statement = pgsql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})").format(
                    pgsql.Identifier(schema, table),
                    pgsql.SQL(", ").join(pgsql.Identifier(column) for column in columns),
                    pgsql.SQL(", ").join(pgsql.Placeholder() for _ in columns),
                )
                async with raw.cursor() as cursor:
                    await cursor.executemany(statement, rows)
            restored[table] = len(rows)
        await _move_identities_past_restored_ids(raw, schema)
        if AUDIT_TABLE in owned:
            await raw.execute(pgsql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(audit))
    return restored


async def _parents_first(raw: psycopg.AsyncConnection[Any], schema: str, tables: list[str]) -> list[str]:
    """`tables` ordered so that each comes after every table its foreign keys reference."""
    cursor = await raw.execute(
        "SELECT child.relname, parent.relname FROM pg_constraint c"
        " JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid"
        " JOIN pg_namespace n ON n.oid = child.relnamespace WHERE c.contype = 'f' AND n.nspname = %s",
        (schema,),
    )
    needs: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in await cursor.fetchall():
        if child in needs and parent in needs and child != parent:
            needs[str(child)].add(str(parent))
    ordered: list[str] = []
    while needs:
        ready = sorted(table for table, parents in needs.items() if not parents - set(ordered))
        if not ready:
            raise ValueError("the tables' foreign keys reference each other in a cycle")
        ordered += ready
        for table in ready:
            del needs[table]
    return ordered


async def _move_identities_past_restored_ids(raw: psycopg.AsyncConnection[Any], schema: str) -> None:
    cursor = await raw.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND is_identity = 'YES'",
        (schema,),
    )
    for table, column in await cursor.fetchall():
        qualified = pgsql.Identifier(schema, str(table))
        await raw.execute(
            pgsql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)"
            ).format(pgsql.Identifier(str(column)), qualified),
            (f"{_quoted(schema)}.{_quoted(str(table))}", str(column)),
        )
