"""`!request link <area> [-- note]`: a web chat link for a patient without a Matrix app (issue 18).

The clinician gets a link to send by SMS or email; the patient who opens it gets the same photo request as
`!request @user` would open, in an encrypted web chat. Only the token's SHA-256 is stored; the link (with the
token) is in the reply alone, in the encrypted clinician room.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.clock import iso
from bot.keyring import Sealer
from bot.reminders import local_time
from bot.web_chat.links import Kind, mint_token, token_hash
from bot.web_chat.settings import WebChatSettings
from handlers.commands import Invocation, Outcome, UsageError
from storage.audit import AuditAction, AuditLog
from storage.sql import Connection, Database
from storage.web_links import WebLinkRepository

NOT_SET_UP = (
    "The web chat is not set up at this practice, so I can't make a link. Use `!request @patient:server "
    "<area>` for a patient with a Matrix app; an admin can turn the web chat on (docs/operator.md, Web chat)."
)


@dataclass
class RequestLinks:
    links: WebLinkRepository
    audit: AuditLog
    settings: WebChatSettings
    zone: ZoneInfo

    async def request(self, cmd: Invocation) -> Outcome:
        """`!request link <area> [-- note]`: mint the link; the reply carries it and its expiry."""
        text = cmd.rest(1, "What area to photograph")
        area, _, note = text.partition("--")
        area = " ".join(area.split())
        if not 2 <= len(area) <= 120:
            raise UsageError("Say which area, in 2 to 120 characters (a note may follow after --).")
        token = mint_token()
        hashed = token_hash(token)
        expires = cmd.now + cmd.config.request_expiry
        details = {
            "area": area,
            "note": " ".join(note.split()) or None,
            "by": cmd.sender,
            "request_expiry_seconds": int(cmd.config.request_expiry.total_seconds()),
        }

        async def work(db: Connection) -> None:
            await self.links.add(
                db, hashed, Kind.REQUEST, created_at=cmd.now, expires_at=expires, details=details
            )
            await self.audit.append(
                db,
                actor=cmd.sender,
                action=AuditAction.WEB_LINK,
                subject="",
                details={"link": hashed[:16], "expires_at": iso(expires)},
            )

        return Outcome(
            f"Here is a web chat link asking for a photo of: {area}. Send it to the patient by SMS or email; "
            f"it works once, until {local_time(expires, self.zone)}, and needs no app:\n\n"
            f"`{self.settings.link(token)}`",
            work,
        )


async def request_link(links: RequestLinks | None, cmd: Invocation) -> Outcome:
    """The `!request link` branch of `!request`: kind words when the web chat is off."""
    if links is None:
        raise UsageError(NOT_SET_UP)
    return await links.request(cmd)


def request_links_for(
    settings: WebChatSettings, database: Database, sealer: Sealer, audit: AuditLog, zone: ZoneInfo
) -> RequestLinks | None:
    """The `!request link` minter, or None when the web chat is off."""
    if not settings.enabled:
        return None
    return RequestLinks(WebLinkRepository(database, sealer), audit, settings, zone)
