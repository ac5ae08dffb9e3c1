"""The practice's master key, and everything derived from it: key wrapping, sealed values, keyed hashes.

Key hierarchy::

    master key (32 random bytes, in the master key file, carries a key id such as "mk-1a2b3c4d")
     └── HKDF-SHA256, info = b"photobot/" + purpose            (Keyring.derive)
          ├── "key-wrap/v1"       AES-256-GCM key that wraps each image's own random key  (wrap_key)
          ├── "sealed-value/v1"   AES-256-GCM key for small values in SQLite columns      (Sealer)
          ├── "lookup/<purpose>"  HMAC-SHA256 key for keyed hashes, e.g. NHS-number look-ups  (lookup_hash)
          └── "nio-store-pickle"  passphrase matrix-nio encrypts its store with  (nio_pickle_passphrase)

The master secret itself never encrypts anything: each use has its own derived key, so a blob made for one
purpose can never be opened as another (a sealed value is not a wrapped key, whatever its AAD).

Blob format (wrapped keys and sealed values alike), so that every blob says which master key made it::

    version (1 byte, = 1) | key-id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag (16)

The version byte and key id are also part of the associated data, followed by the caller's AAD (the image
id, or a sealed value's context), so neither can be altered or moved without the tag failing. A wrapped
image key is 73 bytes; a sealed value is its plaintext plus 41 bytes.

Rotation: a `Keyring` holds the current master key and any previous ones. It opens blobs made under any key
it holds and always makes new ones under the current key; `needs_rewrap` tells which blobs still name an
older key. Derived values (`derive`, `lookup_hash`, `nio_pickle_passphrase`) come from the current key by
default, so they change when the key is rotated: the rotation command recomputes stored look-up hashes and
re-keys nio's store, for which each of those accepts an explicit ``key_id`` of any held key.

Master key file format (version 1): a single line of ASCII, then a newline::

    photobot-master-key v1 <key id> <the 32-byte secret in standard base64, with padding>

for example ``photobot-master-key v1 mk-1a2b3c4d <44 base64 characters>``. The file must be a regular file
that only its owner can read or write (mode 0600 or 0400); `load_master_key_file` refuses anything else and
never creates a file. Losing this file makes every stored image and sealed value unreadable: back it up
separately from the data, because a backup that holds both protects nothing.

Sealed values use one derived key per purpose with a random 96-bit nonce per value, rather than a fresh
data key per value: values are small and live in the same row they would need a wrapped key in, so a
per-value key would buy no crypto-shredding (deleting the row already does that, with secure_delete) and
would cost a second AES-GCM operation and 60 more bytes per value. Random nonces under one key are safe
for about 2**32 seals (NIST SP 800-38D); a practice seals perhaps thousands a day, and each rotation starts
a new key.

Exceptions::

    CryptoError                  a blob cannot be opened; never "wrong bytes"
    ├── KeyUnavailableError      made under a master key this keyring does not hold
    └── IntegrityCheckError      altered, truncated, malformed, or bound to other AAD / another context
    MasterKeyError               the master key file is missing or unsafe; the message tells the operator
                                 what is wrong and what to do
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.durable_files import fsync_directory, write_all

MASTER_KEY_BYTES = 32
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
BLOB_VERSION = 1

MASTER_KEY_FILE_MAGIC = "photobot-master-key"
MASTER_KEY_FILE_VERSION = "v1"
_MAX_MASTER_KEY_FILE_BYTES = 4096  # a real file is about 80 bytes; anything big is not ours

_KEY_ID_PATTERN = re.compile(r"mk-[0-9a-f]{8}")
_PURPOSE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._/-]{0,63}")
_KDF_INFO_PREFIX = b"photobot/"
_WRAP_PURPOSE = "key-wrap/v1"
_SEAL_PURPOSE = "sealed-value/v1"
_NIO_PICKLE_PURPOSE = "nio-store-pickle"


class CryptoError(Exception):
    """A wrapped key or sealed value could not be opened."""


class KeyUnavailableError(CryptoError):
    """The blob was made under a master key that this keyring does not hold."""


class IntegrityCheckError(CryptoError):
    """The blob was altered, truncated or malformed, or belongs to other associated data."""


class MasterKeyError(Exception):
    """The master key file is missing or unsafe; the message is the sentence the operator reads."""


@dataclass(frozen=True, repr=False)
class MasterKey:
    """One master key: its public key id and its 32-byte secret. `repr` shows the key id only."""

    key_id: str
    secret: bytes

    def __post_init__(self) -> None:
        if not _KEY_ID_PATTERN.fullmatch(self.key_id):
            raise ValueError("a master key id looks like 'mk-' followed by 8 lower-case hex digits")
        if len(self.secret) != MASTER_KEY_BYTES:
            raise ValueError(f"a master key secret is {MASTER_KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> MasterKey:
        """A new random master key with a fresh key id."""
        return cls(key_id="mk-" + secrets.token_hex(4), secret=secrets.token_bytes(MASTER_KEY_BYTES))


# --- the master key file -------------------------------------------------------------------------------


def _format_master_key_file(key: MasterKey) -> bytes:
    encoded = base64.b64encode(key.secret).decode("ascii")
    return f"{MASTER_KEY_FILE_MAGIC} {MASTER_KEY_FILE_VERSION} {key.key_id} {encoded}\n".encode("ascii")


def create_master_key_file(path: Path) -> MasterKey:
    """Create a new master key file at `path` (mode 0600) and return the key; never overwrite a file.

    The key is written to a temporary file in the same directory (created O_EXCL, mode 0600), synced, and
    hard-linked to `path`, which fails if anything already exists there; the directory is then synced. So
    after a crash `path` either holds a complete key or does not exist: there is never a torn key file
    that an operator might be tempted to delete.
    """
    directory = path.parent
    if not directory.is_dir():
        raise MasterKeyError(
            f"Cannot create the master key file {path}: the directory {directory} does not exist. "
            "Create it (mode 700) first, or choose another location."
        )
    if path.exists() or path.is_symlink():
        raise MasterKeyError(
            f"The master key file {path} already exists; refusing to overwrite it, because every stored "
            "image and sealed value depends on it. Use the existing key, or move the old file away "
            "yourself if you are certain nothing was encrypted with it."
        )
    key = MasterKey.generate()
    temporary = directory / f".{path.name}.tmp-{secrets.token_hex(8)}"
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask, exactly owner read/write
            write_all(fd, _format_master_key_file(key))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise MasterKeyError(
                f"The master key file {path} already exists; refusing to overwrite it, because every "
                "stored image and sealed value depends on it."
            ) from None
    except OSError as error:
        raise MasterKeyError(
            f"Cannot create the master key file {path}: {error.strerror}. Check that this user may write "
            f"to {directory}."
        ) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    fsync_directory(directory)
    return key


def destroy_master_key_file(path: Path) -> bool:
    """Overwrite the key file at `path` with zeros, sync, remove it and sync its directory; False if absent.

    For a key that a rotation has replaced. Overwriting in place is best effort (a copy-on-write or
    journalling file system, or an SSD, may keep the old blocks): what makes the old key harmless is that
    nothing is encrypted under it any more. Never follows a symbolic link.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        write_all(fd, bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_directory(path.parent)
    return True


def load_master_key_file(path: Path) -> MasterKey:
    """Read the master key from `path`, refusing a missing, non-regular, shared or malformed file.

    Never creates anything. A symbolic link is followed (container secrets are often mounted that way);
    the permission check applies to the file it points to. Error messages never contain file contents.
    """
    try:
        # O_NONBLOCK: opening a FIFO someone left at the path must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MasterKeyError(
            f"The master key file {path} does not exist. If this is a new installation, run "
            "`photobot init` to create it; otherwise point the configuration at your existing key file "
            "(restore it from your key backup): without it no stored image can be read."
        ) from None
    except PermissionError:
        raise MasterKeyError(
            f"The master key file {path} cannot be read by this user (uid {os.geteuid()}). Make the bot's "
            f"user its owner, e.g. `chown <bot user> {path}`, and keep its mode at 600."
        ) from None
    except IsADirectoryError:
        raise MasterKeyError(
            f"The master key path {path} is a directory, not a key file. Point the configuration at the "
            "key file itself."
        ) from None
    except OSError as error:
        raise MasterKeyError(f"Cannot open the master key file {path}: {error.strerror}.") from error
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise MasterKeyError(
                f"The master key path {path} is not a regular file. Point the configuration at the key "
                "file created by `photobot init`."
            )
        if status.st_mode & 0o077:
            raise MasterKeyError(
                f"The master key file {path} is accessible to other users (mode "
                f"{stat.S_IMODE(status.st_mode):03o}); refusing to use it. Run `chmod 600 {path}`. If "
                "anyone else could have read it, rotate the key with `photobot key rotate`."
            )
        content = os.read(fd, _MAX_MASTER_KEY_FILE_BYTES + 1)
    except PermissionError:
        raise MasterKeyError(
            f"The master key file {path} cannot be read by this user (uid {os.geteuid()}). Make the bot's "
            f"user its owner, e.g. `chown <bot user> {path}`, and keep its mode at 600."
        ) from None
    finally:
        os.close(fd)
    return _parse_master_key_file(path, content)


def _parse_master_key_file(path: Path, content: bytes) -> MasterKey:
    expected = (
        f"expected a single line '{MASTER_KEY_FILE_MAGIC} {MASTER_KEY_FILE_VERSION} <key id> <base64 key>'"
    )

    def malformed(what: str) -> MasterKeyError:
        return MasterKeyError(
            f"The master key file {path} is not a valid photobot master key file ({what}; {expected}). "
            "Restore it from your key backup; do not edit it by hand."
        )

    if len(content) > _MAX_MASTER_KEY_FILE_BYTES:
        raise malformed("it is far too large")
    if not content:
        raise malformed("it is empty")
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        raise malformed("it contains non-ASCII bytes") from None
    if text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise malformed("it has more than one line")
    fields = text.split(" ")
    if len(fields) < 2 or fields[0] != MASTER_KEY_FILE_MAGIC:
        raise malformed("it does not start with the photobot master key header")
    if not re.fullmatch(r"v[0-9]{1,3}", fields[1]):
        raise malformed("the second field is not a format version such as 'v1'")
    if fields[1] != MASTER_KEY_FILE_VERSION:
        raise MasterKeyError(
            f"The master key file {path} has format version {fields[1]}, which this version of "
            f"photobot does not read (it reads {MASTER_KEY_FILE_VERSION}). Upgrade photobot, or restore "
            "the key file from your backup."
        )
    if len(fields) != 4:
        raise malformed("it does not have exactly four space-separated fields")
    key_id, encoded = fields[2], fields[3]
    if not _KEY_ID_PATTERN.fullmatch(key_id):
        raise malformed("the key id is not 'mk-' followed by 8 lower-case hex digits")
    try:
        secret = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise malformed("the key is not valid base64") from None
    if len(secret) != MASTER_KEY_BYTES:
        raise malformed(f"the key is not {MASTER_KEY_BYTES} bytes long")
    return MasterKey(key_id=key_id, secret=secret)


# --- the keyring ---------------------------------------------------------------------------------------


def _hkdf(secret: bytes, purpose: str) -> bytes:
    if not _PURPOSE_PATTERN.fullmatch(purpose):
        raise ValueError("a purpose is 1-64 characters of lower-case letters, digits and . _ / -")
    kdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,  # the input is already a uniformly random key: RFC 5869 allows an absent salt
        info=_KDF_INFO_PREFIX + purpose.encode("ascii"),
    )
    return kdf.derive(secret)


def _blob_header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(encoded))) + encoded


@dataclass(frozen=True)
class _ParsedBlob:
    header: bytes
    key_id: str
    nonce: bytes
    ciphertext: memoryview


def _parse_blob(blob: bytes) -> _ParsedBlob:
    if len(blob) < 2:
        raise IntegrityCheckError("the encrypted value is truncated")
    if blob[0] != BLOB_VERSION:
        raise IntegrityCheckError(f"the encrypted value has unknown format version {blob[0]}")
    key_id_end = 2 + blob[1]
    nonce_end = key_id_end + NONCE_BYTES
    if len(blob) < nonce_end + TAG_BYTES:
        raise IntegrityCheckError("the encrypted value is truncated")
    try:
        key_id = blob[2:key_id_end].decode("ascii")
    except UnicodeDecodeError:
        raise IntegrityCheckError("the encrypted value names a malformed key id") from None
    if not _KEY_ID_PATTERN.fullmatch(key_id):
        raise IntegrityCheckError("the encrypted value names a malformed key id")
    return _ParsedBlob(
        header=blob[:key_id_end],
        key_id=key_id,
        nonce=blob[key_id_end:nonce_end],
        ciphertext=memoryview(blob)[nonce_end:],
    )


class Keyring:
    """The current master key plus any previous ones still held during a rotation.

    New blobs are always made under the current key; blobs made under any held key can be opened.
    """

    def __init__(self, current: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        keys: dict[str, MasterKey] = {}
        for key in (current, *previous):
            if key.key_id in keys:
                raise MasterKeyError(
                    f"Two master keys share the key id {key.key_id}; each key file must hold a different "
                    "key. Remove the duplicate from the configuration."
                )
            keys[key.key_id] = key
        self._current = current
        self._keys = keys

    def __repr__(self) -> str:
        previous = [key_id for key_id in self._keys if key_id != self._current.key_id]
        return f"Keyring(current={self._current.key_id!r}, previous={previous!r})"

    @property
    def current_key_id(self) -> str:
        """The key id every new wrapped key and sealed value is made under."""
        return self._current.key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this keyring can open blobs for, the current one first."""
        return tuple(self._keys)

    def _master(self, key_id: str | None) -> MasterKey:
        if key_id is None:
            return self._current
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyUnavailableError(
                f"made under master key {key_id}, which this keyring does not hold"
            ) from None

    def derive(self, purpose: str, *, key_id: str | None = None) -> bytes:
        """A 32-byte key for `purpose`: HKDF-SHA256 of the current (or named) master key."""
        return _hkdf(self._master(key_id).secret, purpose)

    def nio_pickle_passphrase(self, *, key_id: str | None = None) -> str:
        """The passphrase matrix-nio encrypts its Olm/Megolm store with (64 hex characters)."""
        return self.derive(_NIO_PICKLE_PURPOSE, key_id=key_id).hex()

    def keyed_digest(self, data: bytes, *, purpose: str, key_id: str | None = None) -> str:
        """HMAC-SHA256 of `data` under a key derived for `purpose`, as hex.

        Unlike a plain hash, nobody without the master key can confirm a guess of `data` from it. Stable
        while the master key is unchanged; a rotation changes it.
        """
        digest_key = self.derive("lookup/" + purpose, key_id=key_id)
        return hmac.new(digest_key, data, hashlib.sha256).hexdigest()

    def lookup_hash(self, value: str, *, purpose: str, key_id: str | None = None) -> str:
        """A keyed hash of `value` (UTF-8) for equality look-ups, e.g. purpose="nhs-number"."""
        return self.keyed_digest(value.encode("utf-8"), purpose=purpose, key_id=key_id)

    def encrypt(self, plaintext: bytes, *, purpose: str, aad: bytes) -> bytes:
        """AES-256-GCM under the current key's subkey for `purpose`, as a self-describing blob."""
        header = _blob_header(self._current.key_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(_hkdf(self._current.secret, purpose)).encrypt(nonce, plaintext, header + aad)
        return header + nonce + ciphertext

    def decrypt(self, blob: bytes, *, purpose: str, aad: bytes) -> bytes:
        """Open a blob made by `encrypt` under any held key, or raise a `CryptoError`."""
        parsed = _parse_blob(blob)
        master = self._master(parsed.key_id)
        try:
            return AESGCM(_hkdf(master.secret, purpose)).decrypt(
                parsed.nonce, parsed.ciphertext, parsed.header + aad
            )
        except InvalidTag:
            raise IntegrityCheckError(
                "the encrypted value was altered, or belongs to other associated data"
            ) from None

    def wrap_key(self, data_key: bytes, *, aad: bytes) -> bytes:
        """Encrypt a 32-byte data key under the current master key, bound to `aad` (e.g. the image id)."""
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError(f"a data key is {DATA_KEY_BYTES} bytes")
        return self.encrypt(data_key, purpose=_WRAP_PURPOSE, aad=aad)

    def unwrap_key(self, wrapped: bytes, *, aad: bytes) -> bytes:
        """The data key inside `wrapped`, found by its embedded key id; `CryptoError` if it cannot be."""
        data_key = self.decrypt(wrapped, purpose=_WRAP_PURPOSE, aad=aad)
        if len(data_key) != DATA_KEY_BYTES:
            raise IntegrityCheckError("the wrapped value is not a data key")
        return data_key

    def needs_rewrap(self, blob: bytes) -> bool:
        """True if `blob` (a wrapped key or sealed value) was made under a key other than the current one.

        Raises `IntegrityCheckError` if `blob` is not one of ours.
        """
        return _parse_blob(blob).key_id != self._current.key_id

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The key id a wrapped key or sealed value was made under (not secret)."""
        return _parse_blob(blob).key_id

    @staticmethod
    def blob_prefix(key_id: str) -> bytes:
        """The first bytes of every wrapped key and sealed value made under `key_id` (to find them in SQL)."""
        if not _KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError("a master key id looks like 'mk-' followed by 8 lower-case hex digits")
        return _blob_header(key_id)


class Sealer:
    """Encrypts small sensitive values kept in SQLite columns: NHS numbers, queued texts, media ids.

    `context` is bound as associated data, so a sealed value opens only in the row it was made for. Use a
    string that names the column and the row, e.g. "conversation.nhs_number:!room:example.org". Sealing
    the same value twice gives different bytes (random nonce), so equal values cannot be linked; use
    `Keyring.lookup_hash` where look-ups are needed.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    @staticmethod
    def _context_bytes(context: str) -> bytes:
        if not context:
            raise ValueError("a sealed value needs a context naming the row it belongs to")
        return context.encode("utf-8")

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt `plaintext` under the current master key, bound to `context`."""
        return self._keyring.encrypt(plaintext, purpose=_SEAL_PURPOSE, aad=self._context_bytes(context))

    def open(self, sealed: bytes, *, context: str) -> bytes:
        """The plaintext of `sealed`; `CryptoError` if it was altered or made for another context."""
        return self._keyring.decrypt(sealed, purpose=_SEAL_PURPOSE, aad=self._context_bytes(context))

    def reseal(self, sealed: bytes, *, context: str) -> bytes:
        """`sealed` opened with whichever held key made it and sealed again under the current key."""
        return self.seal(self.open(sealed, context=context), context=context)

    def seal_json(self, value: object, *, context: str) -> bytes:
        """Seal `value` as compact UTF-8 JSON (no NaN or infinity)."""
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return self.seal(text.encode("utf-8"), context=context)

    def open_json(self, sealed: bytes, *, context: str) -> Any:
        """The JSON value sealed by `seal_json`."""
        return json.loads(self.open(sealed, context=context))
