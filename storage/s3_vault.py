"""The encrypted image store in an S3-compatible bucket: one object per image, the file vault's format.

Each image is one object named ``<prefix>/<image id>.enc`` whose body is exactly what the file vault writes
(``PBIM`` | version | nonce | AES-256-GCM ciphertext + tag, the image id bound in as associated data; see
`storage.vault`). The object store only ever sees ciphertext, under the caller's opaque image id: no
plaintext, no key, no content type or metadata that says what the object is. A PUT is atomic in S3, so
there are no temporary objects to clean up after a crash; an object whose row was never committed is an
orphan that `sweep_orphans` removes at start-up, as with files.

Synchronous, like the file vault: callers run it in a worker thread. One boto3 client is shared by every
thread (boto3 clients are thread-safe; only their creation is not), with short connect and read timeouts
and boto's "standard" retry mode, so a store that is down fails a request in seconds rather than hanging a
worker. Every failure of the store becomes a `VaultUnavailableError` whose message names the operation,
the image id and S3's error code, never the endpoint's credentials, a key or any image bytes.

Deleting really deletes only on a bucket without versioning: with versioning on, a DELETE leaves the old
version behind. `check` (run by `photobot check` and at start-up) refuses such a bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.keyring import Keyring
from storage.vault import (
    FILE_SUFFIX,
    IMAGE_ID_PATTERN,
    ImageMissingError,
    StoredImage,
    VaultConfigError,
    VaultUnavailableError,
    check_image_id,
    open_image,
    rewrap_image_key,
    seal_image,
)

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

CONNECT_TIMEOUT_SECONDS: Final = 5
READ_TIMEOUT_SECONDS: Final = 30
MAX_ATTEMPTS: Final = 4
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_PROBE_NAME: Final = "photobot-check-"


@dataclass(frozen=True)
class S3Location:
    """Where the vault's objects live and how to reach them (from PHOTOBOT_VAULT_URL and PHOTOBOT_S3_*)."""

    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket's top
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"


def new_client(location: S3Location) -> S3Client:
    """A client for `location` with bounded timeouts and retries (safe to share between threads)."""
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=location.endpoint,
        aws_access_key_id=location.access_key,
        aws_secret_access_key=location.secret_key,
        region_name=location.region,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))


def _unavailable(what: str, error: Exception) -> VaultUnavailableError | VaultConfigError:
    """A message naming the operation and S3's error code or the failure's kind, never an address or key."""
    if isinstance(error, ClientError):
        code = _code(error)
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}:
            return VaultConfigError(
                f"the object store refused to {what} ({code}): check PHOTOBOT_S3_ACCESS_KEY,"
                " PHOTOBOT_S3_SECRET_KEY and the key's rights on the bucket"
            )
        if code in {"NoSuchBucket", "404"}:
            return VaultConfigError(
                f"the object store refused to {what} ({code}): the bucket in PHOTOBOT_VAULT_URL does not exist"
            )
        return VaultUnavailableError(f"the object store refused to {what} ({code})")
    return VaultUnavailableError(
        f"the object store could not be reached to {what} ({type(error).__name__}): check PHOTOBOT_S3_ENDPOINT"
    )


class S3Vault:
    """Encrypted images as objects in one bucket under one prefix, each under its own key wrapped by `keyring`."""

    def __init__(self, location: S3Location, keyring: Keyring, *, client: S3Client | None = None) -> None:
        self._location = location
        self._bucket = location.bucket
        self._prefix = f"{location.prefix.strip('/')}/" if location.prefix.strip("/") else ""
        self._keyring = keyring
        self._client = client if client is not None else new_client(location)

    @property
    def location(self) -> S3Location:
        return self._location

    def object_name(self, image_id: str) -> str:
        """The object key of `image_id`: the prefix and the opaque id, nothing else."""
        return f"{self._prefix}{check_image_id(image_id)}{FILE_SUFFIX}"

    def put(
        self, image_id: str, plaintext: bytes, *, part_written: Callable[[], None] | None = None
    ) -> StoredImage:
        """Encrypt and store `plaintext` as `image_id`, replacing any earlier object of that id.

        A PUT is all or nothing, so `part_written` (a test's torn-write crash point) is called just before
        the upload: a crash there leaves no object at all.
        """
        name = self.object_name(image_id)
        stored, content = seal_image(self._keyring, image_id, plaintext)
        if part_written is not None:
            part_written()
        try:
            self._client.put_object(Bucket=self._bucket, Key=name, Body=content)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(f"store image {image_id}", error) from None
        return stored

    def get(self, image_id: str, wrapped_key: bytes) -> bytes:
        """The plaintext of `image_id`, or an `ImageUnreadableError`; never bytes of another image."""
        name = self.object_name(image_id)
        try:
            content = self._client.get_object(Bucket=self._bucket, Key=name)["Body"].read()
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                raise ImageMissingError(f"image {image_id} is not in the vault") from None
            raise _unavailable(f"read image {image_id}", error) from None
        except BotoCoreError as error:
            raise _unavailable(f"read image {image_id}", error) from None
        return open_image(self._keyring, image_id, wrapped_key, content)

    def exists(self, image_id: str) -> bool:
        """True if an object is stored for `image_id` (whether or not its key still exists)."""
        name = self.object_name(image_id)
        try:
            self._client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                return False
            raise _unavailable(f"look for image {image_id}", error) from None
        except BotoCoreError as error:
            raise _unavailable(f"look for image {image_id}", error) from None
        return True

    def destroy(self, image_id: str) -> bool:
        """Delete the image's object; True if there was one.

        As with files, this alone is not crypto-shredding: deleting the row holding the wrapped key is
        (see `storage.vault.Vault.destroy`).
        """
        name = self.object_name(image_id)
        if not self.exists(image_id):
            return False
        try:
            self._client.delete_object(Bucket=self._bucket, Key=name)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(f"delete image {image_id}", error) from None
        return True

    def _names(self) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"]
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("list the vault", error) from None

    def image_ids(self) -> list[str]:
        """The id of every image object under the prefix, sorted (whether or not its key still exists)."""
        ids = []
        for name in self._names():
            relative = name[len(self._prefix) :]
            image_id = relative.removesuffix(FILE_SUFFIX)
            if relative.endswith(FILE_SUFFIX) and IMAGE_ID_PATTERN.fullmatch(image_id):
                ids.append(image_id)
        return sorted(ids)

    def clean_temporary_files(self) -> int:
        """Nothing to do: an S3 PUT leaves no temporary object behind. Returns 0."""
        return 0

    def sweep_orphans(self, known_ids: Collection[str]) -> list[str]:
        """Delete image objects that have no database row; returns their ids, sorted (see `Vault`)."""
        known = set(known_ids)
        removed = []
        for image_id in self.image_ids():
            if image_id not in known:
                try:
                    self._client.delete_object(Bucket=self._bucket, Key=self.object_name(image_id))
                except (ClientError, BotoCoreError) as error:
                    raise _unavailable(f"delete orphaned image {image_id}", error) from None
                removed.append(image_id)
        return removed

    def read_object(self, image_id: str) -> bytes | None:
        """The stored bytes (ciphertext) of `image_id` as they are, or None if there is no object: for
        `photobot backup`, which copies objects without opening them."""
        name = self.object_name(image_id)
        try:
            return bytes(self._client.get_object(Bucket=self._bucket, Key=name)["Body"].read())
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise _unavailable(f"read image {image_id}", error) from None
        except BotoCoreError as error:
            raise _unavailable(f"read image {image_id}", error) from None

    def write_object(self, image_id: str, content: bytes) -> None:
        """Store `content` (ciphertext from a backup) as `image_id`'s object, replacing any: for `photobot
        restore`. The bytes are stored as they are; the restored row's wrapped key opens them."""
        try:
            self._client.put_object(Bucket=self._bucket, Key=self.object_name(image_id), Body=content)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(f"restore image {image_id}", error) from None

    def rewrap(self, image_id: str, wrapped_key: bytes) -> bytes:
        """`wrapped_key` rewrapped under the current master key; the object is untouched."""
        return rewrap_image_key(self._keyring, image_id, wrapped_key)

    def check(self) -> None:
        """Raise `VaultConfigError` or `VaultUnavailableError` unless the bucket is reachable, the credentials work, an object can
        be written, read back, listed and deleted, and versioning is off (so a delete really deletes)."""
        probe = f"{self._prefix}{_PROBE_NAME}probe"
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(f"open bucket {self._bucket}", error) from None
        try:
            self._client.put_object(Bucket=self._bucket, Key=probe, Body=b"photobot check")
            self._client.get_object(Bucket=self._bucket, Key=probe)["Body"].read()
            self._client.delete_object(Bucket=self._bucket, Key=probe)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(
                f"write, read and delete a test object in bucket {self._bucket}", error
            ) from None
        try:
            versioning = self._client.get_bucket_versioning(Bucket=self._bucket).get("Status", "")
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(f"read bucket {self._bucket}'s versioning", error) from None
        if versioning in {"Enabled", "Suspended"}:
            raise VaultConfigError(
                f"bucket {self._bucket} keeps old versions (versioning {versioning.lower()}): a deleted image's"
                " ciphertext would stay in the bucket; use a bucket that never had versioning"
            )
