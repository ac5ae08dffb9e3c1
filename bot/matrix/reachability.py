"""Is the homeserver there? One bounded probe of its client API, and a patient wait for it at start-up.

nio retries a request that cannot connect for ever (`AsyncClientConfig.max_timeouts` is unbounded), which
is right for a running bot and wrong for `photobot init` and `check`: a mistyped port would hang them
silently. So each command first asks `GET /_matrix/client/versions` (no login needed) with a short timeout,
and every error names the URL and says what is likely wrong.

Exceptions::

    MatrixError (bot.matrix.gateway)
    ├── HomeserverMisconfiguredError   it answers, but not as a Matrix homeserver over this scheme: fix the URL
    └── TransientMatrixError
        └── HomeserverUnreachableError it does not answer (yet): try again later
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from bot.matrix.gateway import MatrixError, TransientMatrixError

log = logging.getLogger(__name__)

PROBE_SECONDS = 10.0
FIRST_WAIT_SECONDS = 1.0
LONGEST_WAIT_SECONDS = 60.0
VERSIONS_PATH = "/_matrix/client/versions"


class HomeserverMisconfiguredError(MatrixError):
    """The URL answers, but not as a Matrix homeserver (or not over this scheme)."""


class HomeserverUnreachableError(TransientMatrixError):
    """Nothing answers at the URL (yet), or it is busy."""


async def probe(url: str, seconds: float = PROBE_SECONDS) -> None:
    """Returns if `url` answers as a Matrix homeserver within `seconds`; otherwise raises, naming `url`.
    An https:// URL that does not answer is tried once over http:// too: a plain-HTTP server often leaves
    a TLS handshake hanging rather than refusing it, and "it speaks http" is the useful answer."""
    try:
        await _probe(url, seconds)
    except HomeserverUnreachableError:
        if not url.startswith("https://") or not await _answers(
            url.replace("https://", "http://", 1), seconds / 2
        ):
            raise
        raise HomeserverMisconfiguredError(
            f"the homeserver at {url}: the TLS handshake failed (no answer over https), but it answers over "
            "http://. Correct the scheme in PHOTOBOT_HOMESERVER_URL."
        ) from None


async def _answers(url: str, seconds: float) -> bool:
    try:
        await _probe(url, seconds)
    except MatrixError:
        return False
    return True


async def _probe(url: str, seconds: float) -> None:
    where = f"the homeserver at {url}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(url + VERSIONS_PATH, allow_redirects=False) as response,
        ):
            status = response.status
            body = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientSSLError, ssl.SSLError) as error:
        raise HomeserverMisconfiguredError(
            f"{where}: the TLS handshake failed ({_short(error)}). Is it http:// rather than https:// (or is its "
            "certificate not trusted)? Check PHOTOBOT_HOMESERVER_URL."
        ) from None
    except aiohttp.InvalidURL:
        raise HomeserverMisconfiguredError(f"{where}: not a URL; check PHOTOBOT_HOMESERVER_URL.") from None
    except TimeoutError:
        raise HomeserverUnreachableError(f"{where} did not answer within {seconds:.0f} s.") from None
    except (aiohttp.ClientError, OSError, ValueError) as error:
        if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientConnectorError | OSError):
            raise HomeserverUnreachableError(f"{where} cannot be reached ({_short(error)}).") from None
        raise HomeserverMisconfiguredError(
            f"{where} did not answer as a Matrix homeserver ({_short(error)}). Is the URL's scheme (http or "
            "https) and port right? Check PHOTOBOT_HOMESERVER_URL."
        ) from None
    if status in {429, 502, 503, 504}:
        raise HomeserverUnreachableError(f"{where} is busy or starting (HTTP {status}).")
    if status != 200 or not isinstance(body, dict) or "versions" not in body:
        raise HomeserverMisconfiguredError(
            f"{where} answered HTTP {status} to {VERSIONS_PATH}, not as a Matrix homeserver's client API. "
            "Check PHOTOBOT_HOMESERVER_URL (the client URL, with the right scheme and port)."
        )


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@contextlib.asynccontextmanager
async def bounded(url: str, seconds: float, action: str) -> AsyncIterator[None]:
    """Homeserver calls that must finish within `seconds`; a timeout becomes an error naming `url`."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise HomeserverUnreachableError(
            f"the homeserver at {url} did not answer within {seconds:.0f} s ({action})."
        ) from None


async def wait_until_reachable(
    url: str,
    stopped: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]],
    *,
    check: Callable[[str], Awaitable[None]] = probe,
) -> bool:
    """Probe `url` until it answers, waiting longer each time (1 s, doubling, at most 60 s) and saying so
    in the log. False if `stopped()` became true first. A misconfigured URL is raised, not waited on."""
    wait = FIRST_WAIT_SECONDS
    tries = 0
    while not stopped():
        try:
            await check(url)
        except HomeserverUnreachableError as error:
            tries += 1
            log.warning("waiting for the homeserver: %s Trying again in %.0f s.", error, wait)
            await sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)
            continue
        if tries:
            log.info("the homeserver at %s answers now, after %d failed attempt(s)", url, tries)
        return True
    return False
