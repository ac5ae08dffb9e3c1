"""What the rest of the bot sees of Matrix: small typed events, converted from nio's once, at the edge.

nio's event objects carry the attachment key and media URL in their repr (one log line is enough to
decrypt a patient's photo), so they never leave the adapter. These types hide every secret from repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import nio

from bot.ids import EventID, RoomID, UserID


class MediaKind(Enum):
    IMAGE = "image"
    FILE = "file"
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True)
class EncryptedFile:
    """Where an encrypted attachment is and how to decrypt it (Matrix `EncryptedFile`). Secret."""

    url: str = field(repr=False)
    key: str = field(repr=False)
    iv: str = field(repr=False)
    sha256: str = field(repr=False)

    @classmethod
    def from_content(cls, content: Any) -> EncryptedFile | None:
        try:
            return cls(
                url=str(content["url"]),
                key=str(content["key"]["k"]),
                iv=str(content["iv"]),
                sha256=str(content["hashes"]["sha256"]),
            )
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class SenderKeys:
    """Which device sent a decrypted message, as the encryption proves it (not as the event claims it).

    curve25519: the sending device's identity key, the one the room key came from over Olm.
    ed25519: the signing key the sender bound to that room key; the device's own key for a device that
        really holds it. A room key forwarded by another device proves nothing and gives no SenderKeys.
    """

    curve25519: str
    ed25519: str


@dataclass(frozen=True)
class Message:
    event_id: EventID
    room_id: RoomID
    sender: UserID
    timestamp_ms: int
    encrypted: bool
    sender_keys: SenderKeys | None = field(default=None, repr=False, kw_only=True)


@dataclass(frozen=True)
class TextMessage(Message):
    body: str = field(repr=False)
    thread_root: EventID | None = None  # the root of the thread it was sent in (`m.thread`)
    reply_to: EventID | None = None  # the event it replies to (`m.in_reply_to`)


@dataclass(frozen=True)
class MediaMessage(Message):
    kind: MediaKind
    file: EncryptedFile | None  # None when the media was sent unencrypted
    thumbnail: EncryptedFile | None
    declared_size: int | None
    media_urls: tuple[str, ...] = field(repr=False)  # every upload this event points at, for purging
    # The patient's words sent with the photo: Element X puts a caption in `body` and the file name in
    # `filename`, so there is a caption when `filename` is present and differs from `body`.
    caption: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OtherMessage(Message):
    """A message the bot cannot use: sticker, location, poll... `kind` names it for the reply."""

    kind: str
    # A sticker's image is an unencrypted upload even in an encrypted room: it is purged like a photo's.
    media_urls: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class EditMessage(Message):
    """An edit (`m.replace`) of an earlier text: `body` is the new text from `m.new_content`, never the
    "* text" fallback a client shows old apps (matrix-notes #17)."""

    replaces: EventID
    body: str = field(repr=False)


@dataclass(frozen=True)
class ReactionMessage(Message):
    """A reaction (`m.annotation`) to an earlier message, sent encrypted or, as Element Web does, in clear."""

    reacts_to: EventID
    key: str


@dataclass(frozen=True)
class UndecryptableMessage(Message):
    session_id: str = field(repr=False)
    sender_key: str = field(repr=False)


@dataclass(frozen=True)
class MembershipChange(Message):
    member: UserID
    membership: str


Incoming = (
    TextMessage
    | EditMessage
    | ReactionMessage
    | MediaMessage
    | OtherMessage
    | UndecryptableMessage
    | MembershipChange
)


@dataclass(frozen=True)
class Invite:
    room_id: RoomID
    inviter: UserID
    is_direct: bool


_MEDIA_KINDS: dict[str, MediaKind] = {
    "m.image": MediaKind.IMAGE,
    "m.file": MediaKind.FILE,
    "m.video": MediaKind.VIDEO,
    "m.audio": MediaKind.AUDIO,
}

_OTHER_KINDS: dict[str, str] = {
    "m.location": "location",
    "m.sticker": "sticker",
    "org.matrix.msc3381.poll.start": "poll",
    "m.poll.start": "poll",
    "m.call.invite": "call",
}


def _base(event: Any, room_id: RoomID) -> dict[str, Any]:
    return {
        "event_id": EventID(event.event_id),
        "room_id": room_id,
        "sender": UserID(event.sender),
        "timestamp_ms": int(event.server_timestamp),
        "encrypted": bool(getattr(event, "decrypted", False)),
    }


def _plain_urls(content: object) -> tuple[str, ...]:
    """The unencrypted uploads a message's content points at (`url`, `info.thumbnail_url`)."""
    if not isinstance(content, dict):
        return ()
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    assert isinstance(info, dict)
    return _mxc_urls(content.get("url"), info.get("thumbnail_url"))


def _mxc_urls(*urls: object) -> tuple[str, ...]:
    """The uploads among `urls`: the strings that are mxc:// URLs."""
    return tuple(url for url in urls if isinstance(url, str) and url.startswith("mxc://"))


def _sticker(event: Any, room_id: RoomID) -> OtherMessage:
    source = getattr(event, "source", None)
    content = source.get("content") if isinstance(source, dict) else None
    return OtherMessage(**_base(event, room_id), kind="sticker", media_urls=_plain_urls(content))


def _media(event: Any, room_id: RoomID, content: dict[str, Any], encrypted: bool) -> MediaMessage:
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    assert isinstance(info, dict)
    file = EncryptedFile.from_content(content.get("file")) if encrypted else None
    thumbnail = EncryptedFile.from_content(info.get("thumbnail_file")) if encrypted else None
    urls = _mxc_urls(
        file.url if file else content.get("url"),
        thumbnail.url if thumbnail else info.get("thumbnail_url"),
    )
    size = info.get("size")
    body, filename = content.get("body"), content.get("filename")
    caption = (
        body.strip() if isinstance(body, str) and isinstance(filename, str) and body != filename else None
    )
    return MediaMessage(
        **_base(event, room_id),
        kind=_MEDIA_KINDS[content["msgtype"]],
        file=file,
        thumbnail=thumbnail,
        declared_size=size if isinstance(size, int) else None,
        media_urls=urls,
        caption=caption or None,
    )


def relations(content: object) -> tuple[EventID | None, EventID | None]:
    """(thread root, replied-to event) of a message's `m.relates_to`; (None, None) when absent or malformed."""
    relates = content.get("m.relates_to") if isinstance(content, dict) else None
    if not isinstance(relates, dict):
        return None, None
    root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
    in_reply = relates.get("m.in_reply_to")
    reply = in_reply.get("event_id") if isinstance(in_reply, dict) else None
    return (
        EventID(root) if isinstance(root, str) and root.startswith("$") else None,
        EventID(reply) if isinstance(reply, str) and reply.startswith("$") else None,
    )


def _edit(event: Any, room_id: RoomID) -> EditMessage | None:
    """The edit this text event is (`m.relates_to.rel_type == m.replace`), or None for an ordinary text."""
    source = getattr(event, "source", None)
    content = source.get("content") if isinstance(source, dict) else None
    if not isinstance(content, dict):
        return None
    relation = content.get("m.relates_to")
    if not isinstance(relation, dict) or relation.get("rel_type") != "m.replace":
        return None
    replaces = relation.get("event_id")
    new_content = content.get("m.new_content")
    body = new_content.get("body") if isinstance(new_content, dict) else None
    if not isinstance(replaces, str) or not isinstance(body, str):
        return None
    return EditMessage(**_base(event, room_id), replaces=EventID(replaces), body=body)


def convert(event: Any, room_id: RoomID) -> Incoming | None:
    """Our view of one timeline event, or None for events the bot has no business with."""
    if isinstance(event, nio.MegolmEvent):
        return UndecryptableMessage(
            **_base(event, room_id), session_id=event.session_id or "", sender_key=event.sender_key or ""
        )
    if isinstance(event, nio.RoomMemberEvent):
        return MembershipChange(
            **_base(event, room_id), member=UserID(event.state_key), membership=event.membership
        )
    if isinstance(event, nio.StickerEvent):
        return _sticker(event, room_id)
    if isinstance(event, nio.ReactionEvent):
        return ReactionMessage(**_base(event, room_id), reacts_to=EventID(event.reacts_to), key=event.key)
    if isinstance(event, nio.RoomMessageText | nio.RoomMessageEmote | nio.RoomMessageNotice):
        edit = _edit(event, room_id)
        if edit is not None:
            return edit
        root, reply = relations(getattr(event, "source", {}).get("content"))
        return TextMessage(**_base(event, room_id), body=event.body, thread_root=root, reply_to=reply)
    source = getattr(event, "source", None)
    if not isinstance(source, dict) or not isinstance(getattr(event, "event_id", None), str):
        return None
    event_type = source.get("type")
    content = source.get("content")
    if not isinstance(content, dict):
        return None
    if event_type == "m.sticker":
        return _sticker(event, room_id)
    if event_type != "m.room.message":
        kind = _OTHER_KINDS.get(str(event_type))
        return OtherMessage(**_base(event, room_id), kind=kind) if kind else None
    msgtype = content.get("msgtype")
    if msgtype in _MEDIA_KINDS:
        encrypted = isinstance(event, nio.RoomEncryptedMedia) or (
            bool(getattr(event, "decrypted", False)) and isinstance(content.get("file"), dict)
        )
        try:
            return _media(event, room_id, content, encrypted)
        except (KeyError, TypeError, ValueError):
            return OtherMessage(**_base(event, room_id), kind="broken attachment")
    kind = _OTHER_KINDS.get(str(msgtype), "unknown message")
    if content.get("body") is None and msgtype is None:
        return None  # a redacted or empty event: nothing to answer
    return OtherMessage(**_base(event, room_id), kind=kind)
