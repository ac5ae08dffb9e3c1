"""PHOTOBOT_VAULT_URL and PHOTOBOT_S3_*: a file vault by default, an S3 bucket when asked, and every
mistake named at once without showing the secret key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.backends import open_vault, s3_location
from bot.keyring import Keyring, MasterKey
from bot.settings import SettingsError, load_settings
from storage.s3_vault import S3Vault
from storage.vault import Vault

ENV = {
    "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:8008",
    "PHOTOBOT_USER_ID": "@photobot:practice.example",
    "PHOTOBOT_DATA_DIR": "/srv/photobot-data",
}
S3 = {
    "PHOTOBOT_VAULT_URL": "s3://practice-images/surgery-a",
    "PHOTOBOT_S3_ENDPOINT": "https://s3.example.org",
    "PHOTOBOT_S3_ACCESS_KEY": "AKSYNTHETIC",
    "PHOTOBOT_S3_SECRET_KEY": "synthetic-secret-value-0001",
}
KEYRING = Keyring(MasterKey(key_id="mk-0000000a", secret=bytes(range(32))))


def _problems(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as error:
        load_settings(ENV | env)
    return str(error.value)


def test_the_default_is_the_file_vault_in_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings(ENV)
    assert settings.vault_dir == Path("/srv/photobot-data/vault")
    assert s3_location(settings) is None
    moved = load_settings(ENV | {"PHOTOBOT_DATA_DIR": str(tmp_path)})
    assert isinstance(open_vault(moved, KEYRING), Vault)


def test_a_file_url_names_the_vault_directory(tmp_path: Path) -> None:
    settings = load_settings(ENV | {"PHOTOBOT_VAULT_URL": (tmp_path / "images").as_uri()})
    assert settings.vault_dir == tmp_path / "images"
    vault = open_vault(settings, KEYRING)
    assert isinstance(vault, Vault)
    assert vault.directory == tmp_path / "images"


def test_an_s3_url_gives_an_s3_vault_and_the_secret_never_shows() -> None:
    settings = load_settings(ENV | S3)
    location = s3_location(settings)
    assert location is not None
    assert (location.bucket, location.prefix, location.endpoint, location.region) == (
        "practice-images",
        "surgery-a",
        "https://s3.example.org",
        "us-east-1",
    )
    assert location.secret_key == "synthetic-secret-value-0001"
    assert isinstance(open_vault(settings, KEYRING), S3Vault)
    assert "synthetic-secret-value-0001" not in repr(settings)
    assert "synthetic-secret-value-0001" not in repr(location)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PHOTOBOT_VAULT_URL": "s3:///prefix"}, "names no bucket"),
        ({"PHOTOBOT_VAULT_URL": "s3://Bad_Bucket/x"}, "is not a bucket name"),
        ({"PHOTOBOT_VAULT_URL": "s3://user:pw@bucket-a/x"}, "put the keys in PHOTOBOT_S3_ACCESS_KEY"),
        ({"PHOTOBOT_VAULT_URL": "s3://bucket-a/../x"}, "prefix must be names"),
        ({"PHOTOBOT_VAULT_URL": "ftp://bucket-a/x"}, "must be file:///absolute/path or s3://"),
        ({"PHOTOBOT_VAULT_URL": "file://relative/x"}, "must be file:///absolute/path or s3://"),
        ({"PHOTOBOT_S3_ENDPOINT": ""}, "PHOTOBOT_S3_ENDPOINT is missing"),
        ({"PHOTOBOT_S3_ENDPOINT": "s3.example.org"}, "PHOTOBOT_S3_ENDPOINT must be an address"),
        ({"PHOTOBOT_S3_ENDPOINT": "https://k:s@s3.example.org"}, "must not hold credentials"),
        ({"PHOTOBOT_S3_ACCESS_KEY": ""}, "PHOTOBOT_S3_ACCESS_KEY is missing"),
        ({"PHOTOBOT_S3_SECRET_KEY": ""}, "PHOTOBOT_S3_SECRET_KEY is missing"),
    ],
)
def test_each_s3_mistake_is_named(env: dict[str, str], expected: str) -> None:
    problems = _problems(S3 | env)
    assert expected in problems
    assert "synthetic-secret-value-0001" not in problems


def test_s3_settings_without_an_s3_url_are_a_problem() -> None:
    assert "is not s3://" in _problems({"PHOTOBOT_S3_ENDPOINT": "https://s3.example.org"})
