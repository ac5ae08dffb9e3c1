"""Coming online: waiting for the homeserver with back-off, and the start-up banner an operator reads.

`photobot run` started before its homeserver (a reboot where Synapse comes up later) waits for it, saying so
in the log, and serves once it answers: no restart by the service manager is needed. The banner is one INFO
line with what an operator checks first; it names no patient, no secret, only whether one is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from importlib import metadata

from bot import __version__
from bot.matrix.gateway import SyncBatch, TransientMatrixError
from bot.matrix.reachability import (
    FIRST_WAIT_SECONDS,
    LONGEST_WAIT_SECONDS,
    bounded,
    probe,
    wait_until_reachable,
)
from storage.restores import Restore

log = logging.getLogger(__name__)

START_SECONDS = 120.0  # key upload and device signing, once the homeserver answers; then it is tried again


async def come_online(
    url: str,
    start: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    check: Callable[[str], Awaitable[None]] = probe,
) -> bool:
    """Wait until the homeserver at `url` answers, then run `start` (key upload, device signing); a transient
    failure of either is waited out with back-off. False if `stop` was set first."""
    wait = FIRST_WAIT_SECONDS
    while not stop.is_set():
        if not await wait_until_reachable(url, stop.is_set, lambda s: _sleep_or_stop(stop, s), check=check):
            return False
        try:
            async with bounded(url, START_SECONDS, "uploading the bot's keys"):
                await start()
        except TransientMatrixError as error:
            log.warning("waiting for the homeserver: %s Trying again in %.0f s.", error, wait)
            await _sleep_or_stop(stop, wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)
            continue
        return True
    return False


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


@dataclass(frozen=True)
class Banner:
    """What the start-up line says."""

    user_id: str
    device_id: str
    homeserver_url: str
    patient_rooms: int
    clinician_rooms: int
    admin_room: bool
    clinicians: int
    admins: int
    admin_token: bool
    status_port: int
    storage: str = ""  # the database and vault (bot.backends.describe_backends); "" names SQLite alone

    def line(self) -> str:
        metrics = f"metrics on port {self.status_port}" if self.status_port else "metrics off"
        return (
            f"GP Photo Bot {__version__} starting as {self.user_id} (device {self.device_id}) on "
            f"{self.homeserver_url}: {self.patient_rooms} patient room(s), {self.clinician_rooms} clinician "
            f"room(s), admin room {'set' if self.admin_room else 'NOT set'}, {self.clinicians} clinician(s), "
            f"{self.admins} admin(s), homeserver admin token {'present' if self.admin_token else 'ABSENT'} "
            f"(uploads {'are' if self.admin_token else 'are NOT'} deleted from the homeserver); backends: "
            f"{self.storage or f'SQLite {sqlite3.sqlite_version}'}, {_images_backend()}, {metrics}"
        )


def _images_backend() -> str:
    try:
        pillow = metadata.version("pillow")
    except metadata.PackageNotFoundError:
        pillow = "?"
    try:
        heif = metadata.version("pillow-heif")
    except metadata.PackageNotFoundError:
        heif = "absent"
    return f"Pillow {pillow} (HEIF {heif})"


def after_restore(batch: SyncBatch, restore: Restore) -> SyncBatch:
    """The first sync after a restore, without what was sent before the restore: those events were handled
    (or not) by the installation before it, and handling them again would repeat staff commands and patient
    messages from after the backup. Invites still pending are kept."""
    since_ms = int(restore.restored_at.timestamp() * 1000)
    timelines = {
        room_id: kept
        for room_id, events in batch.timelines.items()
        if (kept := [event for event in events if event.timestamp_ms >= since_ms])
    }
    skipped = sum(len(events) for events in batch.timelines.values()) - sum(map(len, timelines.values()))
    log.info("after the restore: %d event(s) sent before it are not handled again", skipped)
    return replace(batch, timelines=timelines)


def restore_notice(restore: Restore) -> str:
    """What the admin room (and the log) is told once the bot has caught up after a restore."""
    rolled_back = (
        "These settings changed after the backup and are back to the backup's values: "
        f"**{', '.join(restore.rolled_back)}**. Check them with `!config`."
        if restore.rolled_back
        else "No run-time setting was rolled back."
    )
    return (
        f"The bot was restored from a backup made at {restore.backup_made_at}. Commands and messages it had "
        f"handled since then are not handled again. {rolled_back}"
    )
