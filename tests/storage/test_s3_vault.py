"""The S3 vault against the suite's real SeaweedFS: neutral names, ciphertext only, deletes that delete,
clear errors for wrong credentials, and the leak scan reading the object store's own volume files."""

from __future__ import annotations

import io
import logging
import secrets
import time
from pathlib import Path

import pytest
from PIL import Image

from bot.keyring import Keyring, MasterKey
from bot.leak_scan import FindingKind, scan_paths
from bot.logs import QUIET_LOGGERS, configure_logging
from devtools.object_store import ObjectStore
from storage.s3_vault import S3Location, S3Vault
from storage.vault import Vault, VaultConfigError, VaultUnavailableError
from tests.support.servers import Bucket

KEY = MasterKey(key_id="mk-0000000b", secret=bytes(range(100, 132)))
NHS_NUMBER = b"943 476 5919"  # valid check digit; synthetic


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (205, 150, 130)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _location(store: ObjectStore, bucket: str, prefix: str = "practice-a", **changes: str) -> S3Location:
    fields = {
        "endpoint": store.endpoint,
        "access_key": store.access_key,
        "secret_key": store.secret_key,
        "region": store.region,
    } | changes
    return S3Location(bucket=bucket, prefix=prefix, **fields)


def test_objects_are_neutral_names_holding_only_the_file_vaults_ciphertext(
    bucket: Bucket, tmp_path: Path
) -> None:
    """The bucket holds `<prefix>/<image id>.enc` with no metadata, and its bytes are exactly what the file
    vault would keep: another vault (a file one) opens them with the row's wrapped key."""
    vault = S3Vault(_location(bucket.store, bucket.name), Keyring(KEY))
    photo = _jpeg()
    stored = vault.put("k3v9q2", photo)
    client = bucket.store.client()
    listed = client.list_objects_v2(Bucket=bucket.name)["Contents"]
    assert [entry["Key"] for entry in listed] == ["practice-a/k3v9q2.enc"]
    raw = client.get_object(Bucket=bucket.name, Key="practice-a/k3v9q2.enc")
    body = raw["Body"].read()
    assert raw.get("Metadata", {}) == {}
    assert photo[:3] not in body
    assert body[:4] == b"PBIM"
    (tmp_path / "vault").mkdir(mode=0o700)
    (tmp_path / "vault" / "k3v9q2.enc").write_bytes(body)
    assert Vault(tmp_path / "vault", Keyring(KEY)).get("k3v9q2", stored.wrapped_key) == photo


def test_a_destroyed_image_is_gone_from_the_bucket(bucket: Bucket) -> None:
    """After destroy no GET, HEAD or listing of the bucket shows the object."""
    vault = S3Vault(_location(bucket.store, bucket.name), Keyring(KEY))
    vault.put("gone1", _jpeg())
    assert vault.destroy("gone1")
    client = bucket.store.client()
    assert client.list_objects_v2(Bucket=bucket.name).get("Contents", []) == []
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket.name, Key="practice-a/gone1.enc")


def test_two_prefixes_in_one_bucket_do_not_see_each_other(bucket: Bucket) -> None:
    """A vault lists, sweeps and reads only under its own prefix (one practice's images per prefix)."""
    practice_a = S3Vault(_location(bucket.store, bucket.name, "practice-a"), Keyring(KEY))
    practice_b = S3Vault(_location(bucket.store, bucket.name, "practice-b"), Keyring(KEY))
    kept = practice_b.put("img1", _jpeg())
    practice_a.put("img2", _jpeg())
    assert practice_a.sweep_orphans(set()) == ["img2"]
    assert practice_b.image_ids() == ["img1"]
    assert not practice_a.exists("img1")
    assert practice_b.get("img1", kept.wrapped_key) == _jpeg()


def test_the_check_passes_on_a_working_bucket(bucket: Bucket) -> None:
    S3Vault(_location(bucket.store, bucket.name), Keyring(KEY)).check()
    assert bucket.store.client().list_objects_v2(Bucket=bucket.name).get("Contents", []) == []


def test_wrong_credentials_are_a_clear_configuration_error_that_shows_no_secret(bucket: Bucket) -> None:
    """A wrong secret key, a missing bucket and an unreachable endpoint each say what to fix, and no message
    holds the secret key or the image's bytes."""
    wrong = "wrong-" + secrets.token_urlsafe(16)
    vault = S3Vault(_location(bucket.store, bucket.name, secret_key=wrong), Keyring(KEY))
    with pytest.raises(VaultConfigError, match="PHOTOBOT_S3_SECRET_KEY") as refused:
        vault.check()
    with pytest.raises(VaultConfigError) as put_refused:
        vault.put("img1", _jpeg())
    missing = S3Vault(_location(bucket.store, "photobot-no-such-bucket"), Keyring(KEY))
    with pytest.raises(VaultConfigError, match="does not exist"):
        missing.check()
    started = time.monotonic()
    unreachable = S3Vault(_location(bucket.store, bucket.name, endpoint="http://127.0.0.1:9"), Keyring(KEY))
    with pytest.raises(VaultUnavailableError, match="PHOTOBOT_S3_ENDPOINT") as down:
        unreachable.check()
    assert time.monotonic() - started < 30
    for error in (refused.value, put_refused.value, down.value):
        assert wrong not in str(error)
        assert bucket.store.secret_key not in str(error)
        assert error.__cause__ is None


def test_the_leak_scan_finds_a_photo_or_nhs_number_stored_in_clear_in_seaweedfs_volumes(
    tmp_path: Path,
) -> None:
    """What an S3 client put in clear is found by scanning SeaweedFS's data directory (its .dat volume
    files). On a store of its own: SeaweedFS's filer also logs small objects' bytes in a system volume that
    outlives the bucket, which would plant the clear NHS number in the session store's leak scan."""
    store = ObjectStore(tmp_path / "private-store").start()
    try:
        name = "photobot-leak-" + secrets.token_hex(4)
        client = store.client()
        client.create_bucket(Bucket=name)
        client.put_object(Bucket=name, Key="plain/photo.enc", Body=_jpeg())
        client.put_object(Bucket=name, Key="plain/note.enc", Body=b"patient " + NHS_NUMBER + b" rash")
        report = scan_paths([store.data_dir])
        assert {finding.kind for finding in report.findings} >= {
            FindingKind.JPEG_IMAGE,
            FindingKind.NHS_NUMBER,
        }
        assert all(str(finding.path).endswith(".dat") for finding in report.findings)
    finally:
        store.remove()


def test_a_bucket_that_keeps_old_versions_is_refused(object_store: ObjectStore) -> None:
    """With versioning on, a DELETE leaves the old ciphertext behind: the check says so and names the bucket."""
    name = "photobot-versioned-" + secrets.token_hex(4)
    client = object_store.client()
    client.create_bucket(Bucket=name)
    try:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        with pytest.raises(VaultConfigError, match="keeps old versions"):
            S3Vault(_location(object_store, name), Keyring(KEY)).check()
    finally:
        versions = client.list_object_versions(Bucket=name)
        for entry in [*versions.get("Versions", []), *versions.get("DeleteMarkers", [])]:
            client.delete_object(Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"])
        client.delete_bucket(Bucket=name)


def test_at_debug_level_the_s3_client_logs_no_key_and_no_bytes(bucket: Bucket) -> None:
    """With PHOTOBOT_LOG_LEVEL=DEBUG, storing and reading an image writes no access key, no secret and no
    ciphertext to the log: boto3 and botocore are held at ERROR like nio."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in QUIET_LOGGERS})
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", "text", stream)
        vault = S3Vault(_location(bucket.store, bucket.name), Keyring(KEY))
        stored = vault.put("logged1", _jpeg())
        vault.get("logged1", stored.wrapped_key)
    finally:
        root.handlers[:], level, quiet = saved
        root.setLevel(level)
        for name, quiet_level in quiet.items():
            logging.getLogger(name).setLevel(quiet_level)
    logged = stream.getvalue()
    assert bucket.store.access_key not in logged
    assert bucket.store.secret_key not in logged
    assert "logged1" not in logged
