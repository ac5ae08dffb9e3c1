"""Removing a message that looks like a credential, in any room the bot serves, before it is handled.

The admin room's `!set homeserver_admin_token ...` is the one place a token belongs, and the admin desk
removes that message itself; anything else that looks like a credential (`bot.credential_slips`), such as
the token pasted into the clinician room, a typo in the setting's name, or a patient's password, is
redacted at once and the room is told to treat the credential as seen. Where the bot may not remove other
people's messages, the room is told that plainly and asked to remove it, never told it was removed. The
redaction's and the notice's transaction ids derive from the event, so a replay removes and tells once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.credential_slips import looks_like_credential
from bot.errors import TransientError
from bot.matrix.events import Incoming, TextMessage
from bot.matrix.port import MatrixError, RoomPort
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.rooms import RoomKind
from storage.sql import Database

log = logging.getLogger(__name__)

REMOVED_NOTICE = (
    "I've removed a message that looked like a password or access token, so it doesn't stay in this chat. "
    "If it was a real one, treat it as seen: replace it (for the homeserver-admin token, log that session "
    "out and set a new one with `!set homeserver_admin_token ...` in the admin room)."
)
NOT_REMOVED_NOTICE = (
    "That message looks like a password or access token, and I'm not allowed to remove other people's "
    "messages in this room. Please remove it yourself now, and treat it as seen: replace it (for the "
    "homeserver-admin token, log that session out and set a new one in the admin room). To let me remove "
    "such messages, give me moderator rights in this room."
)
REDACT_REASON = "Removed: it looked like a password or access token."
_SEALED_SETTING_COMMAND = "!set homeserver_admin_token "


@dataclass
class CredentialGuard:
    database: Database
    outbox: Outbox
    config: LiveConfig
    gateway: RoomPort

    async def screen(self, event: Incoming, kind: RoomKind) -> bool:
        """Remove `event` if it looks like a credential, and tell the room; whether it was removed."""
        if not isinstance(event, TextMessage):
            return False
        if kind is RoomKind.ADMIN and " ".join(event.body.split()).lower().startswith(
            _SEALED_SETTING_COMMAND
        ):
            return False  # the admin desk stores it sealed and removes the message itself
        if not looks_like_credential(event.body, [self.config.current.homeserver_admin_token.value]):
            return False
        try:
            txn_id = derive_txn_id(event.event_id, 95)
            await self.gateway.redact(event.room_id, event.event_id, REDACT_REASON, txn_id)
            removed = True
        except MatrixError as error:
            if isinstance(error, TransientError):
                raise  # the event is handled again after the next sync
            removed = False
        async with self.database.transaction() as db:
            text = REMOVED_NOTICE if removed else NOT_REMOVED_NOTICE
            txn_id = derive_txn_id(event.event_id, 94)
            await self.outbox.add(db, event.room_id, txn_id, "message", {"text": text})
        if removed:
            log.warning("removed a message that looked like a credential from a %s room", kind.value)
        else:
            log.warning(
                "a message that looks like a credential could not be removed from a %s room", kind.value
            )
        return removed

    def guarding(
        self, kind: RoomKind, handle: Callable[[Incoming], Awaitable[None]]
    ) -> Callable[[Incoming], Awaitable[None]]:
        """`handle`, with every event screened first (inside the router's error boundary)."""

        async def guarded(event: Incoming) -> None:
            await self.screen(event, kind)
            await handle(event)

        return guarded
