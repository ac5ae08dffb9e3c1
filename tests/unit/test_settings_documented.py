"""config.example.env is the operator's list of settings: every setting the bot reads is in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = {"FAULT_POINTS", "TEST_CLOCK_FILE", "TEST_CONVERSATION_TIMEOUT_SECONDS"}
# Read in loops rather than by a literal call: named here so the test sees them.
READ_BY_NAME = {"S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION"}


def _read_by_settings() -> set[str]:
    source = (ROOT / "bot" / "settings.py").read_text()
    return set(re.findall(r'read\.[a-z_]+\(\s*"([A-Z0-9_]+)"', source)) | READ_BY_NAME


def test_every_setting_is_in_config_example_env() -> None:
    example = (ROOT / "config.example.env").read_text()
    missing = sorted(name for name in _read_by_settings() - TEST_ONLY if f"PHOTOBOT_{name}" not in example)
    assert missing == []


def test_the_vault_settings_are_in_the_operators_guide() -> None:
    guide = (ROOT / "docs" / "operator.md").read_text()
    assert all(f"`PHOTOBOT_{name}`" in guide for name in {"VAULT_URL", *READ_BY_NAME})
