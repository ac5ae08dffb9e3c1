"""The encrypted image vault with real files: what reaches the disk, and what it refuses to return."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, PngImagePlugin

from bot.keyring import Keyring, MasterKey
from storage.vault import (
    ImageKeyUnavailableError,
    ImageMissingError,
    ImageTamperedError,
    ImageUnreadableError,
    InvalidImageIdError,
    Vault,
)

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


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vault", Keyring(NEW_KEY))


def _windows(data: bytes, width: int = 16) -> set[bytes]:
    return {data[start : start + width] for start in range(len(data) - width + 1)}


def _only_file(vault: Vault) -> Path:
    (path,) = vault.directory.iterdir()
    return path


def test_image_round_trips(vault: Vault) -> None:
    """An image put into the vault comes back byte for byte."""
    photo = _synthetic_jpeg()
    stored = vault.put("IMG_a1", photo)
    assert stored.image_id == "IMG_a1"
    assert stored.size == len(photo)
    assert vault.get("IMG_a1", stored.wrapped_key) == photo


@pytest.mark.parametrize("make_photo", [_synthetic_jpeg, _synthetic_png], ids=["jpeg", "png"])
def test_file_on_disk_contains_nothing_of_the_plaintext(
    vault: Vault, make_photo: Callable[[], bytes]
) -> None:
    """No 16-byte run of the photo, its file signature or its embedded text appears on disk."""
    photo = make_photo()
    vault.put("IMG_a1", photo)
    on_disk = b"".join(path.read_bytes() for path in vault.directory.iterdir())
    assert MARKER not in on_disk
    assert photo[:4] not in on_disk
    assert _windows(photo).isdisjoint(_windows(on_disk))


def test_file_name_reveals_only_the_image_id(vault: Vault) -> None:
    """The only file written is named after the opaque image id, nothing else."""
    vault.put("IMG_a1", _synthetic_jpeg())
    assert [path.name for path in vault.directory.iterdir()] == ["IMG_a1.enc"]


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
def test_flipped_byte_in_the_file_is_an_integrity_error(vault: Vault, position: int) -> None:
    """Changing any byte of the stored file (header, nonce, body or tag) makes get fail, not lie."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    path = _only_file(vault)
    content = bytearray(path.read_bytes())
    content[position] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_a1", stored.wrapped_key)


@pytest.mark.parametrize("length", [0, 4, 17, 32, 100])
def test_truncated_file_is_an_integrity_error(vault: Vault, length: int) -> None:
    """A stored file cut short is reported as damaged."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    path = _only_file(vault)
    path.write_bytes(path.read_bytes()[:length])
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_a1", stored.wrapped_key)


def test_flipped_byte_in_the_wrapped_key_is_an_integrity_error(vault: Vault) -> None:
    """A damaged wrapped key from the database makes get fail."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    wrapped = bytearray(stored.wrapped_key)
    wrapped[-5] ^= 0x01
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_a1", bytes(wrapped))


def test_key_of_one_image_does_not_open_another(vault: Vault) -> None:
    """Asking for image B with image A's wrapped key fails rather than returning anything."""
    stored_a = vault.put("IMG_a1", _synthetic_jpeg())
    vault.put("IMG_b2", _synthetic_png())
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_b2", stored_a.wrapped_key)


def test_file_moved_to_another_image_id_does_not_open(vault: Vault) -> None:
    """A file copied over another image's file, with its own key relabelled, still does not open."""
    stored_a = vault.put("IMG_a1", _synthetic_jpeg())
    vault.put("IMG_b2", _synthetic_png())
    shutil.copyfile(vault.directory / "IMG_a1.enc", vault.directory / "IMG_b2.enc")
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_b2", stored_a.wrapped_key)


def test_missing_image_is_reported_as_missing(vault: Vault) -> None:
    """Asking for an image that was never stored says it is missing."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(ImageMissingError):
        vault.get("IMG_zz", stored.wrapped_key)


def test_destroyed_image_cannot_be_read(vault: Vault) -> None:
    """After destroy, the image is gone: get fails, exists is false, and destroying again reports so."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    assert vault.exists("IMG_a1")
    assert vault.destroy("IMG_a1") is True
    assert not vault.exists("IMG_a1")
    with pytest.raises(ImageMissingError):
        vault.get("IMG_a1", stored.wrapped_key)
    assert vault.destroy("IMG_a1") is False
    assert list(vault.directory.iterdir()) == []


def test_destroy_leaves_other_images_readable(vault: Vault) -> None:
    """Destroying one image does not affect another."""
    vault.put("IMG_a1", _synthetic_jpeg())
    stored_b = vault.put("IMG_b2", _synthetic_png())
    vault.destroy("IMG_a1")
    assert vault.get("IMG_b2", stored_b.wrapped_key) == _synthetic_png()


def test_putting_the_same_id_again_replaces_the_image(vault: Vault) -> None:
    """A second put under the same id replaces the image; only the new wrapped key opens it."""
    first = vault.put("IMG_a1", _synthetic_jpeg())
    second = vault.put("IMG_a1", _synthetic_png())
    assert vault.get("IMG_a1", second.wrapped_key) == _synthetic_png()
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_a1", first.wrapped_key)
    assert [path.name for path in vault.directory.iterdir()] == ["IMG_a1.enc"]


def test_torn_temporary_files_are_cleaned_and_images_kept(vault: Vault) -> None:
    """Temporary files left by a crash are removed at start-up; stored images are untouched."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    (vault.directory / ".tmp-0123456789abcdef01234567").write_bytes(b"torn ciphertext")
    (vault.directory / ".tmp-fedcba987654321001234567").write_bytes(b"")
    assert vault.clean_temporary_files() == 2
    assert [path.name for path in vault.directory.iterdir()] == ["IMG_a1.enc"]
    assert vault.get("IMG_a1", stored.wrapped_key) == _synthetic_jpeg()
    assert vault.clean_temporary_files() == 0


def test_orphan_files_without_a_row_are_swept(vault: Vault) -> None:
    """Image files the database does not know are removed and listed; known ones stay readable."""
    kept = vault.put("IMG_a1", _synthetic_jpeg())
    vault.put("IMG_b2", _synthetic_png())
    vault.put("IMG_c3", _synthetic_png())
    (vault.directory / "NOTES.txt").write_bytes(b"operator's file")
    (vault.directory / "sub.enc").mkdir()
    assert vault.sweep_orphans({"IMG_a1", "IMG_gone"}) == ["IMG_b2", "IMG_c3"]
    assert vault.get("IMG_a1", kept.wrapped_key) == _synthetic_jpeg()
    assert sorted(path.name for path in vault.directory.iterdir()) == ["IMG_a1.enc", "NOTES.txt", "sub.enc"]
    assert vault.sweep_orphans({"IMG_a1"}) == []


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
def test_unsafe_image_ids_are_refused_everywhere(tmp_path: Path, image_id: str) -> None:
    """An image id that could leave the directory or is not plain ASCII is refused by every operation."""
    vault = Vault(tmp_path / "vault", Keyring(NEW_KEY))
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(InvalidImageIdError):
        vault.put(image_id, b"synthetic")
    with pytest.raises(InvalidImageIdError):
        vault.get(image_id, stored.wrapped_key)
    with pytest.raises(InvalidImageIdError):
        vault.exists(image_id)
    with pytest.raises(InvalidImageIdError):
        vault.destroy(image_id)
    with pytest.raises(InvalidImageIdError):
        vault.rewrap(image_id, stored.wrapped_key)
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["IMG_a1.enc", "vault"]


def test_symlink_in_place_of_an_image_is_refused(vault: Vault, tmp_path: Path) -> None:
    """A symbolic link planted under an image's name is not followed."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    real = tmp_path / "elsewhere.enc"
    (vault.directory / "IMG_a1.enc").rename(real)
    (vault.directory / "IMG_a1.enc").symlink_to(real)
    with pytest.raises(ImageTamperedError):
        vault.get("IMG_a1", stored.wrapped_key)


def test_rewrapped_image_reads_after_the_old_master_key_is_dropped(tmp_path: Path) -> None:
    """After rotation, a rewrapped image key opens the image with only the new master key held."""
    photo = _synthetic_jpeg()
    directory = tmp_path / "vault"
    stored = Vault(directory, Keyring(OLD_KEY)).put("IMG_a1", photo)
    rotating = Keyring(NEW_KEY, previous=[OLD_KEY])
    assert rotating.needs_rewrap(stored.wrapped_key)
    rewrapped = Vault(directory, rotating).rewrap("IMG_a1", stored.wrapped_key)
    assert not rotating.needs_rewrap(rewrapped)
    after = Vault(directory, Keyring(NEW_KEY))
    assert after.get("IMG_a1", rewrapped) == photo
    with pytest.raises(ImageKeyUnavailableError, match="mk-0000000a"):
        after.get("IMG_a1", stored.wrapped_key)


def test_rewrap_refuses_a_key_belonging_to_another_image(vault: Vault) -> None:
    """Rewrapping cannot move one image's key onto another image id."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(ImageTamperedError):
        vault.rewrap("IMG_b2", stored.wrapped_key)


def test_every_read_failure_is_an_image_unreadable_error(vault: Vault) -> None:
    """Callers can catch one error type for every way an image cannot be returned."""
    stored = vault.put("IMG_a1", _synthetic_jpeg())
    with pytest.raises(ImageUnreadableError):
        vault.get("IMG_a1", b"\x01garbage")
    with pytest.raises(ImageUnreadableError):
        vault.get("IMG_nope", stored.wrapped_key)
