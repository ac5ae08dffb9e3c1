"""`photobot check` for the web chat: the homeserver lets accounts be made only with a registration token.

Asked without credentials, as anyone on the internet could: `POST /_matrix/client/v3/register` with an
empty body answers the registration flows (401) or that registration is off (403). Every flow must need
`m.login.registration_token`; otherwise anyone can make accounts on the practice's homeserver.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.web_chat.settings import WebChatSettings

TOKEN_STAGE = "m.login.registration_token"  # noqa: S105 - the name of a registration stage, not a secret


def registration_verdict(homeserver_url: str, status: int, body: Any) -> str | None:
    """None if registration is on and needs a registration token in every flow; else what is wrong."""
    flows = body.get("flows") if isinstance(body, dict) else None
    if status == 403 or (status == 401 and not flows):
        return (
            f"The web chat is on but {homeserver_url} does not allow registration, so no patient can get an "
            "account: set `enable_registration: true` and `registration_requires_token: true` in homeserver.yaml."
        )
    if status != 401 or not isinstance(flows, list):
        return f"The web chat is on but {homeserver_url} answered {status} when asked how to register."
    stages = [flow.get("stages", []) if isinstance(flow, dict) else [] for flow in flows]
    if any(TOKEN_STAGE not in flow for flow in stages):
        return (
            f"Anyone can register an account on {homeserver_url} without a registration token: set "
            "`registration_requires_token: true` in homeserver.yaml (the web chat makes the only tokens)."
        )
    return None


async def check_web_chat(
    settings: WebChatSettings,
    homeserver_url: str,
    admin_token: str,
    session: aiohttp.ClientSession,
    problems: list[str],
) -> None:
    """When the web chat is on: the admin token is set and the homeserver registers only with a token."""
    if not settings.enabled:
        return
    if not admin_token:
        problems.append(
            "The web chat is on but no homeserver admin token is set: it cannot make registration tokens or "
            "erase accounts. Set one with `photobot admin set homeserver_admin_token`."
        )
    url = f"{homeserver_url.rstrip('/')}/_matrix/client/v3/register"
    try:
        async with session.post(url, json={}) as response:
            body = await response.json(content_type=None)
            verdict = registration_verdict(homeserver_url, response.status, body)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        verdict = f"The web chat could not ask {homeserver_url} how to register ({type(error).__name__})."
    if verdict is not None:
        problems.append(verdict)
