"""The sync loop: ours, not nio's `sync_forever`.

A batch is fetched, handled and committed, and only then is the checkpoint saved (exactly-once,
matrix-notes #1). A batch that could not be finished (the homeserver went away mid-way) is fetched again from
the same checkpoint; handled events are skipped. After `photobot restore` the first batch starts from the
homeserver's present, and the restore is marked caught up with the new checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3

from bot.clock import Clock
from bot.faults import FaultInjector
from bot.matrix.gateway import MatrixGateway, TransientMatrixError, sync_once
from bot.startup import after_restore, restore_notice
from bot.status_server import Heartbeat
from bot.stopping import sleep_or_stop, until_stopped
from handlers.delivery import Delivery
from handlers.router import Router
from storage.checkpoint import SyncCheckpoint
from storage.database import database_busy
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.restores import Restore, Restores
from storage.sql import Database

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
RETRY_SECONDS = 2.0
RESTORE_SYNC_TIMEOUT_MS = 1000  # an initial sync returns at once whatever its timeout


class RestoreCatchUp:
    """A restore awaiting its first batch, and marking it caught up with the checkpoint after that batch."""

    def __init__(
        self,
        database: Database,
        checkpoint: SyncCheckpoint,
        outbox: Outbox,
        config: LiveConfig,
        clock: Clock,
    ) -> None:
        self._database = database
        self._checkpoint = checkpoint
        self._restores = Restores(database)
        self._outbox = outbox
        self._config = config
        self._clock = clock

    async def awaiting(self) -> Restore | None:
        return await self._restores.awaiting_catch_up()

    async def caught_up(self, restore: Restore, next_batch: str) -> None:
        """The new checkpoint, the restore marked caught up and the admin room told, in one transaction."""
        text = restore_notice(restore)
        async with self._database.transaction() as db:
            await self._checkpoint.save_in(db, next_batch)
            await self._restores.caught_up(db, self._clock.now())
            admin_room = self._config.current.admin_room
            if admin_room is not None:
                txn_id = derive_txn_id(f"restore-{restore.restore_id}", 0)
                await self._outbox.add(db, admin_room, txn_id, "message", {"text": text})
        log.info("%s", text.replace("**", ""))


class SyncLoop:
    def __init__(
        self,
        *,
        gateway: MatrixGateway,
        checkpoint: SyncCheckpoint,
        catch_up: RestoreCatchUp,
        router: Router,
        delivery: Delivery,
        config: LiveConfig,
        faults: FaultInjector,
        heartbeat: Heartbeat,
    ) -> None:
        self._gateway = gateway
        self._checkpoint = checkpoint
        self._catch_up = catch_up
        self.router = router
        self._delivery = delivery
        self._config = config
        self.faults = faults
        self._heartbeat = heartbeat

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, handle, commit, checkpoint, until `stop` is set."""
        token = await self._checkpoint.load()
        restore = await self._catch_up.awaiting()
        if restore is not None:
            token = (
                None  # the restored checkpoint is older than what was handled: skip to the present instead
            )
            log.info(
                "restored from a backup: starting from the homeserver's present, not the backup's checkpoint"
            )
        full_state = True  # rooms are not persisted by nio: rebuild them on the first sync (matrix-notes #7)
        fetched = 0  # how often the batch after `token` has been asked for
        log.info("the bot is serving")
        while not stop.is_set():
            try:
                timeout_ms = 0 if full_state else SYNC_TIMEOUT_MS
                if fetched:
                    # Synapse answers a repeated /sync (same since, timeout, ...) from its response cache for
                    # two minutes: a batch fetched again would come back as it was, without the newer events of
                    # other rooms. A distinct timeout makes it a new request (there are events: it returns at
                    # once).
                    timeout_ms = 1 + fetched % 1000
                if restore is not None and not fetched:
                    # Not the initial sync of an earlier start (timeout 0), which Synapse may still hold in its
                    # response cache, with its old next_batch: that would bring back what the restore must skip.
                    timeout_ms = RESTORE_SYNC_TIMEOUT_MS + secrets.randbelow(1000)
                fetched += 1
                batch = await until_stopped(
                    sync_once(self._gateway, token, full_state=full_state, timeout_ms=timeout_ms), stop
                )
                if batch is None:
                    return
                self._heartbeat.beat()
                await self._gateway.maintain_keys(batch.one_time_key_count)
                await self._config.refresh()  # a change made from the CLI is in force for this batch
                if restore is not None:
                    batch = after_restore(batch, restore)
                complete = await self.router.handle_batch(batch)
                if complete:
                    self.faults.hit("before_sync_checkpoint")
                    if restore is not None:
                        await self._catch_up.caught_up(restore, batch.next_batch)
                        restore = None
                    else:
                        await self._checkpoint.save(batch.next_batch)
                    token = batch.next_batch
                    full_state = False
                    fetched = 0
                else:
                    await sleep_or_stop(stop, RETRY_SECONDS)
                await self._delivery.flush_all()
            except TransientMatrixError as error:
                log.info("the homeserver is not reachable (%s); trying again", error)
                await sleep_or_stop(stop, RETRY_SECONDS)
            except sqlite3.OperationalError as error:
                if not database_busy(error):
                    raise
                # Another process (a backup, the CLI, an operator's sqlite3) holds the database for longer than
                # the busy timeout: nothing was committed, so the batch is fetched and handled again.
                log.warning("the database is locked by another process; the batch will be handled again")
                await sleep_or_stop(stop, RETRY_SECONDS)
