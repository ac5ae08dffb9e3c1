"""Fixtures the handler unit tests share (tests/support holds the fakes and builders themselves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.real_storage import migrated_template


@pytest.fixture(scope="session")
async def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated empty database per test run; each test opens its own copy."""
    return await migrated_template(tmp_path_factory.mktemp("migrated"))
