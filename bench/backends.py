"""The engines a benchmark round's bot keeps its state in: `sqlite` (a SQLite file and a vault folder in its
data directory, the default) or `postgres` (PostgreSQL for state, an S3-compatible object store for the vault).

For `postgres` the run starts its own PostgreSQL (devtools.postgres) and SeaweedFS (devtools.object_store) on
127.0.0.1, once, as it starts Synapse; each round's fresh bot gets a fresh database and a fresh bucket through
its environment (PHOTOBOT_DATABASE_URL, PHOTOBOT_VAULT_URL and PHOTOBOT_S3_*), as an operator would set them.
With SQLite the database and vault work happens inside the bot; with PostgreSQL and SeaweedFS part of it
happens in their processes, so their CPU is read too (`database_cpu`, `object_store_cpu`: each server's
process tree, its reaped children included; PostgreSQL's backends are children of its postmaster).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.proc_stats import CpuReading, tree_cpu
from devtools.object_store import ObjectStore
from devtools.postgres import PostgresServer

SQLITE: Final = "sqlite"
POSTGRES: Final = "postgres"
BACKENDS: Final = (SQLITE, POSTGRES)
DESCRIPTIONS: Final = {
    SQLITE: "SQLite file + local vault folder (in the bot's data directory)",
    POSTGRES: "PostgreSQL + S3 vault (SeaweedFS), both on 127.0.0.1",
}


@dataclass
class Backend:
    """One engine set for the bots of a run; `postgres` and `store` are running servers for POSTGRES."""

    name: str
    postgres: PostgresServer | None = None
    store: ObjectStore | None = None

    def environment(self, bot_name: str) -> dict[str, str]:
        """The settings for a fresh bot called `bot_name`: for POSTGRES a new database and a new bucket."""
        if self.postgres is None or self.store is None:
            return {}
        url = self.postgres.create_database(bot_name)
        bucket = self.store.create_bucket(bot_name)
        return {"PHOTOBOT_DATABASE_URL": url} | self.store.environment(bucket, "photos")

    def database_cpu(self) -> CpuReading:
        """CPU used so far by the PostgreSQL server (none for SQLite: that work is in the bot)."""
        return _server_cpu(self.postgres.process if self.postgres else None)

    def object_store_cpu(self) -> CpuReading:
        """CPU used so far by the object store (none for a file vault: that work is in the bot)."""
        return _server_cpu(self.store.process if self.store else None)

    def server_cpu(self) -> CpuReading:
        """CPU used so far by the database and object-store servers together."""
        return self.database_cpu() + self.object_store_cpu()


def _server_cpu(process: subprocess.Popen[bytes] | None) -> CpuReading:
    if process is None or process.poll() is not None:
        return CpuReading(0.0, 0.0)
    return tree_cpu(process.pid)


def parse_backends(text: str) -> tuple[str, ...]:
    """`sqlite,postgres` -> ("sqlite", "postgres"); unknown or repeated names are refused."""
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if not names or any(name not in BACKENDS for name in names) or len(set(names)) != len(names):
        raise ValueError(f"a comma-separated list of {', '.join(BACKENDS)}, each at most once")
    return names


class Backends(contextlib.AbstractAsyncContextManager["list[Backend]"]):
    """The backends of a run, their servers started on entry (in threads: they block) and stopped on exit."""

    def __init__(self, names: tuple[str, ...], base_dir: Path) -> None:
        self.names = names
        self.base_dir = base_dir
        self.postgres: PostgresServer | None = None
        self.store: ObjectStore | None = None

    async def __aenter__(self) -> list[Backend]:
        if POSTGRES in self.names:
            try:
                self.postgres = await asyncio.to_thread(PostgresServer(self.base_dir / "postgres").start)
                self.store = await asyncio.to_thread(ObjectStore(self.base_dir / "seaweedfs").start)
            except BaseException:
                await self._stop()
                raise
        return [
            Backend(name, self.postgres, self.store) if name == POSTGRES else Backend(name)
            for name in self.names
        ]

    async def __aexit__(self, *_: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        for server in (self.postgres, self.store):
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(server.stop)
