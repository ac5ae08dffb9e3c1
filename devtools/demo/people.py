"""Scripted people for the demo and the end-to-end tests: real matrix-nio clients with encryption on.

A `Person` is a patient or clinician on their own device (own store directory): it opens encrypted
direct chats, sends text and encrypted photos, and keeps every message it could decrypt so a test can
assert what the person saw. These clients trust every device they meet: they stand in for a patient's
app, not for the bot, whose trust policy is explicit (`bot.trust_policy.TrustPolicy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nio
from nio.api import RoomPreset
from nio.client.async_client import AsyncClient, AsyncClientConfig

from bot.cross_signing import CrossSigningKeys, device_signature_upload, device_signing_upload
from bot.ids import DeviceID, EventID, RoomID, UserID
from bot.matrix.attachments import decrypt_attachment, encrypt_attachment
from devtools.local_homeserver import LocalHomeserver

# The scripted person's trust policy: like a patient's app with default settings, it shares its keys with
# every device of the people it talks to (here, the bot). The bot itself never does this: see
# `bot.trust_policy.TrustPolicy`.
TRUST_EVERY_DEVICE = True


@dataclass(frozen=True)
class Seen:
    """A message a person's app showed them."""

    event_id: EventID
    sender: UserID
    body: str
    kind: str  # 'text', 'image', 'file', 'undecryptable', 'redacted'
    content: dict[str, Any] = field(repr=False)
    encrypted: bool = True  # False when it reached the phone in clear


class Person:
    def __init__(self, client: AsyncClient, password: str) -> None:
        self.client = client
        self.password = password
        self.seen: dict[RoomID, list[Seen]] = {}
        self.redacted: set[EventID] = set()
        self.uploads: dict[EventID, list[str]] = {}  # the mxc URLs each photo message uploaded
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        # The private cross-signing keys, on the device that created them (Element keeps them in secret
        # storage); None on a device that has not been given them.
        self.cross_signing: CrossSigningKeys | None = None

    @classmethod
    async def sign_up(cls, homeserver: LocalHomeserver, localpart: str, store_dir: Path) -> Person:
        """A new account on its first device, which sets up cross-signing as Element does at first login."""
        password = f"pw-{localpart}"
        user = await homeserver.register_user(localpart, password)
        person = await cls.log_in(homeserver, user.user_id, password, store_dir)
        await person.set_up_cross_signing()
        return person

    @classmethod
    async def log_in(
        cls, homeserver: LocalHomeserver, user_id: str, password: str, store_dir: Path
    ) -> Person:
        """A new device for this person (a new phone, a reinstalled app)."""
        store_dir.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        client = AsyncClient(homeserver.base_url, user_id, store_path=str(store_dir), config=config)
        response = await client.login(password, device_name="phone")
        if not isinstance(response, nio.LoginResponse):
            raise RuntimeError(f"login failed for {user_id}")
        person = cls(client, password)
        await person.client.sync(timeout=0, full_state=True)
        await person._after_sync()
        person._task = asyncio.create_task(person._sync_forever())
        return person

    @property
    def user_id(self) -> UserID:
        return UserID(self.client.user_id)

    @property
    def device_id(self) -> DeviceID:
        return DeviceID(self.client.device_id or "")

    # ---- cross-signing ------------------------------------------------------------------------------

    async def set_up_cross_signing(self) -> None:
        """A new cross-signing identity (master and self-signing keys) that signs this device.

        Also what a password reset that resets the identity does: every other device is then unsigned.
        """
        keys = CrossSigningKeys.generate()
        path = "/_matrix/client/v3/keys/device_signing/upload"
        body: dict[str, Any] = device_signing_upload(self.user_id, keys)
        status, answer = await self._call("POST", path, body)
        if status == 401:  # replacing an identity asks for the password (user-interactive auth)
            body["auth"] = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": self.password,
                "session": answer.get("session"),
            }
            status, answer = await self._call("POST", path, body)
        if status != 200:
            raise RuntimeError(f"uploading cross-signing keys answered {status}")
        self.cross_signing = keys
        await self.sign_device(self.device_id)

    async def sign_device(self, device_id: DeviceID) -> None:
        """Sign one of this person's devices with their self-signing key (what "verify this device" does)."""
        keys = self.cross_signing
        if keys is None:
            raise RuntimeError("this device does not hold the cross-signing keys")
        query = {"device_keys": {self.user_id: [device_id]}}
        response = await self._api("POST", "/_matrix/client/v3/keys/query", query)
        device = response["device_keys"][self.user_id][device_id]
        signed = await self._api(
            "POST",
            "/_matrix/client/v3/keys/signatures/upload",
            device_signature_upload(self.user_id, device, keys),
        )
        if signed.get("failures"):
            raise RuntimeError("the homeserver refused the device signature")

    async def _api(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self._call(method, path, body)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        return answer

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.client.access_token}", "Content-Type": "application/json"}
        response = await self.client.send(method, path, json.dumps(body), headers=headers)
        async with response:
            answer = await response.json()
            return int(response.status), answer if isinstance(answer, dict) else {}

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()

    # ---- syncing --------------------------------------------------------------------------------------

    async def _sync_forever(self) -> None:
        while True:
            try:
                response = await self.client.sync(timeout=3000)
                if isinstance(response, nio.SyncResponse):
                    self._record(response)
                    await self._after_sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 (a scripted person keeps syncing whatever happens)
                await asyncio.sleep(0.5)

    async def _after_sync(self) -> None:
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())
        await self.client.send_to_device_messages()
        for room_id in list(self.client.invited_rooms):
            await self.client.join(room_id)
        async with self._changed:
            self._changed.notify_all()

    def _record(self, response: nio.SyncResponse) -> None:
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                if getattr(event, "sender", None) == self.user_id:
                    continue
                seen = _seen(event)
                if (
                    seen is not None
                    and not getattr(event, "decrypted", False)
                    and seen.kind != "undecryptable"
                ):
                    seen = replace(seen, encrypted=False)
                if seen is not None:
                    self.seen.setdefault(RoomID(room_id), []).append(seen)
                if isinstance(event, nio.RedactionEvent):
                    self.redacted.add(EventID(event.redacts))

    async def wait_for(self, room_id: RoomID, count: int, timeout: float = 30.0) -> list[Seen]:
        """Wait until this person has seen at least `count` messages from others in the room."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.seen.get(room_id, [])) >= count)
        return self.seen[room_id]

    async def wait_for_text(
        self, room_id: RoomID, needle: str, *, after: int = 0, timeout: float = 30.0
    ) -> Seen:
        """Wait for a message containing `needle`, among those after the first `after` seen in the room."""

        def found() -> Seen | None:
            return next((s for s in self.seen.get(room_id, [])[after:] if needle in s.body), None)

        await self.wait_until(lambda: found() is not None, timeout)
        message = found()
        assert message is not None
        return message

    async def settled(self, room_id: RoomID, quiet: float = 1.5) -> int:
        """Wait until no new message has arrived for `quiet` seconds; the number of messages seen."""
        while True:
            count = len(self.seen.get(room_id, []))
            await asyncio.sleep(quiet)
            if len(self.seen.get(room_id, [])) == count:
                return count

    async def wait_until(self, check: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)

    async def wait_for_invite_or_room(self, timeout: float = 30.0) -> RoomID:
        await self.wait_until(lambda: bool(self.client.rooms), timeout)
        return RoomID(next(iter(self.client.rooms)))

    def texts(self, room_id: RoomID) -> list[str]:
        return [seen.body for seen in self.seen.get(room_id, []) if seen.kind == "text"]

    # ---- acting -------------------------------------------------------------------------------------

    async def open_direct_chat(self, bot: UserID) -> RoomID:
        """What Element does for "Start chat": an encrypted, trusted private chat with the bot."""
        return await self._create_encrypted(
            "the chat", [bot], is_direct=True, preset=RoomPreset.trusted_private_chat
        )

    async def create_encrypted_room(self, name: str, invite: list[UserID]) -> RoomID:
        """A private, encrypted group room (a practice's clinician room), with these people invited."""
        return await self._create_encrypted("the room", invite, name=name)

    async def _create_encrypted(
        self,
        what: str,
        invite: list[UserID],
        *,
        name: str | None = None,
        is_direct: bool = False,
        preset: RoomPreset | None = None,
    ) -> RoomID:
        """Create a room with encryption on from the start; return once this person's client has it."""
        response = await self.client.room_create(
            name=name,
            is_direct=is_direct,
            preset=preset,
            invite=list(invite),
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        if not isinstance(response, nio.RoomCreateResponse):
            raise RuntimeError(f"creating {what} failed")
        room_id = RoomID(response.room_id)
        await self.wait_until(lambda: room_id in self.client.rooms)
        return room_id

    async def wait_joined(self, room_id: RoomID, user_id: UserID, timeout: float = 60.0) -> None:
        """Wait until `user_id` has joined the room (not merely been invited), as this person sees it."""

        def done() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users and user_id not in room.invited_users

        await self.wait_until(done, timeout)

    async def say(self, room_id: RoomID, text: str, txn_id: str | None = None) -> EventID:
        return await self._send(room_id, {"msgtype": "m.text", "body": text}, txn_id)

    async def send_photo(
        self,
        room_id: RoomID,
        data: bytes,
        *,
        filename: str,
        mimetype: str,
        as_file: bool = False,
        thumbnail: bytes | None = None,
        caption: str | None = None,
    ) -> EventID:
        """Encrypt and upload a photo (and a thumbnail, as many apps do), then send it as m.image or m.file.
        With a caption, as Element X sends one: the caption is the `body`, the file name is `filename`."""
        upload = encrypt_attachment(data)
        url = await self._upload(upload.ciphertext)
        urls = [url]
        info: dict[str, Any] = {"mimetype": mimetype, "size": len(data)}
        if thumbnail is not None:
            thumb = encrypt_attachment(thumbnail)
            thumb_url = await self._upload(thumb.ciphertext)
            urls.append(thumb_url)
            info["thumbnail_file"] = thumb.file_content(thumb_url)
            info["thumbnail_info"] = {"mimetype": "image/jpeg", "size": len(thumbnail)}
        content = {
            "msgtype": "m.file" if as_file else "m.image",
            "body": caption if caption is not None else filename,
            "info": info,
            "file": upload.file_content(url),
        }
        if caption is not None:
            content["filename"] = filename
        event_id = await self._send(room_id, content)
        self.uploads[event_id] = urls
        return event_id

    async def media_status(self, url: str) -> int:
        """The HTTP status this person gets downloading an upload (404 once the homeserver deleted it)."""
        server, _, media_id = url.removeprefix("mxc://").partition("/")
        response = await self.client.send(
            "GET",
            f"/_matrix/client/v1/media/download/{server}/{media_id}",
            headers={"Authorization": f"Bearer {self.client.access_token}"},
        )
        async with response:
            return int(response.status)

    async def send_content(
        self, room_id: RoomID, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> EventID:
        return await self._send(room_id, content, event_type=event_type)

    async def _upload(self, ciphertext: bytes) -> str:
        response, _ = await self.client.upload(
            lambda *_: ciphertext, content_type="application/octet-stream", filesize=len(ciphertext)
        )
        if not isinstance(response, nio.UploadResponse):
            raise RuntimeError("upload failed")
        return str(response.content_uri)

    async def _send(
        self,
        room_id: RoomID,
        content: dict[str, Any],
        txn_id: str | None = None,
        event_type: str = "m.room.message",
    ) -> EventID:
        if self.client.should_query_keys:
            await self.client.keys_query()
        response = await self.client.room_send(
            room_id, event_type, content, tx_id=txn_id, ignore_unverified_devices=TRUST_EVERY_DEVICE
        )
        if not isinstance(response, nio.RoomSendResponse):
            raise RuntimeError(f"sending failed: {getattr(response, 'message', response)}")
        return EventID(response.event_id)

    async def download_image(self, seen: Seen) -> bytes:
        """Download and decrypt an encrypted image the bot sent."""
        file = seen.content["file"]
        response = await self.client.download(mxc=file["url"])
        if not isinstance(response, nio.DownloadResponse):
            raise RuntimeError("download failed")
        assert isinstance(response.body, bytes)
        return decrypt_attachment(
            response.body, key=file["key"]["k"], iv=file["iv"], sha256=file["hashes"]["sha256"]
        )


def _seen(event: Any) -> Seen | None:
    if isinstance(event, nio.MegolmEvent):
        return Seen(EventID(event.event_id), UserID(event.sender), "", "undecryptable", {})
    if isinstance(event, nio.RoomMessageText | nio.RoomMessageNotice):
        return Seen(
            EventID(event.event_id), UserID(event.sender), event.body, "text", event.source.get("content", {})
        )
    if isinstance(event, nio.RoomEncryptedImage | nio.RoomEncryptedFile):
        kind = "image" if isinstance(event, nio.RoomEncryptedImage) else "file"
        return Seen(
            EventID(event.event_id), UserID(event.sender), event.body, kind, event.source.get("content", {})
        )
    return None
