"""A host's practices on the suite's real PostgreSQL: each practice's tables in its own schema, and removing
a practice drops its schema and nothing of another's."""

from __future__ import annotations

from pathlib import Path

import psycopg

from bot.backends import open_database
from bot.keyring import create_master_key_file
from bot.practice_cli import remove_practice
from bot.practices import PRACTICE_ENV, Host, isolation_problems
from storage.practice_data import destroy_database
from tests.support.servers import Bucket


def _add_by_hand(host: Host, name: str, postgres_url: str) -> None:
    directory = host.practice_dir(name)
    directory.mkdir(parents=True, mode=0o700)
    (directory / PRACTICE_ENV).write_text(
        "PHOTOBOT_HOMESERVER_URL=http://127.0.0.1:9\n"
        f"PHOTOBOT_USER_ID=@bot_{name}:localhost\n"
        f"PHOTOBOT_CLINICIAN_ROOMS=!clinicians_{name}:localhost\n"
        f"PHOTOBOT_DATABASE_URL={postgres_url}\n"
    )
    create_master_key_file(directory / "master.key")


async def _schemas(postgres_url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(postgres_url) as connection:
        cursor = await connection.execute("SELECT schema_name FROM information_schema.schemata")
        return {str(row[0]) for row in await cursor.fetchall()}


async def test_each_practice_has_its_own_schema_and_removing_one_drops_only_its_own(
    tmp_path: Path, postgres_url: str
) -> None:
    host = Host(tmp_path / "host")
    for name in ("a", "b"):
        _add_by_hand(host, name, postgres_url)
        settings = host.settings(name)
        assert "schema=practice_" + name in settings.database.url
        database = await open_database(settings)
        try:
            async with database.transaction() as db:
                await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('retention', ?)", (name,))
        finally:
            await database.close()
    assert {"practice_a", "practice_b"} <= await _schemas(postgres_url)

    said: list[str] = []
    await remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=said.append)
    assert "practice_b" not in await _schemas(postgres_url)
    assert any("row(s) in" in line and "table(s)" in line for line in said)
    database = await open_database(host.settings("a"))
    try:
        async with database.connection.execute("SELECT last_run_at FROM job_runs") as cursor:
            assert [row[0] for row in await cursor.fetchall()] == ["a"]
    finally:
        await database.close()


async def test_a_sqlite_database_is_destroyed_whole_even_its_append_only_audit_log(tmp_path: Path) -> None:
    """Tables are dropped, not deleted from: the audit log's triggers refuse deletes but not a drop."""
    host = Host(tmp_path / "host")
    host.practice_dir("a").mkdir(parents=True)
    (host.env_file("a")).write_text(
        "PHOTOBOT_HOMESERVER_URL=http://127.0.0.1:9\nPHOTOBOT_USER_ID=@bot:localhost\n"
    )
    settings = host.settings("a")
    database = await open_database(settings)
    try:
        async with database.transaction() as db:
            await db.execute("INSERT INTO job_runs (job, last_run_at) VALUES ('retention', 'x')")
    finally:
        await database.close()
    destroyed = await destroy_database(settings.database_path)
    assert destroyed.rows >= 1
    assert destroyed.tables > 10
    assert not [path for path in host.practice_dir("a").iterdir() if path.name.startswith("photobot.sqlite3")]


async def test_each_practice_has_its_own_prefix_in_the_bucket_and_removing_one_deletes_only_its_objects(
    tmp_path: Path, bucket: Bucket
) -> None:
    """One bucket for the host (`s3://bucket/host1`): practice a's images under host1/practices/a/, b's
    under host1/practices/b/; removing b deletes b's objects and nothing of a's, or of the host's prefix."""
    host = Host(tmp_path / "host")
    environment = bucket.environment("host1")
    for name in ("a", "b"):
        directory = host.practice_dir(name)
        directory.mkdir(parents=True, mode=0o700)
        (directory / PRACTICE_ENV).write_text(
            "PHOTOBOT_HOMESERVER_URL=http://127.0.0.1:9\n"
            f"PHOTOBOT_USER_ID=@bot_{name}:localhost\n"
            + "".join(f"{key}={value}\n" for key, value in environment.items())
        )
        create_master_key_file(directory / "master.key")
    a, b = host.settings("a"), host.settings("b")
    assert a.vault is not None and b.vault is not None
    assert (a.vault.prefix, b.vault.prefix) == ("host1/practices/a", "host1/practices/b")
    assert isolation_problems({"a": a, "b": b}) == {}
    client = bucket.store.client()
    names = ["host1/practices/a/x.enc", "host1/practices/b/y.enc", "host1/practices/b/z.enc", "host1/other"]
    for name in names:
        client.put_object(Bucket=bucket.name, Key=name, Body=b"ciphertext")

    said: list[str] = []
    await remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=said.append)
    left = [entry["Key"] for entry in client.list_objects_v2(Bucket=bucket.name).get("Contents", [])]
    assert sorted(left) == ["host1/other", "host1/practices/a/x.enc"]
    assert any("Deleted its 2 object(s)" in line for line in said)
