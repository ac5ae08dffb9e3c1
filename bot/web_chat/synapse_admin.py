"""The three Synapse admin API calls the web chat needs, with the bot's homeserver-admin token.

- a registration token for one registration, living minutes (`registration_tokens/new`);
- whether an account exists (`v2/users/<id>`);
- deactivate an account and erase it (`v1/deactivate/<id>` with `erase: true`): its display name and
  avatar go, its messages are hidden from anyone joining later, and it can never log in again.

Nothing here logs a token; errors carry the status only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.errors import TransientError
from bot.ids import UserID


class HomeserverAdminError(Exception):
    """The homeserver refused an admin call (or there is no admin token)."""


class HomeserverUnavailableError(HomeserverAdminError, TransientError):
    """The homeserver could not be reached or answered 5xx/429: try again later."""


class SynapseAdmin:
    def __init__(
        self, homeserver_url: str, admin_token: Callable[[], str], session: aiohttp.ClientSession
    ) -> None:
        self._base = homeserver_url.rstrip("/")
        self._token = admin_token
        self._session = session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        token = self._token()
        if not token:
            raise HomeserverAdminError("the web chat needs PHOTOBOT_HOMESERVER_ADMIN_TOKEN")
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                status = response.status
                answer = await response.json(content_type=None) if status != 204 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise HomeserverUnavailableError(
                f"the homeserver's admin API failed ({type(error).__name__})"
            ) from None
        if status >= 500 or status == 429:
            raise HomeserverUnavailableError(f"the homeserver's admin API answered {status}")
        return status, answer

    async def registration_token(self, expires_at: datetime) -> str:
        """A new registration token valid for one registration until `expires_at`."""
        status, answer = await self._call(
            "POST",
            "/_synapse/admin/v1/registration_tokens/new",
            {"uses_allowed": 1, "expiry_time": int(expires_at.timestamp() * 1000), "length": 32},
        )
        token = answer.get("token") if isinstance(answer, dict) else None
        if status != 200 or not isinstance(token, str):
            raise HomeserverAdminError(f"making a registration token answered {status}")
        return token

    async def account_exists(self, user_id: UserID) -> bool:
        """Whether the homeserver has this account, not deactivated."""
        status, answer = await self._call("GET", f"/_synapse/admin/v2/users/{quote(user_id, safe='')}")
        if status == 404:
            return False
        if status != 200 or not isinstance(answer, dict):
            raise HomeserverAdminError(f"looking up an account answered {status}")
        return not answer.get("deactivated", False)

    async def deactivate_and_erase(self, user_id: UserID) -> bool:
        """Deactivate and erase the account; False if the homeserver does not know it (nothing to do)."""
        status, _ = await self._call(
            "POST", f"/_synapse/admin/v1/deactivate/{quote(user_id, safe='')}", {"erase": True}
        )
        if status == 404:
            return False
        if status != 200:
            raise HomeserverAdminError(f"deactivating an account answered {status}")
        return True
