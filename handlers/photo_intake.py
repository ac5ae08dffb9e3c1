"""A patient's photo from its Matrix event to the vault: download, decrypt, clean, encrypt and store its file.

Returns what became of it: a `StoredPhoto` (its file is in the vault; its row is written when the
conversation keeps it, see `storage.photo_store`) or a `RejectedPhoto` with the reason the patient is
told. A full disk is neither: `StorageFullError` is raised and the event is tried again later. The crash
points (`bot.faults`) mark each stage for the crash-point tests.
"""

from __future__ import annotations

import base64
import errno
from dataclasses import dataclass

from bot.errors import StorageFullError
from bot.executor import CpuPool
from bot.faults import FaultInjector
from bot.ids import EventID
from bot.images import Limits, Rejected, process_photo
from bot.keyring import Keyring
from bot.matrix.attachments import AttachmentError
from bot.matrix.events import MediaMessage
from bot.matrix.gateway import decrypt_file
from bot.matrix.port import MatrixPort
from bot.metrics import BotMetrics, PhotoTiming
from handlers.attachment_fetch import AttachmentUnavailable, fetch_attachment
from storage.photo_store import PhotoStore
from storage.vault import StoredImage

# A photo that cannot be written for one of these is kept unhandled and tried again, not refused.
_STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


PHOTO_ID_PURPOSE = "photo-id"


def photo_id_for(event_id: EventID, keyring: Keyring) -> str:
    """The same id every time the same event is handled: a replay overwrites, never duplicates.

    Keyed (an HMAC under a key derived from the master key), not a plain hash of the event id: the id names
    the image's file or S3 object, and whoever can see the vault (an object store's operator) must not be
    able to link it to the Matrix event, which the homeserver and everyone in the room know. A key rotation
    changes the ids of events handled afterwards; an event replayed across a rotation was not committed, so
    its earlier file is an orphan the start-up sweep removes.
    """
    digest = keyring.keyed_digest(b"photo\x00" + event_id.encode(), purpose=PHOTO_ID_PURPOSE)
    return base64.b32encode(bytes.fromhex(digest)[:20]).decode().rstrip("=").lower()


@dataclass(frozen=True)
class StoredPhoto:
    """The cleaned image is in the vault as `photo_id`; what its row needs besides."""

    photo_id: str
    image: StoredImage
    mime: str
    source_format: str
    quality_issues: tuple[str, ...]


@dataclass(frozen=True)
class RejectedPhoto:
    """Not stored: `reason` is one of the conversation's `REJECT_REASONS`; `detected` what it looked like."""

    reason: str
    detected: str | None = None


@dataclass
class PhotoIntake:
    gateway: MatrixPort
    store: PhotoStore
    pool: CpuPool
    faults: FaultInjector
    metrics: BotMetrics
    keyring: Keyring

    async def take(self, event: MediaMessage, limits: Limits) -> StoredPhoto | RejectedPhoto:
        """Download, decrypt, clean and store the photo `event` carries (the conversation admitted it)."""
        if event.file is None:
            return RejectedPhoto("unencrypted")
        if event.declared_size is not None and event.declared_size > limits.max_bytes:
            return RejectedPhoto("too_large")
        await self.faults.pause("before_download")
        try:
            ciphertext = await fetch_attachment(self.gateway, event.file)
        except AttachmentUnavailable as unavailable:
            return RejectedPhoto(unavailable.reason)
        self.faults.hit("after_download")
        timing = PhotoTiming(self.metrics)
        try:
            data = await self.pool.run(timing.cpu(decrypt_file), ciphertext, event.file)
        except AttachmentError:
            return RejectedPhoto("download_failed")
        del ciphertext
        self.faults.hit("after_decrypt")
        result = await self.pool.run(timing.cpu(process_photo), data, limits)
        del data
        if isinstance(result, Rejected):
            timing.done()
            return RejectedPhoto(result.reason.value, result.detected)
        photo_id = photo_id_for(event.event_id, self.keyring)
        try:
            self.faults.hit("before_vault_write")
            stored = await self.pool.run(
                timing.cpu(self.store.write_file),
                photo_id,
                result.data,
                part_written=lambda: self.faults.hit("during_vault_write"),
            )
        except OSError as error:
            if error.errno not in _STORAGE_FULL:
                raise
            raise StorageFullError("the vault cannot be written; the photo will be tried again") from error
        timing.done()
        self.faults.hit("after_vault_rename")
        issues = tuple(issue.value for issue in result.quality.issues)
        return StoredPhoto(photo_id, stored, result.mime, result.source_format.value, issues)
