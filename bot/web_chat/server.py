"""The web chat's HTTP server: the built page (package data) and the page's small JSON API.

Meant to sit behind the practice's TLS reverse proxy, so it binds a loopback address unless the operator
allows a public one. Every answer carries a strict Content-Security-Policy (scripts only from this origin,
'wasm-unsafe-eval' for the crypto wasm, no inline script, no other origin but the homeserver for
connect-src), `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff` and no framing; the API
answers are `Cache-Control: no-store`. Requests are not logged (a path or body could carry a token).

    GET  /, /index.html, /assets/<file>   the page (bot/web_chat/static/)
    GET  /api/config                      homeserver, bot, practice name, contact sentence
    POST /api/poster-link                 {"token"} | 429 busy
    POST /api/redeem     {"token"}        {"registration_token", "username", ...} | 410 | 404
    POST /api/ready      {"token", "user_id"}  the bot opens the chat
    POST /api/status     {"token"}        {"state": open|closed|expired|unknown}
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.status_server import PublicBindRefusedError, is_loopback
from bot.web_chat.service import Answer, WebChat

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 4096
_HASHED = re.compile(r"-[A-Z0-9]{8,}\.[a-z0-9]+$")  # esbuild's chunk names: chunk-RUETFX72.js
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
}


def content_security_policy(homeserver_origin: str) -> str:
    connect = " ".join(part for part in ("'self'", homeserver_origin) if part)
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "img-src 'self' blob:",
            f"connect-src {connect}",
            "font-src 'self'",
            "manifest-src 'self'",
            "worker-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def client_address(request: web.BaseRequest, *, trust_proxy: bool) -> str:
    """The client's address: behind a trusted proxy the last X-Forwarded-For entry (the one it added)."""
    if trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return request.remote or "unknown"


class WebChatServer:
    def __init__(self, chat: WebChat, static_dir: Path = STATIC_DIR) -> None:
        self._chat = chat
        self._static = static_dir.resolve()
        self._csp = content_security_policy(chat.settings.homeserver_origin)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._headers])
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/index.html", self._index)
        self.app.router.add_get("/assets/{name:.+}", self._asset)
        self.app.router.add_get("/api/config", self._config)
        self.app.router.add_post("/api/poster-link", self._poster_link)
        self.app.router.add_post("/api/redeem", self._api(lambda body: chat.redeem(body.get("token"))))
        self.app.router.add_post(
            "/api/ready", self._api(lambda body: chat.ready(body.get("token"), body.get("user_id")))
        )
        self.app.router.add_post("/api/status", self._api(lambda body: chat.status(body.get("token"))))

    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # 404, 405, 413: answered plainly, with the same headers
            response = web.Response(status=error.status, text=f"{error.status} {error.reason}\n")
        except Exception:  # a bug answers 500 and the server keeps serving the others
            log.exception("the web chat API failed")
            response = _json(Answer(500, {"error": "failed", "message": self._chat.settings.contact}))
        response.headers["Content-Security-Policy"] = self._csp
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    # ---- the page ---------------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file(self._static / "index.html")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (self._static / "assets" / name).resolve()
        if not path.is_relative_to(self._static / "assets") or path.suffix == ".gz":
            raise web.HTTPNotFound
        return self._file(path)

    def _file(self, path: Path) -> web.StreamResponse:
        """The file, revalidated with ETag/Last-Modified; its `.gz` twin when the browser takes gzip; files
        whose built name carries a content hash are cached for good, others are revalidated each time."""
        if not path.is_file():
            raise web.HTTPNotFound
        kind = (
            _TYPES.get(path.suffix.lower())
            or mimetypes.guess_type(path.name)[0]
            or "application/octet-stream"
        )
        cache = "public, max-age=31536000, immutable" if _HASHED.search(path.name) else "no-cache"
        return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": cache})

    # ---- the API --------------------------------------------------------------------------------------

    async def _config(self, request: web.Request) -> web.StreamResponse:
        return _json(Answer(200, dict(self._chat.config())))

    async def _poster_link(self, request: web.Request) -> web.StreamResponse:
        address = client_address(request, trust_proxy=self._chat.settings.trust_proxy)
        return _json(await self._chat.poster_link(address))

    def _api(
        self, call: Callable[[dict[str, Any]], Awaitable[Answer]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                return _json(Answer(400, {"error": "bad_request", "message": "Expected a JSON object."}))
            return _json(await call(body))

        return handle

    # ---- serving --------------------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, allow_public: bool) -> None:
        if not allow_public and not is_loopback(host):
            raise PublicBindRefusedError(
                f"refusing to serve the web chat on non-loopback address {host!r}: put it behind the practice's "
                "TLS proxy, or allow it explicitly (PHOTOBOT_WEB_CHAT_PUBLIC=true)"
            )
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1" if host == "localhost" else host, port)
        await self._site.start()

    @property
    def port(self) -> int:
        server = self._site._server if self._site is not None else None
        if not isinstance(server, asyncio.Server) or not server.sockets:
            raise RuntimeError("the web chat server is not listening")
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _json(answer: Answer) -> web.Response:
    response = web.Response(
        status=answer.status, body=json.dumps(answer.body).encode("utf-8"), content_type="application/json"
    )
    if answer.retry_after is not None:
        response.headers["Retry-After"] = str(answer.retry_after)
    return response
