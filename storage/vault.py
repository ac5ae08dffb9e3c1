"""The encrypted image store: one file per image, each under its own random key wrapped by the keyring.

Synchronous by design: the caller runs it in a worker thread. `ImageVault` is what callers use; `Vault`
(this module, files in a directory) and `storage.s3_vault.S3Vault` (objects in an S3-compatible bucket,
same object format, same exceptions) implement it; `bot.backends.open_vault` picks one from the settings.

On disk, in a directory of mode 0700, each image is one file named ``<image id>.enc`` (mode 0600)::

    b"PBIM" | version (1 byte, = 1) | nonce (12 bytes) | AES-256-GCM ciphertext + tag (16 bytes)

The key is 32 fresh random bytes per image; the associated data is ``b"photobot/image/v1:" + image id``,
so a file renamed to another image's name does not open. The key is wrapped by `Keyring.wrap_key` with the
same image id as associated data, and the wrapped key (73 bytes) belongs in the database row, never next
to the file. Image ids are opaque random strings chosen by the caller: file names say nothing about the
patient, and ids are checked against ``[A-Za-z0-9_-]{1,64}`` so a name can never leave the directory.

No plaintext reaches the disk, not even in temporary files: only ciphertext is written (the operating
system may still swap process memory; run with encrypted swap or none). Writes go to a temporary file in
the same directory (``.tmp-<random>``), which is synced, renamed over the final name and followed by a
sync of the directory, so a crash leaves either the old file, the new one, or a torn temporary file that
`clean_temporary_files` removes at start-up.

`StoredImage.digest` is an HMAC-SHA256 of the plaintext under a key derived from the master key
(`Keyring.keyed_digest`, purpose "image"), not a plain SHA-256: a plain hash would let anyone who reads
the database confirm a guess of an image (for instance one copied from a patient's phone). It serves to
spot the same photo sent twice and to name an image in a deletion receipt; it is comparable only between
images stored under the same master key.

Exceptions::

    VaultError
    ├── InvalidImageIdError (also a ValueError)   the id is not a safe file name
    ├── VaultUnavailableError                     the object store could not be reached or failed a
    │                                             request (S3 only; the file vault raises OSError)
    ├── VaultConfigError                          the object store refused the credentials, has no such
    │                                             bucket, or keeps old versions of deleted objects
    └── ImageUnreadableError                      get() cannot return the image; it never returns wrong bytes
        ├── ImageMissingError                     no file: destroyed, or never stored
        ├── ImageKeyUnavailableError              wrapped under a master key the keyring does not hold
        └── ImageTamperedError                    the file or wrapped key was altered, truncated, or belongs
                                                  to another image
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.durable_files import fsync_directory, write_all
from bot.keyring import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    IntegrityCheckError,
    Keyring,
    KeyUnavailableError,
)

IMAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
FILE_SUFFIX = ".enc"
TEMPORARY_PREFIX = ".tmp-"
_MAGIC = b"PBIM"
_FORMAT_VERSION = 1
_HEADER = _MAGIC + bytes((_FORMAT_VERSION,))
_IMAGE_AAD_PREFIX = b"photobot/image/v1:"
_KEY_AAD_PREFIX = b"photobot/image-key/v1:"
IMAGE_DIGEST_PURPOSE = "image"  # the purpose of each image's keyed digest (key rotation checks it)


class VaultError(Exception):
    """Base of every error the vault raises."""


class InvalidImageIdError(VaultError, ValueError):
    """The image id is not 1-64 characters of A-Z, a-z, 0-9, '_' and '-'."""


class VaultUnavailableError(VaultError):
    """The object store could not be reached, or refused the credentials or the request."""


class VaultConfigError(VaultError):
    """The object store refused the credentials, has no such bucket, or keeps deleted objects' old versions."""


class ImageUnreadableError(VaultError):
    """The image cannot be returned; the vault never returns wrong bytes instead."""


class ImageMissingError(ImageUnreadableError):
    """There is no file for this image id: it was destroyed, or never stored."""


class ImageKeyUnavailableError(ImageUnreadableError):
    """The image key was wrapped under a master key that the keyring does not hold."""


class ImageTamperedError(ImageUnreadableError):
    """The file or the wrapped key was altered or truncated, or belongs to another image."""


@dataclass(frozen=True)
class StoredImage:
    """What the caller keeps in the database row for an image stored by `Vault.put`."""

    image_id: str
    wrapped_key: bytes
    size: int  # bytes of plaintext
    digest: str  # keyed HMAC-SHA256 of the plaintext, hex (see the module docstring)


class ImageVault(Protocol):
    """What callers use of an image vault, whichever place it keeps the ciphertext in.

    Every method is synchronous (run it in a worker thread) and raises only `VaultError`s (the file vault
    may also raise OSError for a failing disk).
    """

    def put(
        self, image_id: str, plaintext: bytes, *, part_written: Callable[[], None] | None = None
    ) -> StoredImage: ...

    def get(self, image_id: str, wrapped_key: bytes) -> bytes: ...

    def destroy(self, image_id: str) -> bool: ...

    def exists(self, image_id: str) -> bool: ...

    def image_ids(self) -> list[str]: ...

    def clean_temporary_files(self) -> int: ...

    def sweep_orphans(self, known_ids: Collection[str]) -> list[str]: ...

    def rewrap(self, image_id: str, wrapped_key: bytes) -> bytes: ...

    def check(self) -> None:
        """Raise a `VaultError` (or OSError) unless images can be written, read, listed and deleted."""


def check_image_id(image_id: str) -> str:
    """`image_id` if it is a safe name (1-64 of A-Z, a-z, 0-9, '_', '-'); else InvalidImageIdError."""
    if not isinstance(image_id, str) or not IMAGE_ID_PATTERN.fullmatch(image_id):
        raise InvalidImageIdError("an image id is 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")
    return image_id


def seal_image(keyring: Keyring, image_id: str, plaintext: bytes) -> tuple[StoredImage, bytes]:
    """A fresh key for `image_id`: what the database row keeps, and the bytes the vault stores."""
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _image_aad(image_id))
    stored = StoredImage(
        image_id=image_id,
        wrapped_key=keyring.wrap_key(data_key, aad=_key_aad(image_id)),
        size=len(plaintext),
        digest=keyring.keyed_digest(plaintext, purpose=IMAGE_DIGEST_PURPOSE),
    )
    return stored, _HEADER + nonce + ciphertext


def open_image(keyring: Keyring, image_id: str, wrapped_key: bytes, content: bytes) -> bytes:
    """The plaintext of `content` stored as `image_id`, or an `ImageUnreadableError`; never wrong bytes."""
    data_key = unwrap_image_key(keyring, image_id, wrapped_key)
    body_start = len(_HEADER) + NONCE_BYTES
    if len(content) < body_start + TAG_BYTES or not content.startswith(_HEADER):
        raise ImageTamperedError(f"image {image_id}'s file is truncated or not a vault file")
    view = memoryview(content)
    try:
        return AESGCM(data_key).decrypt(
            view[len(_HEADER) : body_start], view[body_start:], _image_aad(image_id)
        )
    except InvalidTag:
        raise ImageTamperedError(
            f"image {image_id}'s file was altered, or its key belongs to another image"
        ) from None


def unwrap_image_key(keyring: Keyring, image_id: str, wrapped_key: bytes) -> bytes:
    try:
        return keyring.unwrap_key(wrapped_key, aad=_key_aad(image_id))
    except KeyUnavailableError as error:
        raise ImageKeyUnavailableError(f"image {image_id}'s key was {error}") from None
    except IntegrityCheckError:
        raise ImageTamperedError(
            f"image {image_id}'s wrapped key was altered, or belongs to another image"
        ) from None


def rewrap_image_key(keyring: Keyring, image_id: str, wrapped_key: bytes) -> bytes:
    """`wrapped_key` unwrapped with whichever held master key made it and wrapped under the current one."""
    data_key = unwrap_image_key(keyring, check_image_id(image_id), wrapped_key)
    return keyring.wrap_key(data_key, aad=_key_aad(image_id))


def _image_aad(image_id: str) -> bytes:
    return _IMAGE_AAD_PREFIX + image_id.encode("ascii")


def _key_aad(image_id: str) -> bytes:
    return _KEY_AAD_PREFIX + image_id.encode("ascii")


class Vault:
    """Encrypted image files in one directory, each under its own key wrapped by `keyring`.

    One writer per image id at a time (the caller's per-submission lock); different ids may be written
    from different threads at once.
    """

    def __init__(self, directory: Path, keyring: Keyring) -> None:
        """Use `directory`, creating it with mode 0700 if missing and tightening it to 0700 if shared."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.stat()
        if not stat.S_ISDIR(status.st_mode):
            raise NotADirectoryError(directory)
        if stat.S_IMODE(status.st_mode) != 0o700:
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask; an old directory may be shared
        self._directory = directory
        self._keyring = keyring

    @property
    def directory(self) -> Path:
        """The directory the image files live in."""
        return self._directory

    def _path(self, image_id: str) -> Path:
        return self._directory / (check_image_id(image_id) + FILE_SUFFIX)

    def put(
        self, image_id: str, plaintext: bytes, *, part_written: Callable[[], None] | None = None
    ) -> StoredImage:
        """Encrypt and store `plaintext` as `image_id`, atomically replacing any earlier file of that id.

        Returns what the caller must commit to the database. Replacing an image makes its previous
        wrapped key useless: commit the new one. `part_written` is called once part of the temporary file
        is written, before the rest, the sync and the rename: a test's crash point for a torn write.
        """
        final = self._path(image_id)
        stored, content = seal_image(self._keyring, image_id, plaintext)
        temporary = self._directory / f"{TEMPORARY_PREFIX}{secrets.token_hex(12)}"
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                view, half = memoryview(content), len(content) // 2
                write_all(fd, view[:half])
                if part_written is not None:
                    part_written()
                write_all(fd, view[half:])
                os.fsync(fd)
            finally:
                os.close(fd)
            temporary.replace(final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        fsync_directory(self._directory)
        return stored

    def get(self, image_id: str, wrapped_key: bytes) -> bytes:
        """The plaintext of `image_id`, or an `ImageUnreadableError`; never bytes of another image."""
        path = self._path(image_id)
        try:
            # O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO planted in the vault is refused, not followed.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ImageMissingError(f"image {image_id} is not in the vault") from None
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise ImageTamperedError(f"image {image_id}'s file is a symbolic link") from None
        with os.fdopen(fd, "rb", buffering=0) as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImageTamperedError(f"image {image_id}'s file is not a regular file")
            content = file.read()
        return open_image(self._keyring, image_id, wrapped_key, content)

    def destroy(self, image_id: str) -> bool:
        """Remove the image's file; True if there was one.

        This alone is not crypto-shredding: a backup or a recovered disk block may still hold the
        ciphertext. What makes every copy unreadable is the caller deleting the row holding the wrapped
        key, with ``PRAGMA secure_delete=ON`` and a WAL checkpoint (TRUNCATE), in the same operation.
        """
        path = self._path(image_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_directory(self._directory)
        return True

    def exists(self, image_id: str) -> bool:
        """True if a file is stored for `image_id` (whether or not its key still exists)."""
        return self._path(image_id).is_file()

    def image_ids(self) -> list[str]:
        """The id of every image file in the vault, sorted (whether or not its key still exists)."""
        ids = []
        for path in self._entries_not_directories():
            image_id = path.name.removesuffix(FILE_SUFFIX)
            if path.name.endswith(FILE_SUFFIX) and IMAGE_ID_PATTERN.fullmatch(image_id):
                ids.append(image_id)
        return sorted(ids)

    def check(self) -> None:
        """Nothing beyond opening: the directory was created (or tightened) when the vault was opened."""

    def _entries_not_directories(self) -> list[Path]:
        entries = []
        for path in self._directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISDIR(path.lstat().st_mode):
                    entries.append(path)
        return entries

    def clean_temporary_files(self) -> int:
        """Remove temporary files left by a crash during `put`; returns how many were removed.

        Call at start-up, before any `put` runs: it would remove the temporary file of a `put` in flight.
        """
        removed = 0
        for path in self._entries_not_directories():
            if path.name.startswith(TEMPORARY_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if removed:
            fsync_directory(self._directory)
        return removed

    def sweep_orphans(self, known_ids: Collection[str]) -> list[str]:
        """Remove image files that have no database row (a crash between rename and commit).

        `known_ids` is every image id the database holds a wrapped key for. Only files named like vault
        images are considered; anything else in the directory is left alone. Returns the removed ids,
        sorted. Call at start-up, before any `put` runs: a `put` whose row is not committed yet would
        look like an orphan.
        """
        known = set(known_ids)
        removed: list[str] = []
        for path in self._entries_not_directories():
            if not path.name.endswith(FILE_SUFFIX):
                continue
            image_id = path.name[: -len(FILE_SUFFIX)]
            if IMAGE_ID_PATTERN.fullmatch(image_id) and image_id not in known:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(image_id)
        if removed:
            fsync_directory(self._directory)
        return sorted(removed)

    def rewrap(self, image_id: str, wrapped_key: bytes) -> bytes:
        """`wrapped_key` unwrapped with whichever held master key made it and wrapped under the current one.

        For key rotation: the image file is untouched; the caller stores the returned wrapped key.
        """
        return rewrap_image_key(self._keyring, image_id, wrapped_key)
