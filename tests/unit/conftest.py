"""Fixtures the handler unit tests share (tests/support holds the fakes and builders themselves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.real_storage import StorageTemplate, migrated_template


@pytest.fixture(scope="session")
async def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated empty SQLite database per test run; each test opens its own copy."""
    return await migrated_template(tmp_path_factory.mktemp("migrated"))


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_database(request: pytest.FixtureRequest, migrated_sqlite: Path) -> StorageTemplate:
    """Each storage-backed test runs on both engines: a copy of the migrated SQLite file, or a fresh
    PostgreSQL database of the suite's server (started only when a PostgreSQL case runs)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return migrated_sqlite
