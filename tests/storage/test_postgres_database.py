"""The PostgreSQL engine against the suite's real server: transactions, the statement adapter, migrations,
the refusal of a newer schema, a practice's own schema, and the append-only audit log.

Each test gets a fresh database of the session's server (`postgres_url`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import psycopg
import pytest

from bot.settings import DatabaseUrl, load_settings
from devtools.postgres import free_port
from storage.migrations import MIGRATIONS, Migration
from storage.postgres import PostgresDatabase, describe_url, postgres_statements, translate_placeholders
from storage.sql import Database, DatabaseBusyError, DatabaseError

LATEST = MIGRATIONS[-1].version


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    database = await PostgresDatabase.open(postgres_url)
    try:
        yield database
    finally:
        await database.close()


async def _count(database: Database, table: str) -> int:
    async with database.connection.execute(f"SELECT COUNT(*) AS n FROM {table}") as cursor:  # noqa: S608
        row = await cursor.fetchone()
    assert row is not None
    return int(row["n"])


async def test_a_committed_transaction_lands_and_a_failed_one_leaves_nothing(
    database: PostgresDatabase,
) -> None:
    async with database.transaction() as db:
        await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES (?, ?)", ("retention", "2031-01-01"))

    async def fails_half_way() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES (?, ?)", ("other", "2031-01-02"))
            raise RuntimeError("the handler failed half way")

    async def second_statement_refused() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES (?, ?)", ("third", "2031-01-03"))
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES (?, ?)", ("retention", "x"))

    with pytest.raises(RuntimeError):
        await fails_half_way()
    with pytest.raises(psycopg.errors.UniqueViolation):
        await second_statement_refused()
    async with database.connection.execute("SELECT job FROM job_runs ORDER BY job") as cursor:
        assert [row["job"] for row in await cursor.fetchall()] == ["retention"]
    # The connection is usable after a failed statement rolled its transaction back.
    async with database.transaction() as db:
        cursor = await db.execute(
            "UPDATE job_runs SET last_run_at = ? WHERE job = ?", ("2031-02-01", "retention")
        )
        assert cursor.rowcount == 1


async def test_a_read_outside_the_transaction_does_not_see_its_uncommitted_rows(
    database: PostgresDatabase,
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('pending', 'x')")
            # The task running the transaction reads its own writes through `connection`, as on SQLite.
            assert await _count(database, "job_runs") == 1
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    assert await _count(database, "job_runs") == 0, "another task saw an uncommitted row"
    release.set()
    await task
    assert await _count(database, "job_runs") == 1


async def test_rows_read_by_name_and_position_and_placeholders_stay_out_of_literals(
    database: PostgresDatabase,
) -> None:
    sealed = bytes(range(256))
    async with database.transaction() as db:
        await db.execute(
            "INSERT INTO pending_commands (key, command, asked_at) VALUES (?, ?, '100% sure? yes')",
            ("room|@a:x", sealed),
        )
    async with database.connection.execute(
        "SELECT key, command, asked_at, 'it''s ?' AS note, COUNT(*) OVER () AS total FROM pending_commands"
        " WHERE key LIKE ? AND asked_at LIKE '100%'",
        ("room|%",),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    assert row["key"] == row[0] == "room|@a:x"
    assert row["COMMAND"] == sealed and isinstance(row["command"], bytes)
    assert row["asked_at"] == "100% sure? yes"
    assert row["note"] == "it's ?"
    assert row["total"] == 1 and row.keys() == ["key", "command", "asked_at", "note", "total"]
    assert next(iter(row)) == "room|@a:x"
    async with database.connection.execute(
        "SELECT SUM(n) AS total FROM (SELECT 1 AS n UNION ALL SELECT 2) t WHERE :flag = 1", {"flag": True}
    ) as cursor:
        total = await cursor.fetchone()
    assert total is not None and total["total"] == 3 and type(total["total"]) is int  # not Decimal


def test_placeholder_translation() -> None:
    assert translate_placeholders("SELECT ? WHERE a = '?' AND b = ?") == "SELECT %s WHERE a = '?' AND b = %s"
    assert (
        translate_placeholders("SELECT x::text, :name -- what? 5%") == "SELECT x::text, %(name)s -- what? 5%%"
    )
    assert translate_placeholders("SELECT \"odd?name\" FROM t WHERE a LIKE '%x'") == (
        "SELECT \"odd?name\" FROM t WHERE a LIKE '%%x'"
    )


async def test_migrations_are_idempotent_and_keep_their_version(postgres_url: str) -> None:
    first = await PostgresDatabase.open(postgres_url)
    try:
        assert await first.schema_version() == LATEST
        async with first.transaction() as db:
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('retention', 'x')")
    finally:
        await first.close()
    again = await PostgresDatabase.open(postgres_url)
    try:
        assert await again.schema_version() == LATEST
        assert await _count(again, "job_runs") == 1, "opening again ran a migration over the data"
        assert await again.integrity_check() == ["ok"]
        assert await again.answers()
    finally:
        await again.close()


async def test_every_migration_translates_and_tables_come_before_their_references() -> None:
    statements = [s for migration in MIGRATIONS for s in postgres_statements(migration)]
    text = "\n".join(statements)
    for sqlite_only in ("BLOB", "WITHOUT ROWID", "RAISE(ABORT", " INTEGER "):
        assert sqlite_only not in text
    second = postgres_statements(MIGRATIONS[1])
    creates = [s.split()[2] for s in second if s.startswith("CREATE TABLE")]
    assert creates.index("submissions") < creates.index("photos")


async def test_a_database_newer_than_the_code_is_refused(postgres_url: str) -> None:
    newer = (
        *MIGRATIONS,
        Migration(LATEST + 1, "from the future", "CREATE TABLE future (id INTEGER PRIMARY KEY)"),
    )
    database = await PostgresDatabase.open(postgres_url, migrations=newer)
    await database.close()
    with pytest.raises(DatabaseError) as refused:
        await PostgresDatabase.open(postgres_url)
    message = str(refused.value)
    assert f"schema {LATEST + 1}; this version knows up to {LATEST}" in message
    assert "Upgrade the bot, or restore a backup made by this version." in message


async def test_audit_rows_cannot_be_changed_or_removed(database: PostgresDatabase) -> None:
    async with database.transaction() as db:
        await db.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_mac, mac)"
            " VALUES (1, 'now', 'bot', 'test', '', ?, 'genesis', 'mac-1')",
            (b"sealed",),
        )
    for attempt in (
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.Error, match="append-only"):
            async with database.transaction() as db:
                await db.execute(attempt)
    async with database.connection.execute("SELECT seq, actor FROM audit_log") as cursor:
        assert [tuple(row) for row in await cursor.fetchall()] == [(1, "bot")]


async def test_each_practice_gets_its_own_schema(postgres_url: str) -> None:
    a = await PostgresDatabase.open(postgres_url + "?options=-csearch_path%3Dpractice_a")
    b = await PostgresDatabase.open(postgres_url, schema="practice_b")
    try:
        assert (a.schema, b.schema) == ("practice_a", "practice_b")
        async with a.transaction() as db:
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('retention', 'a')")
        assert await _count(a, "job_runs") == 1
        assert await _count(b, "job_runs") == 0
        assert await b.schema_version() == LATEST
        assert "practice_b" in b.description
    finally:
        await a.close()
        await b.close()


async def test_the_password_is_never_shown(postgres_url: str) -> None:
    secret_url = "postgresql://photobot:hunter2-secret@db.example:5432/photobot?sslmode=require"
    assert "hunter2" not in describe_url(secret_url)
    settings = load_settings(
        {
            "PHOTOBOT_HOMESERVER_URL": "https://matrix.example",
            "PHOTOBOT_USER_ID": "@photobot:example.org",
            "PHOTOBOT_PASSWORD": "x",
            "PHOTOBOT_DATABASE_URL": secret_url,
        }
    )
    assert settings.database == DatabaseUrl(secret_url)
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.database)
    assert settings.database.engine == "postgresql"
    port = urlsplit(postgres_url).port
    with pytest.raises(DatabaseError) as refused:
        await PostgresDatabase.open(f"postgresql://nobody:hunter2-secret@127.0.0.1:{port}/no_such_database")
    assert "hunter2" not in str(refused.value)
    assert not isinstance(refused.value, DatabaseBusyError), "a wrong database name is not worth retrying"


async def test_a_server_that_cannot_be_reached_is_a_temporary_failure() -> None:
    """The service manager restarts the bot after a temporary failure (exit 75), not after a wrong setting."""
    with pytest.raises(DatabaseBusyError, match="trying again later"):
        await PostgresDatabase.open(f"postgresql://photobot:hunter2-secret@127.0.0.1:{free_port()}/photobot")


def test_the_default_is_the_sqlite_file_under_the_data_directory(tmp_path: object) -> None:
    settings = load_settings(
        {
            "PHOTOBOT_HOMESERVER_URL": "https://matrix.example",
            "PHOTOBOT_USER_ID": "@photobot:example.org",
            "PHOTOBOT_PASSWORD": "x",
            "PHOTOBOT_DATA_DIR": "/srv/photobot",
        }
    )
    assert settings.database.engine == "sqlite"
    assert str(settings.database_path) == "/srv/photobot/photobot.sqlite3"
