"""What `/metrics` and `/healthz` serve (`bot.status_server` is the HTTP side): the scrape-time gauges, the
health probes (a recent sync, a database that answers) and the event-loop lag sampler, while the bot serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from bot.clock import Clock
from bot.conversation import State
from bot.metrics import BotGaugeSources, BotMetrics, Metrics, sample_loop_lag
from bot.settings import Settings, SettingsError
from bot.status_server import Heartbeat, PublicBindRefusedError, health_of, start_status_server
from storage.gauges import Gauges
from storage.sql import Database
from storage.submissions import Status

log = logging.getLogger(__name__)

SYNC_HEALTH_MAX_AGE = 120.0  # seconds since the last successful sync before /healthz is unhealthy


def gauge_sources(database: Database, clock: Clock) -> BotGaugeSources:
    """The scrape-time gauges, each one SQL query; known states and statuses are listed even at zero."""
    gauges = Gauges(database)

    async def conversations_by_state() -> Mapping[str, float]:
        known = dict.fromkeys((state.value for state in State), 0.0)
        return {**known, **await gauges.conversations_by_state()}

    async def queue_by_status() -> Mapping[str, float]:
        listed = (Status.NEW, Status.CLAIMED, Status.DONE)
        return {
            **dict.fromkeys((status.value for status in listed), 0.0),
            **await gauges.submissions_by_status(),
        }

    async def purge_backlog() -> float:
        """Uploads not yet deleted from the homeserver, and posted images past their viewing window."""
        return await gauges.purge_backlog(clock.now())

    return BotGaugeSources(conversations_by_state, queue_by_status, purge_backlog, gauges.outbox_backlog)


def _database_probe(database: Database) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def answers() -> tuple[bool, str]:
        return await database.answers(), "answers"

    return answers


class StatusEndpoint:
    """Always counted (cheap, in memory); only served when PHOTOBOT_STATUS_PORT is set."""

    def __init__(
        self,
        settings: Settings,
        registry: Metrics,
        metrics: BotMetrics,
        sync_heartbeat: Heartbeat,
        database: Database,
    ) -> None:
        self._settings = settings
        self.registry = registry
        self.metrics = metrics
        self._sync_heartbeat = sync_heartbeat
        self._database = database

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """While the bot serves: /metrics and /healthz, and the event-loop lag sampler. Off when the port is 0."""
        settings = self._settings
        if settings.status_port == 0:
            yield
            return
        health = health_of(
            {
                "sync": self._sync_heartbeat.probe("successful sync", SYNC_HEALTH_MAX_AGE),
                "database": _database_probe(self._database),
            }
        )
        try:
            server = await start_status_server(
                settings.status_host,
                settings.status_port,
                self.registry,
                health,
                allow_public=settings.status_public,
            )
        except (OSError, PublicBindRefusedError) as error:
            where = f"{settings.status_host}:{settings.status_port}"
            raise SettingsError(
                [f"PHOTOBOT_STATUS_HOST/PHOTOBOT_STATUS_PORT: cannot serve metrics on {where} ({error})."]
            ) from None
        log.info("metrics and health served on %s:%d", settings.status_host, server.port)
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(
            sample_loop_lag(self.metrics.event_loop_lag_seconds, stop=stop_sampling)
        )
        try:
            yield
        finally:
            stop_sampling.set()
            await sampler
            await server.close()
