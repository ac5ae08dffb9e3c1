"""The suite's own PostgreSQL and SeaweedFS: started once per test session on 127.0.0.1, lazily (only a test
that asks for one starts it), torn down at the end. Each test gets a database and a bucket of its own."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.object_store import ObjectStore
from devtools.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Outside pytest's own temporary folder: every pytest session resets /tmp/pytest-of-<user> to mode 0700,
    which would lock the server's unprivileged user (when we are root) out of its data directory mid-run."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="photobot-postgres-"))).start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    store = ObjectStore(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield store
    finally:
        store.stop()  # its data directory stays until pytest's own clean-up: a leak scan may read it


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database of the session's server, dropped after the test."""
    name = "photobot_" + secrets.token_hex(6)
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@dataclass(frozen=True)
class Bucket:
    store: ObjectStore
    name: str

    def environment(self, prefix: str = "") -> dict[str, str]:
        return self.store.environment(self.name, prefix)


@pytest.fixture
def bucket(object_store: ObjectStore) -> Bucket:
    """A fresh bucket of the session's object store (left for the session's leak scan)."""
    return Bucket(object_store, object_store.create_bucket("photobot-" + secrets.token_hex(6)))
