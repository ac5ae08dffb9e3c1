"""What the page's API does, independent of HTTP: each call returns an `Answer` (status and JSON body).

- `poster_link`: a short-lived token for the poster's QR code, limited per client address and per day;
- `redeem`: once per link, a single-use Synapse registration token for a username the bot chose;
- `ready`: the page registered that user; the bot opens the chat (a request link: the clinician's request,
  exactly as `!request @user`; a poster link: a new patient's greeting) and invites the user;
- `status`: open, closed, expired or unknown (the page wipes itself for anything but open);
- `sweep`: deactivate and erase every account whose submission is closed or whose period has ended.
Tokens, usernames and registration tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.clock import Clock
from bot.errors import TransientError, UserFacingError
from bot.ids import RoomID, UserID
from bot.matrix.gateway import MatrixError
from bot.web_chat.links import (
    AddressLimiter,
    Kind,
    LinkState,
    SubmissionFacts,
    closing_reason,
    mint_token,
    new_username,
    token_hash,
    well_formed,
)
from bot.web_chat.settings import WebChatSettings
from bot.web_chat.synapse_admin import HomeserverAdminError
from storage.audit import AuditAction, AuditLog
from storage.outbox import derive_txn_id
from storage.sql import Database
from storage.web_links import OpenAccount, WebLink, WebLinkRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after: int | None = None  # seconds, for a 429


class HomeserverAdmin(Protocol):
    """What the web chat needs of the homeserver's admin API (`bot.web_chat.synapse_admin.SynapseAdmin`)."""

    async def registration_token(self, expires_at: datetime) -> str: ...

    async def account_exists(self, user_id: UserID) -> bool: ...

    async def deactivate_and_erase(self, user_id: UserID) -> bool: ...


class RequestOpener(Protocol):
    """Opens a chat for a clinician's photo request (`handlers.photo_requests.PhotoRequests.open`)."""

    async def __call__(
        self, request_id: str, patient: UserID, area: str, *, note: str | None, by: UserID, expires: datetime
    ) -> str: ...


@dataclass
class WebChat:
    settings: WebChatSettings
    links: WebLinkRepository
    database: Database
    audit: AuditLog
    admin: HomeserverAdmin
    clock: Clock
    bot_user_id: UserID
    practice_name: Callable[[], str]
    open_request: RequestOpener
    open_poster_chat: Callable[[UserID], Awaitable[RoomID]]  # a new patient's chat, greeted
    find_room: Callable[[UserID], Awaitable[RoomID | None]]  # the chat the bot opened with this user
    limiter: AddressLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = AddressLimiter(self.settings.poster_per_address)
        self._minting = asyncio.Lock()
        self._opening: dict[str, asyncio.Lock] = {}

    @property
    def server_name(self) -> str:
        return self.bot_user_id.partition(":")[2]

    def _refusal(self, status: int, error: str, message: str) -> Answer:
        return Answer(status, {"error": error, "message": f"{message} {self.settings.contact}".strip()})

    def config(self) -> dict[str, str]:
        return {
            "homeserver_url": self.settings.homeserver_url,
            "bot_user_id": self.bot_user_id,
            "practice_name": self.practice_name(),
            "contact": self.settings.contact,
        }

    # ---- minting ---------------------------------------------------------------------------------------

    async def poster_link(self, address: str) -> Answer:
        """A token for someone who scanned the poster, unless this address or the practice had enough."""
        now = self.clock.now()
        async with self._minting:
            if await self.links.posters_since(now - timedelta(days=1)) >= self.settings.poster_per_day:
                log.warning("poster links: today's limit of %d is reached", self.settings.poster_per_day)
                return self._busy(timedelta(hours=1))
            if not self.limiter.allow(address, now):
                return self._busy(self.limiter.retry_after(address, now))
            token = mint_token()
            async with self.database.transaction() as db:
                await self.links.add(
                    db,
                    token_hash(token),
                    Kind.POSTER,
                    created_at=now,
                    expires_at=now + self.settings.poster_link_life,
                )
        return Answer(200, {"token": token})

    def _busy(self, wait: timedelta) -> Answer:
        minutes = max(1, round(wait.total_seconds() / 60))
        answer = self._refusal(
            429,
            "busy",
            f"Too many new chats have been started from here. Please try again in {minutes} minutes.",
        )
        return Answer(answer.status, answer.body, retry_after=max(1, int(wait.total_seconds())))

    # ---- redeeming ------------------------------------------------------------------------------------

    async def _usable(self, token: object) -> WebLink | Answer:
        if not well_formed(token):
            return self._refusal(404, "unknown", "This link is not one of ours: check it was copied whole.")
        assert isinstance(token, str)
        link = await self.links.get(token_hash(token))
        if link is None:
            return self._refusal(404, "unknown", "This link is not one of ours: check it was copied whole.")
        if link.closed_at is not None:
            return self._refusal(410, "closed", "This chat has ended and its account was erased.")
        return link

    async def redeem(self, token: object) -> Answer:
        found = await self._usable(token)
        if isinstance(found, Answer):
            return found
        link, now = found, self.clock.now()
        if link.redeemed_at is not None:
            return self._refusal(410, "used", "This link has already been used (it works once).")
        if link.expires_at <= now:
            return self._refusal(410, "expired", "This link has expired.")
        username = new_username()
        if not await self.links.redeem(
            link.token_hash, username=username, now=now, account_until=now + self.settings.account_period
        ):
            return self._refusal(410, "used", "This link has already been used (it works once).")
        try:
            registration = await self.admin.registration_token(now + self.settings.registration_token_life)
        except HomeserverAdminError as error:
            await self.links.release(link.token_hash)
            log.warning("a web chat link could not be redeemed: %s", error)
            return self._refusal(
                503, "unavailable", "The practice's chat is not available just now; try later."
            )
        log.info("a web chat link (%s) was redeemed", link.kind)
        return Answer(
            200,
            {
                "registration_token": registration,
                "username": username,
                "homeserver_url": self.settings.homeserver_url,
                "bot_user_id": self.bot_user_id,
            },
        )

    # ---- opening the chat -------------------------------------------------------------------------------

    async def ready(self, token: object, user_id: object) -> Answer:
        found = await self._usable(token)
        if isinstance(found, Answer):
            return found
        link = found
        if link.redeemed_at is None or link.username is None:
            return self._refusal(409, "not_redeemed", "This link has not been opened yet.")
        expected = UserID(f"@{link.username}:{self.server_name}")
        if user_id != expected:
            return self._refusal(400, "wrong_user", "That is not the account this link made.")
        lock = self._opening.setdefault(link.token_hash, asyncio.Lock())
        async with lock:
            fresh = await self.links.get(link.token_hash)
            if fresh is not None and fresh.room_id is not None:
                return Answer(200, {"room_id": fresh.room_id})
            try:
                if not await self.admin.account_exists(expected):
                    return self._refusal(409, "not_registered", "The account for this link is not there yet.")
                room_id = await self._open_chat(link, expected)
            except UserFacingError as error:
                return self._refusal(409, "refused", error.text)
            except (TransientError, HomeserverAdminError, MatrixError) as error:
                log.warning("a web chat could not be opened yet: %s", type(error).__name__)
                return self._refusal(503, "unavailable", "The practice's chat is not available just now.")
            async with self.database.transaction() as db:
                await self.links.set_room(db, link.token_hash, room_id)
                await self.audit.append(
                    db,
                    actor="bot",
                    action=AuditAction.WEB_ACCOUNT_OPENED,
                    subject="",
                    details={"link": link.token_hash[:16], "kind": link.kind},
                )
        self._opening.pop(link.token_hash, None)
        log.info("opened a web chat (%s link)", link.kind)
        return Answer(200, {"room_id": room_id})

    async def _open_chat(self, link: WebLink, user: UserID) -> RoomID:
        # A throwaway account has only the chat its link opened: one already there (the bot stopped
        # between opening it and recording it) is that chat, and is not opened twice.
        earlier = await self.find_room(user)
        if earlier is not None:
            return earlier
        if link.kind != Kind.REQUEST:
            return await self.open_poster_chat(user)
        details = link.details
        expiry = timedelta(seconds=int(details.get("request_expiry_seconds", 3 * 86400)))
        await self.open_request(
            derive_txn_id(f"web-link:{link.token_hash}", 0),
            user,
            str(details["area"]),
            note=str(details["note"]) if details.get("note") else None,
            by=UserID(str(details["by"])),
            expires=self.clock.now() + expiry,
        )
        room_id = await self.find_room(user)
        if room_id is None:
            raise TransientError("the request's chat is not recorded yet")
        return room_id

    # ---- status and closing ---------------------------------------------------------------------------

    async def status(self, token: object) -> Answer:
        if not well_formed(token):
            return Answer(200, {"state": LinkState.UNKNOWN})
        assert isinstance(token, str)
        link = await self.links.get(token_hash(token))
        if link is None:
            return Answer(200, {"state": LinkState.UNKNOWN})
        if link.closed_at is not None:
            return Answer(200, {"state": LinkState.CLOSED})
        if link.redeemed_at is None:
            expired = link.expires_at <= self.clock.now()
            return Answer(200, {"state": LinkState.EXPIRED if expired else LinkState.OPEN})
        account = await self.links.open_account(link.token_hash)
        if account is not None and await self._close_if_due(account):
            return Answer(200, {"state": LinkState.CLOSED})
        return Answer(200, {"state": LinkState.OPEN})

    async def sweep(self) -> int:
        """Close every account that is due; how many were closed (one that fails is tried next time)."""
        closed = 0
        for account in await self.links.open_accounts():
            try:
                closed += await self._close_if_due(account)
            except Exception:
                log.exception("a web chat account could not be closed; it is tried again later")
        return closed

    async def _close_if_due(self, account: OpenAccount) -> bool:
        reason = closing_reason(
            conversation_state=account.conversation_state,
            submission=SubmissionFacts(
                account.submission_status,
                images_destroyed=account.images_destroyed,
                exported=account.exported,
                consent_pending=account.consent_pending,
            )
            if account.submission_status is not None
            else None,
            account_until=account.link.account_until,
            last_activity=account.last_activity,
            end_grace=self.settings.end_grace,
            now=self.clock.now(),
        )
        if reason is None:
            return False
        link = account.link
        erased = False
        if link.username is not None:
            try:
                erased = await self.admin.deactivate_and_erase(UserID(f"@{link.username}:{self.server_name}"))
            except HomeserverAdminError as error:
                log.warning("a web chat account could not be erased yet: %s", error)
                return False
        async with self.database.transaction() as db:
            if not await self.links.close(db, link.token_hash, reason, self.clock.now()):
                return False
            await self.audit.append(
                db,
                actor="bot",
                action=AuditAction.WEB_ACCOUNT_CLOSED,
                subject=account.submission_reference or "",  # so `!audit REF` shows the account's end
                details={"link": link.token_hash[:16], "reason": reason, "erased": erased},
            )
        log.info("closed a web chat account (%s)", reason)
        return True
