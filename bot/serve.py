"""`photobot run`: serving what the wiring built (`bot.app.open_app`) until asked to stop.

In order: the status endpoint first (an operator sees a start-up that hangs), the deletion ledger replayed
before the crash clean-up (it may remove rows, making files orphans), the banner, then waiting for the
homeserver, and then housekeeping beside the sync loop until `stop` is set.
"""

from __future__ import annotations

import asyncio
import logging

from bot.app import App
from bot.production_check import run_time_changes
from bot.startup import Banner, come_online
from bot.web_chat.serve import web_chat_endpoint

log = logging.getLogger(__name__)


async def run(app: App, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    async with app.status.serving(), web_chat_endpoint(app):  # first, so an operator sees a start-up hang
        await app.checks.check_vault()
        await (
            app.checks.replay_deletion_ledger()
        )  # before the clean-up: it may remove rows, making files orphans
        await app.checks.clean_up_after_crash()
        log.info("%s", await _banner(app))
        overrides = await app.config.repository.overrides()
        if changed := run_time_changes(app.config.defaults, app.config.current, overrides):
            log.warning("settings changed at run time override the environment: %s", "; ".join(changed))

        async def start_keys() -> None:
            await app.gateway.start_keys()
            await app.checks.sign_own_device()

        if not await come_online(app.settings.homeserver_url, start_keys, stop):
            log.info("the bot stopped before the homeserver answered")
            return
        chores = asyncio.create_task(app.housekeeping.run(stop))
        try:
            await app.sync.run(stop)
        finally:
            stop.set()
            await chores
            log.info("the bot stopped: the last batch handled is saved, it resumes from there")


async def _banner(app: App) -> str:
    config = app.config.current
    return Banner(
        user_id=app.gateway.user_id,
        device_id=app.gateway.device_id,
        homeserver_url=app.settings.homeserver_url,
        patient_rooms=await app.patient.rooms.count_patient_rooms(),
        clinician_rooms=len(config.clinician_rooms),
        admin_room=config.admin_room is not None,
        clinicians=len(config.clinicians),
        admins=len(config.admins),
        admin_token=bool(config.homeserver_admin_token.value),
        status_port=app.settings.status_port,
    ).line()
