"""The page's API for the page's browser tests whose other side is not the bot: a hostile message, a chat
without encryption. Neither can come from the real bot, so these tests put a real encrypted nio client in
the bot's place. This serves the built page (bot/web_chat/static/) under the bot's own
Content-Security-Policy and the contract's API (issue 18) with real parts: registration tokens minted by
the suite's Synapse admin API, single use and minutes of life; `/api/ready` hands the new user to the test,
which opens the chat as the bot would."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.web_chat.server import content_security_policy

STATIC = Path(__file__).resolve().parents[2] / "bot" / "web_chat" / "static"


@dataclass
class Link:
    area: str
    used: bool = False
    closed: bool = False
    user_id: str | None = None


ChatOpener = Callable[[str, str], Awaitable[None]]  # (the page's user id, the link's area)


@dataclass
class WebChatApi:
    homeserver_url: str
    admin_token: str
    bot_user_id: str
    open_chat: ChatOpener
    practice_name: str = "Riverside Surgery"
    contact: str = "Please phone Riverside Surgery on 01632 960000."
    links: dict[str, Link] = field(default_factory=dict)
    runner: web.AppRunner | None = None
    url: str = ""

    def new_link(self, area: str) -> str:
        token = secrets.token_urlsafe(24)
        self.links[token] = Link(area)
        return f"{self.url}#t={token}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/api/config", self._config)
        app.router.add_post("/api/redeem", self._redeem)
        app.router.add_post("/api/ready", self._ready)
        app.router.add_post("/api/status", self._status)
        app.router.add_get("/", self._index)
        app.router.add_static("/assets", STATIC / "assets")
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers["Content-Security-Policy"] = content_security_policy(self.homeserver_url.rstrip("/"))
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    async def _index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _config(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "homeserver_url": self.homeserver_url,
                "bot_user_id": self.bot_user_id,
                "practice_name": self.practice_name,
                "contact": self.contact,
            }
        )

    async def _link(self, request: web.Request) -> tuple[str, Link | None, dict[str, Any]]:
        body = await request.json()
        token = str(body.get("token", ""))
        return token, self.links.get(token), body

    async def _redeem(self, request: web.Request) -> web.Response:
        _, link, _ = await self._link(request)
        if link is None:
            return web.json_response({"error": "unknown", "message": "unknown link"}, status=404)
        if link.used:
            return web.json_response({"error": "used", "message": "used link"}, status=410)
        link.used = True
        registration_token = await self._mint_registration_token()
        return web.json_response(
            {
                "registration_token": registration_token,
                "username": f"web-{secrets.token_hex(6)}",
                "homeserver_url": self.homeserver_url,
                "bot_user_id": self.bot_user_id,
            }
        )

    async def _ready(self, request: web.Request) -> web.Response:
        _, link, body = await self._link(request)
        if link is None or not link.used:
            return web.json_response({"error": "unknown", "message": "unknown link"}, status=404)
        link.user_id = str(body["user_id"])
        await self.open_chat(link.user_id, link.area)
        return web.json_response({})

    async def _status(self, request: web.Request) -> web.Response:
        _, link, _ = await self._link(request)
        state = "unknown" if link is None else "closed" if link.closed else "open"
        return web.json_response({"state": state})

    async def _mint_registration_token(self) -> str:
        url = f"{self.homeserver_url.rstrip('/')}/_synapse/admin/v1/registration_tokens/new"
        expiry_ms = int((time.time() + 600) * 1000)
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, json={"uses_allowed": 1, "expiry_time": expiry_ms}, headers=headers
            ) as response,
        ):
            response.raise_for_status()
            created = await response.json()
        return str(created["token"])
