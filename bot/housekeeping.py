"""Housekeeping: every little while, the time-based work the sync loop does not bring.

Idle conversations end, viewing windows close, posted images are retracted and pending ones posted, the
retention job and reminders run, patients' uploads are deleted from the homeserver (the admin room told when
that keeps failing, and when it works again), and unsent replies are retried. One failed pass is logged with
a reference and the next pass tries again: housekeeping never stops the bot.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock, iso
from bot.errors import TransientError, error_reference
from bot.matrix.gateway import MatrixGateway
from bot.stopping import sleep_or_stop
from handlers.delivery import Delivery
from handlers.media_purge import purge_pending_media
from handlers.patient import PatientHandler
from handlers.reminders import ReminderJob
from handlers.retention import RetentionJob
from handlers.staff_media import StaffMedia
from handlers.viewing_windows import ViewingWindows
from storage.database import database_busy
from storage.media_ledger import AlertChange, MediaLedger
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.sql import Database

log = logging.getLogger(__name__)

CLOCK_JUMP_TOLERANCE = timedelta(seconds=30)  # wall clock against monotonic, between housekeeping passes


def interval_for(conversation_timeout: timedelta, undo_window: timedelta) -> float:
    """Seconds between passes: often enough that idle conversations end, and described view-then-delete
    photos go, close to on time."""
    shortest = min(conversation_timeout, undo_window).total_seconds()
    return min(60.0, max(1.0, shortest / 4))


@dataclass
class ClockWatch:
    """Notices the wall clock jumping (against the monotonic clock) between housekeeping passes.

    After a jump, time-based destruction (idle conversations, viewing windows) waits until the clock has
    been steady for a whole period: a time written while the clock was wrong (set back, then corrected)
    must not make a conversation or a viewing look older than it is. Destroying late is safe; early is not.
    The retention job has its own, stricter guard.
    """

    clock: Clock
    monotonic: Callable[[], float] = time.monotonic
    _last: tuple[datetime, float] | None = None
    _jumped_at: float | None = None

    def jumped(self) -> timedelta | None:
        """How far the clock jumped since the last call, if it did."""
        now, steady = self.clock.now(), self.monotonic()
        jump = None
        if self._last is not None:
            drift = (now - self._last[0]) - timedelta(seconds=steady - self._last[1])
            if abs(drift) > CLOCK_JUMP_TOLERANCE:
                self._jumped_at, jump = steady, drift
        self._last = (now, steady)
        return jump

    def held(self, period: timedelta) -> bool:
        """True until `period` of steady time has passed since the last jump."""
        return self._jumped_at is not None and self.monotonic() - self._jumped_at < period.total_seconds()


class UploadPurges:
    """Patients' uploads deleted from the homeserver, and the admin room told when that keeps failing."""

    def __init__(
        self,
        *,
        ledger: MediaLedger,
        gateway: MatrixGateway,
        database: Database,
        outbox: Outbox,
        config: LiveConfig,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._gateway = gateway
        self._db = database
        self._outbox = outbox
        self._config = config
        self._clock = clock

    async def retry_now(self) -> None:
        """A new credential: no waiting out the old one's backoff."""
        await self._ledger.retry_now()

    async def run(self) -> None:
        await purge_pending_media(self._ledger, self._gateway)
        await self._tell_admins()

    async def _tell_admins(self) -> None:
        """The admin room is told once when deleting uploads from the homeserver keeps failing, and once when
        it works again; the log says it too. `photobot check` shows the backlog at any time."""
        async with self._db.transaction() as db:
            change = await self._ledger.alert_change(db)
            if change is None:
                return
            kind, backlog = change
            if kind is AlertChange.FAILING:
                log.warning("deleting uploads from the homeserver keeps failing: %d wait", backlog.waiting)
                text = (
                    "**Deleting patients' uploads from the chat server keeps failing**: "
                    f"{backlog.waiting} upload(s) wait, refused up to {backlog.most_failures} times. The photos "
                    "are safe in the bot, but their encrypted copies stay on the chat server until this works. "
                    "Check the homeserver-admin credential (`!set homeserver_admin_token ...`); I keep trying."
                )
            else:
                log.info("deleting uploads from the homeserver works again; none wait")
                text = "Deleting patients' uploads from the chat server works again: none are waiting."
            admin_room = self._config.current.admin_room
            if admin_room is not None:
                txn_id = derive_txn_id(f"media-purge-{kind.value}:{iso(self._clock.now())}", 0)
                await self._outbox.add(db, admin_room, txn_id, "message", {"text": text})


class Housekeeping:
    """The passes, in order, until the bot stops."""

    def __init__(
        self,
        *,
        interval: float,
        clock: Clock,
        config: LiveConfig,
        patient: PatientHandler,
        viewing_windows: ViewingWindows,
        staff_media: StaffMedia,
        retention: RetentionJob,
        reminders: ReminderJob,
        uploads: UploadPurges,
        delivery: Delivery,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._config = config
        self._patient = patient
        self._viewing_windows = viewing_windows
        self._staff_media = staff_media
        self._retention = retention
        self._reminders = reminders
        self._uploads = uploads
        self._delivery = delivery

    async def run(self, stop: asyncio.Event) -> None:
        """Every little while: expire idle conversations, retry media deletions and unsent replies."""
        watch = ClockWatch(self._clock)
        admin_token = self._config.current.homeserver_admin_token.value
        while not stop.is_set():
            await sleep_or_stop(stop, self._interval)
            try:
                await self._config.refresh()
                current = self._config.current
                jump = watch.jumped()
                if jump is not None:
                    log.warning(
                        "the clock jumped by %+.0f s: idle conversations and viewing windows are not ended until"
                        " it has been steady for a full period",
                        jump.total_seconds(),
                    )
                if not watch.held(current.conversation_timeout):
                    await self._patient.expire_idle(current.conversation_timeout)
                if not watch.held(current.viewing_window):
                    await self._viewing_windows.end_due()
                await self._staff_media.retract_due()
                await self._staff_media.post_pending()
                await self._retention.run()
                await self._reminders.run()
                if current.homeserver_admin_token.value != admin_token:
                    admin_token = current.homeserver_admin_token.value
                    await self._uploads.retry_now()
                await self._uploads.run()
                await self._delivery.flush_all()
            except TransientError:
                log.info("housekeeping will try again: the homeserver is not reachable")
            except sqlite3.OperationalError as error:
                if database_busy(error):
                    log.warning("housekeeping will try again: the database is locked by another process")
                else:
                    log.exception("housekeeping failed (ref %s)", error_reference())
            except Exception:
                log.exception("housekeeping failed (ref %s)", error_reference())
