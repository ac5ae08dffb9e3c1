"""The encrypted image vault, on files and in a real S3 bucket (the suite's SeaweedFS): what reaches the disk
or the bucket, and what it refuses to return."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, PngImagePlugin

from bot.keyring import Keyring, MasterKey
from devtools.object_store import ObjectStore
from storage.s3_vault import S3Location, S3Vault
from storage.vault import (
    ImageKeyUnavailableError,
    ImageMissingError,
    ImageTamperedError,
    ImageUnreadableError,
    ImageVault,
    InvalidImageIdError,
    Vault,
)
from tests.support.servers import Bucket

OLD_KEY = MasterKey(key_id="mk-0000000a", secret=bytes(range(32)))
NEW_KEY = MasterKey(key_id="mk-0000000b", secret=bytes(range(100, 132)))
MARKER = b"SYNTHETIC-PATIENT-MARKER-0001"


def _synthetic_jpeg() -> bytes:
    image = Image.new("RGB", (160, 120), (205, 150, 130))
    ImageDraw.Draw(image).ellipse((50, 30, 110, 90), fill=(170, 60, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, comment=MARKER)
    return buffer.getvalue()


def _synthetic_png() -> bytes:
    image = Image.new("RGB", (64, 64), (120, 180, 200))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", MARKER.decode())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


@dataclass
class Stored:
    """A vault, and what it keeps as the place it keeps it in sees it: names and raw bytes."""

    vault: ImageVault
    names: Callable[[], list[str]]
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]
    open_vault: Callable[[Keyring], ImageVault]


def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def file_stored(directory: Path) -> Stored:
    return Stored(
        vault=Vault(directory, Keyring(NEW_KEY)),
        names=lambda: sorted(path.name for path in directory.iterdir()),
        read=lambda name: (directory / name).read_bytes(),
        write=lambda name, data: _write_file(directory / name, data),
        open_vault=lambda keyring: Vault(directory, keyring),
    )


def s3_location(bucket: Bucket, prefix: str = "practice-a") -> S3Location:
    store = bucket.store
    return S3Location(bucket.name, prefix, store.endpoint, store.access_key, store.secret_key, store.region)


def s3_stored(bucket: Bucket, prefix: str = "practice-a") -> Stored:
    client = bucket.store.client()
    start = f"{prefix}/"

    def names() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket.name, Prefix=start).get("Contents", [])
        return sorted(entry["Key"].removeprefix(start) for entry in listed)

    return Stored(
        vault=S3Vault(s3_location(bucket, prefix), Keyring(NEW_KEY)),
        names=names,
        read=lambda name: client.get_object(Bucket=bucket.name, Key=start + name)["Body"].read(),
        write=lambda name, data: client.put_object(Bucket=bucket.name, Key=start + name, Body=data) and None,
        open_vault=lambda keyring: S3Vault(s3_location(bucket, prefix), keyring),
    )


@pytest.fixture(scope="module")
def shared_bucket(object_store: ObjectStore) -> Bucket:
    """One bucket for this module's tests, each under its own prefix: SeaweedFS gives every bucket its own
    volumes, and a bucket per test would use up the volume server's slots."""
    return Bucket(object_store, object_store.create_bucket("photobot-vault-" + secrets.token_hex(4)))


@pytest.fixture(params=["file", "s3"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Stored:
    if request.param == "file":
        return file_stored(tmp_path / "vault")
    return s3_stored(request.getfixturevalue("shared_bucket"), "practice-" + secrets.token_hex(4))


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vault", Keyring(NEW_KEY))


def _windows(data: bytes, width: int = 16) -> set[bytes]:
    return {data[start : start + width] for start in range(len(data) - width + 1)}


def test_image_round_trips(stored: Stored) -> None:
    """An image put into the vault comes back byte for byte."""
    photo = _synthetic_jpeg()
    image = stored.vault.put("IMG_a1", photo)
    assert image.image_id == "IMG_a1"
    assert image.size == len(photo)
    assert stored.vault.get("IMG_a1", image.wrapped_key) == photo


@pytest.mark.parametrize("make_photo", [_synthetic_jpeg, _synthetic_png], ids=["jpeg", "png"])
def test_stored_bytes_contain_nothing_of_the_plaintext(
    stored: Stored, make_photo: Callable[[], bytes]
) -> None:
    """No 16-byte run of the photo, its file signature or its embedded text is in what the vault keeps."""
    photo = make_photo()
    stored.vault.put("IMG_a1", photo)
    kept = b"".join(stored.read(name) for name in stored.names())
    assert MARKER not in kept
    assert photo[:4] not in kept
    assert _windows(photo).isdisjoint(_windows(kept))


def test_stored_name_reveals_only_the_image_id(stored: Stored) -> None:
    """The only file or object written is named after the opaque image id, nothing else."""
    stored.vault.put("IMG_a1", _synthetic_jpeg())
    assert stored.names() == ["IMG_a1.enc"]


def test_digest_is_keyed_not_a_plain_hash(tmp_path: Path) -> None:
    """The stored digest spots a repeated photo but cannot be matched against a plain SHA-256."""
    photo = _synthetic_jpeg()
    vault = Vault(tmp_path / "vault", Keyring(NEW_KEY))
    first, second = vault.put("IMG_a1", photo), vault.put("IMG_a2", photo)
    other = Vault(tmp_path / "other", Keyring(OLD_KEY)).put("IMG_a1", photo)
    assert first.digest == second.digest
    assert first.digest != vault.put("IMG_a3", _synthetic_png()).digest
    assert first.digest != hashlib.sha256(photo).hexdigest()
    assert first.digest != other.digest


@pytest.mark.parametrize("position", [0, 4, 5, 12, 17, 200, -17, -1])
def test_flipped_byte_in_the_stored_bytes_is_an_integrity_error(stored: Stored, position: int) -> None:
    """Changing any byte of what is stored (header, nonce, body or tag) makes get fail, not lie."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    content = bytearray(stored.read("IMG_a1.enc"))
    content[position] ^= 0x01
    stored.write("IMG_a1.enc", bytes(content))
    with pytest.raises(ImageTamperedError):
        stored.vault.get("IMG_a1", image.wrapped_key)


@pytest.mark.parametrize("length", [0, 4, 17, 32, 100])
def test_truncated_stored_bytes_are_an_integrity_error(stored: Stored, length: int) -> None:
    """A stored file or object cut short is reported as damaged."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    stored.write("IMG_a1.enc", stored.read("IMG_a1.enc")[:length])
    with pytest.raises(ImageTamperedError):
        stored.vault.get("IMG_a1", image.wrapped_key)


def test_flipped_byte_in_the_wrapped_key_is_an_integrity_error(stored: Stored) -> None:
    """A damaged wrapped key from the database makes get fail."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    wrapped = bytearray(image.wrapped_key)
    wrapped[-5] ^= 0x01
    with pytest.raises(ImageTamperedError):
        stored.vault.get("IMG_a1", bytes(wrapped))


def test_key_of_one_image_does_not_open_another(stored: Stored) -> None:
    """Asking for image B with image A's wrapped key fails rather than returning anything."""
    image_a = stored.vault.put("IMG_a1", _synthetic_jpeg())
    stored.vault.put("IMG_b2", _synthetic_png())
    with pytest.raises(ImageTamperedError):
        stored.vault.get("IMG_b2", image_a.wrapped_key)


def test_stored_bytes_moved_to_another_image_id_do_not_open(stored: Stored) -> None:
    """A file or object copied over another image's, with its own key relabelled, still does not open."""
    image_a = stored.vault.put("IMG_a1", _synthetic_jpeg())
    stored.vault.put("IMG_b2", _synthetic_png())
    stored.write("IMG_b2.enc", stored.read("IMG_a1.enc"))
    with pytest.raises(ImageTamperedError):
        stored.vault.get("IMG_b2", image_a.wrapped_key)


def test_missing_image_is_reported_as_missing(stored: Stored) -> None:
    """Asking for an image that was never stored says it is missing."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(ImageMissingError):
        stored.vault.get("IMG_zz", image.wrapped_key)


def test_destroyed_image_cannot_be_read(stored: Stored) -> None:
    """After destroy, the image is gone: get fails, exists is false, it is not listed, and destroying again
    reports so; nothing is left in the directory or the bucket."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    assert stored.vault.exists("IMG_a1")
    assert stored.vault.image_ids() == ["IMG_a1"]
    assert stored.vault.destroy("IMG_a1") is True
    assert not stored.vault.exists("IMG_a1")
    with pytest.raises(ImageMissingError):
        stored.vault.get("IMG_a1", image.wrapped_key)
    assert stored.vault.destroy("IMG_a1") is False
    assert stored.vault.image_ids() == []
    assert stored.names() == []


def test_destroy_leaves_other_images_readable(stored: Stored) -> None:
    """Destroying one image does not affect another."""
    stored.vault.put("IMG_a1", _synthetic_jpeg())
    image_b = stored.vault.put("IMG_b2", _synthetic_png())
    stored.vault.destroy("IMG_a1")
    assert stored.vault.get("IMG_b2", image_b.wrapped_key) == _synthetic_png()


def test_putting_the_same_id_again_replaces_the_image(stored: Stored) -> None:
    """A second put under the same id replaces the image; only the new wrapped key opens it."""
    first = stored.vault.put("IMG_a1", _synthetic_jpeg())
    second = stored.vault.put("IMG_a1", _synthetic_png())
    assert stored.vault.get("IMG_a1", second.wrapped_key) == _synthetic_png()
    with pytest.raises(ImageTamperedError):
        stored.vault.get("IMG_a1", first.wrapped_key)
    assert stored.names() == ["IMG_a1.enc"]


def test_torn_temporary_files_are_cleaned_and_images_kept(vault: Vault) -> None:
    """Temporary files left by a crash are removed at start-up; stored images are untouched."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    (vault.directory / ".tmp-0123456789abcdef01234567").write_bytes(b"torn ciphertext")
    (vault.directory / ".tmp-fedcba987654321001234567").write_bytes(b"")
    assert vault.clean_temporary_files() == 2
    assert [path.name for path in vault.directory.iterdir()] == ["IMG_a1.enc"]
    assert vault.get("IMG_a1", stored.wrapped_key) == _synthetic_jpeg()
    assert vault.clean_temporary_files() == 0


def test_orphans_without_a_row_are_swept(stored: Stored) -> None:
    """Images the database does not know are removed and listed; known ones stay readable; other names stay."""
    kept = stored.vault.put("IMG_a1", _synthetic_jpeg())
    stored.vault.put("IMG_b2", _synthetic_png())
    stored.vault.put("IMG_c3", _synthetic_png())
    stored.write("NOTES.txt", b"operator's file")
    assert stored.vault.clean_temporary_files() == 0
    assert stored.vault.sweep_orphans({"IMG_a1", "IMG_gone"}) == ["IMG_b2", "IMG_c3"]
    assert stored.vault.get("IMG_a1", kept.wrapped_key) == _synthetic_jpeg()
    assert stored.names() == ["IMG_a1.enc", "NOTES.txt"]
    assert stored.vault.sweep_orphans({"IMG_a1"}) == []


def test_orphan_sweep_leaves_directories_alone(vault: Vault) -> None:
    """A directory named like an image is not an orphan."""
    (vault.directory / "sub.enc").mkdir()
    assert vault.sweep_orphans(set()) == []
    assert (vault.directory / "sub.enc").is_dir()


def test_new_vault_directory_is_owner_only_and_files_are_0600(tmp_path: Path) -> None:
    """The vault directory is created 0700 and every image file is 0600, whatever the umask."""
    previous = os.umask(0)
    try:
        vault = Vault(tmp_path / "data" / "vault", Keyring(NEW_KEY))
        vault.put("IMG_a1", _synthetic_jpeg())
    finally:
        os.umask(previous)
    assert vault.directory.stat().st_mode & 0o777 == 0o700
    assert (vault.directory / "IMG_a1.enc").stat().st_mode & 0o777 == 0o600


def test_existing_shared_vault_directory_is_tightened(tmp_path: Path) -> None:
    """A vault directory that others can list is made owner-only when the vault opens."""
    directory = tmp_path / "vault"
    directory.mkdir()
    directory.chmod(0o755)
    Vault(directory, Keyring(NEW_KEY))
    assert directory.stat().st_mode & 0o777 == 0o700


BAD_IDS = ["../escape", "a/b", "..", ".", "", "x" * 65, "IMG\n", "IMG a", "IMG.enc", "ímg", "/etc/passwd"]


@pytest.mark.parametrize("image_id", BAD_IDS)
def test_unsafe_image_ids_are_refused_everywhere(stored: Stored, image_id: str) -> None:
    """An image id that could leave the directory or prefix, or is not plain ASCII, is refused everywhere."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(InvalidImageIdError):
        stored.vault.put(image_id, b"synthetic")
    with pytest.raises(InvalidImageIdError):
        stored.vault.get(image_id, image.wrapped_key)
    with pytest.raises(InvalidImageIdError):
        stored.vault.exists(image_id)
    with pytest.raises(InvalidImageIdError):
        stored.vault.destroy(image_id)
    with pytest.raises(InvalidImageIdError):
        stored.vault.rewrap(image_id, image.wrapped_key)
    assert stored.names() == ["IMG_a1.enc"]


def test_unsafe_image_ids_write_nothing_outside_the_directory(tmp_path: Path) -> None:
    """Nothing lands beside the vault directory whatever id is tried."""
    vault = Vault(tmp_path / "vault", Keyring(NEW_KEY))
    vault.put("IMG_a1", _synthetic_jpeg())
    for image_id in BAD_IDS:
        with pytest.raises(InvalidImageIdError):
            vault.put(image_id, b"synthetic")
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["IMG_a1.enc", "vault"]


def test_symlink_in_place_of_an_image_is_refused(vault: Vault, tmp_path: Path) -> None:
    """A symbolic link planted under an image's name is not followed."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    real = tmp_path / "elsewhere.enc"
    (vault.directory / "IMG_a1.enc").rename(real)
    (vault.directory / "IMG_a1.enc").symlink_to(real)
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_a1", stored.wrapped_key)


def test_rewrapped_image_reads_after_the_old_master_key_is_dropped(stored: Stored) -> None:
    """After rotation, a rewrapped image key opens the image with only the new master key held."""
    photo = _synthetic_jpeg()
    image = stored.open_vault(Keyring(OLD_KEY)).put("IMG_a1", photo)
    rotating = Keyring(NEW_KEY, previous=[OLD_KEY])
    assert rotating.needs_rewrap(image.wrapped_key)
    rewrapped = stored.open_vault(rotating).rewrap("IMG_a1", image.wrapped_key)
    assert not rotating.needs_rewrap(rewrapped)
    after = stored.open_vault(Keyring(NEW_KEY))
    assert after.get("IMG_a1", rewrapped) == photo
    with pytest.raises(ImageKeyUnavailableError, match="mk-0000000a"):
        after.get("IMG_a1", image.wrapped_key)


def test_rewrap_refuses_a_key_belonging_to_another_image(stored: Stored) -> None:
    """Rewrapping cannot move one image's key onto another image id."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(ImageTamperedError):
        stored.vault.rewrap("IMG_b2", image.wrapped_key)


def test_every_read_failure_is_an_image_unreadable_error(stored: Stored) -> None:
    """Callers can catch one error type for every way an image cannot be returned."""
    image = stored.vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(ImageUnreadableError):
        stored.vault.get("IMG_a1", b"\x01garbage")
    with pytest.raises(ImageUnreadableError):
        stored.vault.get("IMG_nope", image.wrapped_key)
