"""What `photobot check` asks the homeserver: is the admin token a server admin's, can it delete media, is the
bot in its rooms and are they encrypted. Each call is bounded in time; each answer is a plain value.

These are read-only questions (apart from one throwaway upload that is deleted again), asked with aiohttp
directly rather than through nio: nio would retry an unreachable homeserver for ever.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.ids import RoomID, UserID
from bot.matrix.reachability import HomeserverUnreachableError

REQUEST_SECONDS = 15.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(repr=False)

    @property
    def errcode(self) -> str:
        return str(self.body.get("errcode", f"HTTP {self.status}"))


class HomeserverAudit:
    """Questions to the homeserver at `url`, each with its own token."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session

    @classmethod
    def session(cls) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS))

    async def _call(
        self, method: str, path: str, token: str, *, data: bytes | None = None, content_type: str = ""
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self._session.request(method, self.url + path, data=data, headers=headers) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise HomeserverUnreachableError(
                f"the homeserver at {self.url} did not answer {method} {path.split('?', maxsplit=1)[0]} ({error or 'timeout'})."
            ) from None
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = {}
        return Answer(status, parsed if isinstance(parsed, dict) else {})

    async def log_out(self, token: str) -> Answer:
        """Log the token's device out: the homeserver deletes the device, its keys and the token. Not a
        question: `photobot practice remove` uses it once, for the bot of the practice it destroys."""
        return await self._call(
            "POST", "/_matrix/client/v3/logout", token, data=b"{}", content_type="application/json"
        )

    async def whoami(self, token: str) -> tuple[UserID | None, Answer]:
        answer = await self._call("GET", "/_matrix/client/v3/account/whoami", token)
        user = answer.body.get("user_id") if answer.status == 200 else None
        return (UserID(str(user)) if user else None), answer

    async def is_server_admin(self, token: str, user_id: UserID) -> bool:
        path = f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/admin"
        answer = await self._call("GET", path, token)
        return answer.status == 200 and answer.body.get("admin") is True

    async def upload_throwaway(self, token: str) -> str | None:
        """A few random bytes uploaded with the bot's token; their mxc URL."""
        answer = await self._call(
            "POST",
            "/_matrix/media/v3/upload?filename=photobot-check",
            token,
            data=secrets.token_bytes(32),
            content_type="application/octet-stream",
        )
        url = answer.body.get("content_uri")
        return str(url) if answer.status == 200 and url else None

    async def delete_media(self, admin_token: str, mxc_url: str) -> Answer:
        server, _, media_id = mxc_url.removeprefix("mxc://").partition("/")
        path = f"/_synapse/admin/v1/media/{quote(server, safe='')}/{quote(media_id, safe='')}"
        return await self._call("DELETE", path, admin_token)

    async def joined_rooms(self, token: str) -> frozenset[RoomID]:
        answer = await self._call("GET", "/_matrix/client/v3/joined_rooms", token)
        return frozenset(RoomID(str(room)) for room in answer.body.get("joined_rooms", []))

    async def encrypted(self, token: str, room_id: RoomID) -> bool:
        path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state/m.room.encryption/"
        answer = await self._call("GET", path, token)
        return answer.status == 200 and bool(answer.body.get("algorithm"))
