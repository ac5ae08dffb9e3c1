"""One set of migrations, two engines: after migrating both, the same tables, columns (with their kind and
nullability), keys, unique and plain indexes, and foreign keys. A migration whose PostgreSQL translation
drifted from its SQLite text (or a per-engine override that forgot something) fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage.database import SqliteDatabase
from storage.postgres import SCHEMA_TABLE, PostgresDatabase
from storage.sql import Database

# Column kinds as each engine names them.
_SQLITE_KINDS = {"TEXT": "text", "INTEGER": "integer", "BLOB": "bytes"}
_POSTGRES_KINDS = {"text": "text", "bigint": "integer", "integer": "integer", "bytea": "bytes"}

Columns = dict[str, dict[str, tuple[str, bool]]]  # table -> column -> (kind, not null)
Index = tuple[str, tuple[str, ...], bool, bool]  # table, columns, unique, partial
ForeignKey = tuple[str, tuple[str, ...], str, tuple[str, ...]]


async def _rows(database: Database, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    async with database.connection.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def _sqlite_schema(database: Database) -> tuple[Columns, set[Index], set[ForeignKey]]:
    tables = [
        str(row[0])
        for row in await _rows(
            database, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    columns: Columns = {}
    indexes: set[Index] = set()
    keys: set[ForeignKey] = set()
    for table in tables:
        info = await _rows(database, f'PRAGMA table_info("{table}")')
        # A primary key column is never null on PostgreSQL; on SQLite only a rowid alias is (the
        # other key columns accept NULL, a legacy quirk no statement of ours relies on).
        columns[table] = {
            str(r["name"]): (_SQLITE_KINDS[str(r["type"])], bool(r["notnull"]) or int(r["pk"]) > 0)
            for r in info
        }
        primary = tuple(str(r["name"]) for r in sorted(info, key=lambda r: int(r["pk"])) if int(r["pk"]) > 0)
        indexes.add((table, primary, True, False))
        for index in await _rows(database, f'PRAGMA index_list("{table}")'):
            if index["origin"] == "pk":
                continue
            parts = await _rows(database, f'PRAGMA index_info("{index["name"]}")')
            named = tuple(str(p["name"]) if p["name"] is not None else "<expression>" for p in parts)
            indexes.add((table, named, bool(index["unique"]), bool(index["partial"])))
        grouped: dict[int, list[Any]] = {}
        for key in await _rows(database, f'PRAGMA foreign_key_list("{table}")'):
            grouped.setdefault(int(key["id"]), []).append(key)
        for parts in grouped.values():
            keys.add(
                (
                    table,
                    tuple(str(p["from"]) for p in parts),
                    str(parts[0]["table"]),
                    tuple(str(p["to"]) for p in parts),
                )
            )
    return columns, indexes, keys


async def _postgres_schema(database: Database) -> tuple[Columns, set[Index], set[ForeignKey]]:
    columns: Columns = {}
    for row in await _rows(
        database,
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name != ?",
        (SCHEMA_TABLE,),
    ):
        columns.setdefault(str(row[0]), {})[str(row[1])] = (_POSTGRES_KINDS[str(row[2])], row[3] == "NO")
    indexes: set[Index] = set()
    for row in await _rows(
        database,
        "SELECT t.relname, i.indisunique, i.indpred IS NOT NULL,"
        " ARRAY(SELECT COALESCE(a.attname, '<expression>') FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)"
        "  LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o)"
        " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace"
        " WHERE s.nspname = current_schema() AND t.relname != ?",
        (SCHEMA_TABLE,),
    ):
        indexes.add((str(row[0]), tuple(str(c) for c in row[3]), bool(row[1]), bool(row[2])))
    keys: set[ForeignKey] = set()
    for row in await _rows(
        database,
        "SELECT t.relname, r.relname,"
        " ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)"
        "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),"
        " ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)"
        "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)"
        " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid"
        " JOIN pg_namespace s ON s.oid = t.relnamespace WHERE c.contype = 'f' AND s.nspname = current_schema()",
    ):
        keys.add((str(row[0]), tuple(row[2]), str(row[1]), tuple(row[3])))
    return columns, indexes, keys


async def test_both_engines_have_the_same_schema_after_migrating(tmp_path: Path, postgres_url: str) -> None:
    sqlite = await SqliteDatabase.open(tmp_path / "photobot.sqlite3")
    postgres = await PostgresDatabase.open(postgres_url)
    try:
        sqlite_columns, sqlite_indexes, sqlite_keys = await _sqlite_schema(sqlite)
        postgres_columns, postgres_indexes, postgres_keys = await _postgres_schema(postgres)
        assert await sqlite.schema_version() == await postgres.schema_version()
    finally:
        await sqlite.close()
        await postgres.close()
    assert len(sqlite_columns) > 20, "the SQLite schema was not read"
    assert sorted(postgres_columns) == sorted(sqlite_columns)
    for table, expected in sqlite_columns.items():
        assert postgres_columns[table] == expected, table
    assert sorted(postgres_indexes) == sorted(sqlite_indexes)
    assert sorted(postgres_keys) == sorted(sqlite_keys)
