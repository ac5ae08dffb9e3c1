"""Wiring: the web chat served while the bot runs (`photobot run`), when PHOTOBOT_WEB_CHAT_PORT is set.

Builds the `WebChat` from the running bot's parts, serves it, and sweeps the accounts due to be closed
every `sweep_every` until the bot stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

from bot.ids import RoomID, UserID
from bot.keyring import Sealer
from bot.settings import SettingsError
from bot.status_server import PublicBindRefusedError
from bot.web_chat.server import WebChatServer
from bot.web_chat.service import WebChat
from bot.web_chat.synapse_admin import SynapseAdmin
from handlers.photo_requests import PhotoRequests
from storage.photo_requests import PhotoRequestRepository
from storage.web_links import WebLinkRepository

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


def build_web_chat(app: App, session: aiohttp.ClientSession) -> WebChat:
    settings = app.settings
    sealer = Sealer(app.keyring)
    requests = PhotoRequests(
        app.gateway,
        app.patient,
        PhotoRequestRepository(app.keyring, sealer),
        app.clock,
        settings.allowed_servers,
    )
    config = app.config

    async def open_poster_chat(user: UserID) -> RoomID:
        room_id = await app.gateway.create_direct_chat(user, config.current.practice_name)
        await app.patient.start(room_id, user)
        await app.patient.effects.send(room_id)
        return room_id

    return WebChat(
        settings=settings.web_chat,
        links=WebLinkRepository(app.database, sealer),
        database=app.database,
        audit=app.audit,
        admin=SynapseAdmin(
            settings.homeserver_url, lambda: config.current.homeserver_admin_token.value, session
        ),
        clock=app.clock,
        bot_user_id=app.gateway.user_id,
        practice_name=lambda: config.current.practice_name,
        open_request=requests.open,
        open_poster_chat=open_poster_chat,
        find_room=app.patient.rooms.latest_patient_room_of,
    )


async def _sweep(chat: WebChat, stop: asyncio.Event) -> None:
    every = chat.settings.sweep_every.total_seconds()
    while not stop.is_set():
        try:
            await chat.sweep()
        except Exception:
            log.exception("the web chat account sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


@contextlib.asynccontextmanager
async def web_chat_endpoint(app: App) -> AsyncIterator[None]:
    """While the bot serves: the web chat page and API, and the closing of its accounts. Off when port is 0."""
    settings = app.settings.web_chat
    if not settings.enabled:
        yield
        return
    async with aiohttp.ClientSession() as session:
        chat = build_web_chat(app, session)
        server = WebChatServer(chat)
        try:
            await server.start(settings.host, settings.port, allow_public=settings.public)
        except (OSError, PublicBindRefusedError) as error:
            raise SettingsError(
                [f"PHOTOBOT_WEB_CHAT_HOST/PHOTOBOT_WEB_CHAT_PORT: cannot serve the web chat ({error})."]
            ) from None
        log.info("the web chat is served on %s:%d", settings.host, server.port)
        if not app.config.current.homeserver_admin_token.value:
            log.warning(
                "the web chat needs PHOTOBOT_HOMESERVER_ADMIN_TOKEN to make registration tokens and erase "
                "accounts: until it is set, links answer that the chat is unavailable"
            )
        stop = asyncio.Event()
        sweeper = asyncio.create_task(_sweep(chat, stop))
        try:
            yield
        finally:
            stop.set()
            await sweeper
            await server.close()
