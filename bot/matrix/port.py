"""What the handlers need from Matrix: the seam between them and the gateway (httpx's `BaseTransport`).

`MatrixGateway` (bot/matrix/gateway.py) is the one implementation that talks to a homeserver; the unit tests
put an in-memory fake behind the same port (tests/support/fake_matrix.py). The port is split by role, so a
piece of code asks only for what it uses:

- `RoomPort`: who the bot is, the rooms it knows, joining and leaving, sending and removing messages;
- `MediaPort`: the bot's homeserver, downloading an attachment, uploading one, the admin media calls;
- `PeoplePort`: a user's display name, whether an account exists, opening a direct chat;
- `MatrixPort`: all three, for a handler that needs more than one role.

The value types and exceptions a caller sees (whatever the implementation) live here too; the gateway
re-exports them, so `from bot.matrix.gateway import MatrixError` keeps working. Exception tree:

    Exception
    └── MatrixError              the homeserver refused, for a reason retrying will not fix
        ├── ForbiddenError       the bot lacks the permission (M_FORBIDDEN)
        ├── MediaGoneError       the upload is not on the homeserver (never there, or deleted)
        └── TransientMatrixError (also a bot.errors.TransientError) unreachable or busy: try again later
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from bot.errors import TransientError
from bot.ids import EventID, RoomID, UserID
from bot.matrix.events import EncryptedFile, Incoming, Invite


class MatrixError(Exception):
    """The homeserver refused a request, for a reason that retrying will not fix."""


class ForbiddenError(MatrixError):
    """The homeserver refused because the bot lacks the permission (M_FORBIDDEN): retrying will not help."""


class TransientMatrixError(MatrixError, TransientError):
    """The homeserver could not be reached or was busy: try again later, nothing is lost."""


class MediaGoneError(MatrixError):
    """The homeserver does not have the upload (never there, or already deleted)."""


@dataclass(frozen=True)
class MediaInfo:
    """The homeserver's own record of an upload (Synapse's admin media info): who uploaded it, and when."""

    uploader: UserID | None  # None for remote media (cached from another server)
    created_ms: int


class PurgeOutcome(Enum):
    DELETED = "deleted"
    ALREADY_GONE = "already gone"
    NOT_CONFIGURED = "not configured"
    FAILED = "failed"


@dataclass(frozen=True)
class SyncBatch:
    """One sync's worth of work, decrypted where possible, with every gap filled from /messages."""

    next_batch: str
    invites: tuple[Invite, ...]
    timelines: dict[RoomID, list[Incoming]]
    left_rooms: tuple[RoomID, ...]
    one_time_key_count: int | None


class RoomPort(Protocol):
    """The bot in its rooms: who it is, which rooms and members it knows, sending and removing messages."""

    @property
    def user_id(self) -> UserID: ...

    def room_known(self, room_id: RoomID) -> bool:
        """Whether the bot's last sync showed this room (a room joined a moment ago appears after the next)."""
        ...

    def room_members(self, room_id: RoomID) -> frozenset[UserID]:
        """The room's joined and invited members as of the last sync (the bot included)."""
        ...

    async def member_keys_known(self, room_id: RoomID) -> bool:
        """Whether a message sent now would be encrypted for a device of every other member."""
        ...

    async def room_state(self, room_id: RoomID) -> list[dict[str, Any]]:
        """The room's current state events, as the homeserver holds them."""
        ...

    async def join(self, room_id: RoomID) -> None: ...

    async def leave(self, room_id: RoomID) -> None: ...

    async def send_message(
        self, room_id: RoomID, content: dict[str, Any], txn_id: str, *, allow_unencrypted: bool = False
    ) -> EventID:
        """Send a message event (encrypted unless `allow_unencrypted` and the room is not); a replay under
        the same `txn_id` is the same event."""
        ...

    async def redact(self, room_id: RoomID, event_id: EventID, reason: str, txn_id: str) -> None: ...


class MediaPort(Protocol):
    """Attachments and the homeserver's media store."""

    @property
    def server_name(self) -> str:
        """The bot's homeserver, as it names itself in user ids and media links."""
        ...

    @property
    def can_purge_media(self) -> bool:
        """Whether a homeserver-admin credential is configured (media can be deleted from the server)."""
        ...

    async def download_encrypted(self, file: EncryptedFile) -> bytes:
        """The attachment's ciphertext, as uploaded."""
        ...

    async def upload(self, ciphertext: bytes) -> str:
        """Upload already-encrypted bytes; the mxc URL."""
        ...

    async def media_info(self, mxc_url: str) -> MediaInfo | None:
        """Who uploaded a piece of media and when; None if the homeserver does not have it."""
        ...

    async def purge_media(self, mxc_url: str) -> PurgeOutcome:
        """Delete an upload from the homeserver's media store."""
        ...


class PeoplePort(Protocol):
    """Other accounts: their names, whether they exist, a new direct chat with one."""

    async def display_name(self, user_id: UserID) -> str | None:
        """For showing only, never for deciding anything."""
        ...

    async def user_exists(self, user_id: UserID) -> bool | None:
        """Whether the homeserver knows this account; None if it cannot tell."""
        ...

    async def create_direct_chat(self, invitee: UserID, name: str) -> RoomID: ...


class MatrixPort(RoomPort, MediaPort, PeoplePort, Protocol):
    """Everything the handlers need from Matrix."""
