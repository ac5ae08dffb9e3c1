"""The backends the running bot's state lives in, chosen by URL in the settings."""

from __future__ import annotations

from bot.keyring import Keyring
from bot.settings import Settings
from storage.s3_vault import S3Location, S3Vault
from storage.vault import ImageVault, Vault


def s3_location(settings: Settings) -> S3Location | None:
    """Where PHOTOBOT_VAULT_URL=s3://... points, with the PHOTOBOT_S3_* credentials; None for a file vault."""
    vault = settings.vault
    if vault is None or not vault.is_s3:
        return None
    return S3Location(
        bucket=vault.bucket,
        prefix=vault.prefix,
        endpoint=vault.s3_endpoint,
        access_key=vault.s3_access_key,
        secret_key=vault.s3_secret_key.value,
        region=vault.s3_region,
    )


def open_vault(settings: Settings, keyring: Keyring) -> ImageVault:
    """The image vault PHOTOBOT_VAULT_URL names: files in a directory (the default), or an S3 bucket."""
    location = s3_location(settings)
    if location is not None:
        return S3Vault(location, keyring)
    return Vault(settings.vault_dir, keyring)
