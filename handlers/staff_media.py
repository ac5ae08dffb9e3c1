"""Posting photos and record packages into clinician rooms, and taking them back after the viewing window.

Every image the bot posts is encrypted end to end (a fresh attachment key, sent only to the devices the
trust policy allows) and uploaded under a neutral name. Posting is resumable: the upload is recorded before
the message is sent, and the message's transaction id is fixed, so a crash neither posts twice nor forgets
a posted image. Taking back means redacting the message and deleting the upload from the homeserver.

While anyone who is not an allowlisted clinician is in the room, nothing is posted: the postings wait, and
the room is told why (once per command).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.errors import TransientError
from bot.executor import CpuPool
from bot.ids import EventID, RoomID, UserID
from bot.images.size_limits import image_size
from bot.matrix.attachments import encrypt_attachment
from bot.matrix.port import MatrixError, MatrixPort, PurgeOutcome, RoomPort
from bot.metrics import BotMetrics
from handlers.record_packages import RecordPackages
from storage.postings import Posting, PostingRepository
from storage.practice_config import LiveConfig
from storage.submissions import SubmissionRepository
from storage.vault import ImageUnreadableError, ImageVault

log = logging.getLogger(__name__)


class DamagedPhotoError(Exception):
    """A photo's vault file failed its integrity check; the message says so in words a clinician reads."""


def outsiders(gateway: RoomPort, config: LiveConfig, room_id: RoomID) -> list[UserID]:
    """Members (joined or invited) of a staff room who are not allowlisted clinicians."""
    members = gateway.room_members(room_id) - {gateway.user_id}
    return sorted(member for member in members if not config.current.is_clinician(member))


@dataclass
class StaffMedia:
    gateway: MatrixPort
    postings: PostingRepository
    submissions: SubmissionRepository
    vault: ImageVault
    pool: CpuPool
    clock: Clock
    config: LiveConfig
    packages: RecordPackages
    metrics: BotMetrics
    # One poster at a time: !view and the housekeeping tick both post what waits. Two at once would upload
    # one photo twice and send both under one transaction id; the homeserver shows the first upload, the
    # row keeps the second, and the shown one would never be deleted at the end of the viewing window.
    _posting: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def post_pending(self) -> int:
        """Post whatever is waiting; returns how many were posted."""
        async with self._posting:
            return await self._post_pending()

    async def _post_pending(self) -> int:
        posted = 0
        for posting in await self.postings.pending():
            if posting.expires_at <= self.clock.now():
                await self.postings.retracted(posting.id)  # its window ended before it could be shown
                continue
            if outsiders(self.gateway, self.config, posting.room_id):
                continue
            try:
                if await self._post(posting):
                    posted += 1
            except TransientError:
                log.info("posting will be retried: the homeserver is not reachable")
                return posted
            except MatrixError as error:
                log.warning("posting into a clinician room failed: %s", error)
        return posted

    async def _post(self, posting: Posting) -> bool:
        started = time.perf_counter()
        upload = posting.upload
        forwarded = upload is None and posting.kind == "view"  # the whole way, vault to room, timed below
        if upload is None:
            try:
                content = await self._content(posting)
            except DamagedPhotoError as damaged:
                notice = {"msgtype": "m.notice", "body": str(damaged)}
                await self.gateway.send_message(posting.room_id, notice, posting.txn_id)
                await self.postings.retracted(posting.id)
                return False
            if content is None:
                await self.postings.retracted(posting.id)
                return False
            data, body, mime, msgtype, info = content
            encrypted = await self.pool.run(encrypt_attachment, data)
            del data
            url = await self.gateway.upload(encrypted.ciphertext)
            upload = {
                "url": url,
                "file": encrypted.file_content(url),
                "body": body,
                "msgtype": msgtype,
                "info": {"mimetype": mime, **info},
            }
            await self.postings.uploaded(posting.id, posting.txn_id, upload)
        message = {
            "msgtype": upload["msgtype"],
            "body": upload["body"],
            "info": upload["info"],
            "file": upload["file"],
        }
        event_id = await self.gateway.send_message(posting.room_id, message, posting.txn_id)
        await self.postings.posted(posting.id, event_id)
        if forwarded:
            self.metrics.photo_forward_seconds.observe(time.perf_counter() - started)
        return True

    async def _content(self, posting: Posting) -> tuple[bytes, str, str, str, dict[str, object]] | None:
        if posting.kind == "export":
            package = await self.packages.build(
                posting.submission_id, str(posting.content["purpose"]), str(posting.content["by"])
            )
            if package is None:
                return None
            return package.data, package.file_name, package.mime, "m.file", {"size": len(package.data)}
        photos = {photo.photo_id: photo for photo in await self.submissions.photos(posting.submission_id)}
        photo = photos.get(str(posting.content["photo_id"]))
        if photo is None:
            return None
        try:
            data = await self.pool.run(self.vault.get, photo.image_id, photo.image_key)
        except ImageUnreadableError as error:
            log.warning("a photo to be viewed could not be read from the vault; it is not shown")
            raise DamagedPhotoError(
                f"Photo {photo.number} of {posting.content['reference']} is damaged and cannot be shown: its "
                "stored file failed its integrity check. The other photos are not affected. `photobot check` "
                "lists damaged photos for the practice's operator."
            ) from error
        width, height = await self.pool.run(image_size, data)
        body = f"{posting.content['reference']} photo {photo.number} of {posting.content['of']}"
        info: dict[str, object] = {"size": len(data), "w": width, "h": height}
        return data, body, photo.mime, "m.image", info

    async def retract_due(self) -> int:
        """Take back everything past its viewing window: redact the message, delete the upload."""
        retracted = 0
        for posting in await self.postings.due(self.clock.now()):
            try:
                await self.retract(posting)
            except TransientError:
                log.info("taking back a posted image will be retried: the homeserver is not reachable")
                return retracted
            retracted += 1
        return retracted

    async def retract(self, posting: Posting) -> tuple[bool, str]:
        """Redact and purge one posting; (whether a chat message was redacted, the media outcome)."""
        redacted = False
        if posting.event_id is not None:
            try:
                await self.gateway.redact(
                    posting.room_id,
                    EventID(posting.event_id),
                    "Removed at the end of the viewing window.",
                    f"retract-{posting.txn_id}",
                )
                redacted = True
            except MatrixError as error:
                if isinstance(error, TransientError):
                    raise
                log.warning("redacting a posted image failed: %s", error)
        outcome = PurgeOutcome.NOT_CONFIGURED.value
        if posting.upload is not None:
            result = await self.gateway.purge_media(str(posting.upload["url"]))
            outcome = result.value
            if result is PurgeOutcome.FAILED:
                log.warning("the homeserver refused to delete a posted upload; will try again")
                return redacted, outcome
        await self.postings.retracted(posting.id)
        return redacted, outcome
