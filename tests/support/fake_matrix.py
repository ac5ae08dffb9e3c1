"""An in-memory Matrix behind the bot's port (`bot.matrix.port.MatrixPort`), for handler unit tests.

httpx's `MockTransport` in spirit: the handlers get this through the same constructor argument that takes
the real gateway, and it behaves as the gateway promises (an unknown room is a transient failure, a resend
under the same transaction id is the same event, a purged upload is gone), without a homeserver. It
records what the bot did (messages, redactions, purges, joins, leaves) and can be told what the homeserver
holds (rooms and members, media, accounts) and when to fail.

The real behaviour across the network is proved by the end-to-end tests against Synapse; this fake is only
for what a handler decides.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bot.ids import EventID, RoomID, UserID, server_name
from bot.matrix.attachments import encrypt_attachment
from bot.matrix.events import EncryptedFile
from bot.matrix.port import MatrixPort, MediaGoneError, MediaInfo, PurgeOutcome, TransientMatrixError

BOT = UserID("@photobot:example.org")


@dataclass(frozen=True)
class Sent:
    room_id: RoomID
    content: dict[str, Any] = field(repr=False)
    txn_id: str
    event_id: EventID
    unencrypted: bool

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))


@dataclass(frozen=True)
class Redaction:
    room_id: RoomID
    event_id: EventID
    reason: str
    txn_id: str


@dataclass
class _Failure:
    method: str
    room_id: RoomID | None
    error: Exception
    times: int


class FakeMatrix:
    """The homeserver as the bot sees it, in memory. Rooms are known once `add_room` says so."""

    def __init__(self, user_id: UserID = BOT, *, admin_token: bool = True) -> None:
        self._user_id = user_id
        self._admin_token = admin_token
        self.members: dict[RoomID, set[UserID]] = {}
        self.keys_unknown: set[RoomID] = set()  # rooms where no other member's device is known yet
        self.state: dict[RoomID, list[dict[str, Any]]] = {}
        self.media: dict[str, bytes] = {}  # mxc URL -> ciphertext held by the homeserver
        self.uploaders: dict[str, UserID] = {}
        self.display_names: dict[UserID, str] = {}
        self.accounts: set[UserID] = set()
        self.sent: list[Sent] = []
        self.redactions: list[Redaction] = []
        self.purged: list[str] = []
        self.joined: list[RoomID] = []
        self.left: list[RoomID] = []
        self.created: list[tuple[RoomID, UserID]] = []
        self._failures: list[_Failure] = []
        self._numbers = itertools.count(1)
        self._by_txn: dict[str, EventID] = {}

    # ---- telling the fake what the homeserver holds -------------------------------------------------

    def add_room(self, room_id: RoomID, *members: UserID) -> None:
        """A room the bot has joined and synced, with these other members."""
        self.members[room_id] = {self._user_id, *members}

    def add_attachment(self, plaintext: bytes, uploader: UserID) -> EncryptedFile:
        """An encrypted upload on the bot's homeserver, as a patient's client makes one; its `file`."""
        upload = encrypt_attachment(plaintext)
        url = f"mxc://{self.server_name}/media{next(self._numbers)}"
        self.media[url] = upload.ciphertext
        self.uploaders[url] = uploader
        found = EncryptedFile.from_content(upload.file_content(url))
        assert found is not None
        return found

    def fail(self, method: str, error: Exception, *, room_id: RoomID | None = None, times: int = 1) -> None:
        """The next `times` calls of `method` (in `room_id`, if given) raise `error`."""
        self._failures.append(_Failure(method, room_id, error, times))

    def messages(self, room_id: RoomID) -> list[str]:
        """The bodies of the messages the bot sent to a room, in order."""
        return [sent.body for sent in self.sent if sent.room_id == room_id]

    def _maybe_fail(self, method: str, room_id: RoomID | None = None) -> None:
        for failure in self._failures:
            if failure.method == method and failure.room_id in (None, room_id) and failure.times > 0:
                failure.times -= 1
                raise failure.error

    # ---- RoomPort ------------------------------------------------------------------------------------

    @property
    def user_id(self) -> UserID:
        return self._user_id

    def room_known(self, room_id: RoomID) -> bool:
        return room_id in self.members

    def room_members(self, room_id: RoomID) -> frozenset[UserID]:
        return frozenset(self.members.get(room_id, ()))

    async def member_keys_known(self, room_id: RoomID) -> bool:
        self._maybe_fail("member_keys_known", room_id)
        return room_id in self.members and room_id not in self.keys_unknown

    async def room_state(self, room_id: RoomID) -> list[dict[str, Any]]:
        self._maybe_fail("room_state", room_id)
        return list(self.state.get(room_id, []))

    async def join(self, room_id: RoomID) -> None:
        self._maybe_fail("join", room_id)
        self.joined.append(room_id)

    async def leave(self, room_id: RoomID) -> None:
        self._maybe_fail("leave", room_id)
        self.left.append(room_id)
        self.members.pop(room_id, None)

    async def send_message(
        self, room_id: RoomID, content: dict[str, Any], txn_id: str, *, allow_unencrypted: bool = False
    ) -> EventID:
        if room_id not in self.members:
            raise TransientMatrixError("the room is not known yet (it appears after the next sync)")
        self._maybe_fail("send_message", room_id)
        if txn_id in self._by_txn:  # the homeserver de-duplicates a resend under the same transaction id
            return self._by_txn[txn_id]
        event_id = EventID(f"$sent{next(self._numbers)}")
        self._by_txn[txn_id] = event_id
        self.sent.append(Sent(room_id, dict(content), txn_id, event_id, allow_unencrypted))
        return event_id

    async def redact(self, room_id: RoomID, event_id: EventID, reason: str, txn_id: str) -> None:
        self._maybe_fail("redact", room_id)
        self.redactions.append(Redaction(room_id, event_id, reason, txn_id))

    # ---- MediaPort -----------------------------------------------------------------------------------

    @property
    def server_name(self) -> str:
        return server_name(self._user_id)

    @property
    def can_purge_media(self) -> bool:
        return self._admin_token

    async def download_encrypted(self, file: EncryptedFile) -> bytes:
        self._maybe_fail("download_encrypted")
        if file.url not in self.media:
            raise MediaGoneError("the attachment is not on the homeserver")
        return self.media[file.url]

    async def upload(self, ciphertext: bytes) -> str:
        self._maybe_fail("upload")
        url = f"mxc://{self.server_name}/upload{next(self._numbers)}"
        self.media[url] = ciphertext
        self.uploaders[url] = self._user_id
        return url

    async def media_info(self, mxc_url: str) -> MediaInfo | None:
        self._maybe_fail("media_info")
        if mxc_url not in self.media:
            return None
        return MediaInfo(self.uploaders.get(mxc_url), 0)

    async def purge_media(self, mxc_url: str) -> PurgeOutcome:
        self._maybe_fail("purge_media")
        if not self._admin_token:
            return PurgeOutcome.NOT_CONFIGURED
        if self.media.pop(mxc_url, None) is None:
            return PurgeOutcome.ALREADY_GONE
        self.purged.append(mxc_url)
        return PurgeOutcome.DELETED

    # ---- PeoplePort ----------------------------------------------------------------------------------

    async def display_name(self, user_id: UserID) -> str | None:
        return self.display_names.get(user_id)

    async def user_exists(self, user_id: UserID) -> bool | None:
        self._maybe_fail("user_exists")
        return user_id in self.accounts or user_id in self.display_names

    async def create_direct_chat(self, invitee: UserID, name: str) -> RoomID:
        self._maybe_fail("create_direct_chat")
        room_id = RoomID(f"!chat{next(self._numbers)}:{self.server_name}")
        self.created.append((room_id, invitee))
        return room_id


_IMPLEMENTS_THE_PORT: type[MatrixPort] = FakeMatrix  # mypy proves the fake stands where the gateway does
