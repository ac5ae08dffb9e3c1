"""The Matrix gateway: every call the bot makes to its homeserver, with nio's sharp edges filed off.

What it takes care of (numbers refer to ../shared/matrix-notes.md):
- the same device at every start: `restore_login` with persisted credentials, a real pickle key and a 0700
  store directory (#10);
- one-time keys replenished when the server count reaches 0, and a fallback key uploaded, so new patient
  devices can always reach the bot (#3);
- the bot's cross-signing identity, and the device re-signed if it changed (#4);
- an explicit trust decision for every device in a room before anything is sent, then sending with
  `ignore_unverified_devices=False` (#5), after any pending key query (#6), all under one lock so that
  concurrent sends in other rooms cannot change nio's global trust flags in between (#15);
- which device sent a decrypted message, from the keys the encryption proves (`SenderKeys`), so staff
  commands can be checked against the device that typed them;
- replies with caller-chosen transaction ids, so a replay is de-duplicated by the homeserver (#13);
- attachments decrypted in one pass (#11) and media deleted through the admin API when configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nio
from nio.api import MessageDirection, RoomPreset
from nio.client.async_client import AsyncClient, AsyncClientConfig

from bot.cross_signing import CrossSigningKeys, device_signature_upload, device_signing_upload
from bot.ids import DeviceID, EventID, RoomID, UserID, server_name
from bot.matrix.attachments import decrypt_attachment
from bot.matrix.events import EncryptedFile, Incoming, Invite, SenderKeys, convert
from bot.matrix.message_content import message_content
from bot.matrix.mxc import parse_mxc
from bot.matrix.port import (
    ForbiddenError,
    MatrixError,
    MatrixPort,
    MediaGoneError,
    MediaInfo,
    PurgeOutcome,
    SyncBatch,
    TransientMatrixError,
)

# The port's value types and exceptions are re-exported: callers that import them from here keep working.
__all__ = [
    "Credentials",
    "DeviceTrust",
    "ForbiddenError",
    "MatrixError",
    "MatrixGateway",
    "MediaGoneError",
    "MediaInfo",
    "PurgeOutcome",
    "SyncBatch",
    "TransientMatrixError",
    "TrustDecision",
    "decrypt_file",
    "new_client",
    "sync_once",
]

log = logging.getLogger(__name__)


class DeviceTrust(Enum):
    TRUST = "trust"
    EXCLUDE = "exclude"


# Decides, for one device of one member of a room, whether it may receive the room's keys.
# (room, user, device id, the device's ed25519 key as nio holds it) -> trust it or exclude it
TrustDecision = Callable[[RoomID, UserID, DeviceID, str], Awaitable[DeviceTrust]]


@dataclass(frozen=True)
class Credentials:
    user_id: UserID
    device_id: DeviceID
    access_token: str = field(repr=False)


def new_client(homeserver_url: str, user_id: UserID, store_dir: Path, pickle_passphrase: str) -> AsyncClient:
    """A nio client with our store, pickle key and no sync-token saving (we keep our own checkpoint)."""
    store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store_dir.chmod(0o700)
    config = AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=False,
        pickle_key=pickle_passphrase,
        request_timeout=60,
        max_timeout_retry_wait_time=10,
    )
    return AsyncClient(homeserver_url, user_id, store_path=str(store_dir), config=config)


class MatrixGateway:
    def __init__(
        self,
        client: AsyncClient,
        *,
        trust: TrustDecision,
        admin_token: Callable[[], str] = lambda: "",
    ) -> None:
        self.client = client
        self._trust = trust
        self._admin_token = admin_token
        # The crypto lock: key uploads, queries and claims, and each send's "decide trust, share the room
        # key, encrypt" run one at a time, because nio's device trust and device lists are shared by all rooms.
        self._key_lock = asyncio.Lock()

    @property
    def user_id(self) -> UserID:
        return UserID(self.client.user_id)

    @property
    def device_id(self) -> DeviceID:
        return DeviceID(self.client.device_id or "")

    @property
    def server_name(self) -> str:
        """The bot's homeserver, as it names itself in user ids and media links."""
        return server_name(self.user_id)

    @property
    def can_purge_media(self) -> bool:
        return bool(self._admin_token())

    def access_token(self) -> str:
        """The bot's own access token, for `photobot check`'s questions to the homeserver's admin API."""
        return str(self.client.access_token)

    async def close(self) -> None:
        """The HTTP session closed; nio's store stays as it is."""
        await self.client.close()

    # ---- account -------------------------------------------------------------------------------------

    async def login(self, password: str, device_name: str) -> Credentials:
        """Log in once (at `photobot init`): a new device, whose keys are then kept in the store."""
        response = await self.client.login(password, device_name=device_name)
        if not isinstance(response, nio.LoginResponse):
            raise MatrixError(f"login failed: {getattr(response, 'message', 'unknown error')}")
        self._protect_store()
        return Credentials(UserID(response.user_id), DeviceID(response.device_id), response.access_token)

    def restore(self, credentials: Credentials) -> None:
        """Use the persisted device: its keys are in the store, so patients' sessions keep working."""
        self.client.restore_login(credentials.user_id, credentials.device_id, credentials.access_token)
        self._protect_store()

    def _protect_store(self) -> None:
        store = Path(self.client.store_path or ".")
        for path in store.iterdir():
            path.chmod(0o600)

    async def whoami(self) -> UserID:
        response = await self._request("GET", "/_matrix/client/v3/account/whoami")
        return UserID(str(response["user_id"]))

    # ---- keys ----------------------------------------------------------------------------------------

    async def maintain_keys(self, one_time_key_count: int | None) -> None:
        """Keep the device reachable: upload identity and one-time keys, run queries and claims."""
        async with self._key_lock:
            olm = self.client.olm
            if olm is None:
                return
            if one_time_key_count == 0:
                # nio ignores a count of 0 and would never upload again (matrix-notes #3).
                olm.uploaded_key_count = 0
                await self._upload_fallback_key()
            if self.client.should_upload_keys:
                response = await self.client.keys_upload()
                if not isinstance(response, nio.KeysUploadResponse):
                    raise TransientMatrixError("uploading one-time keys failed")
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())
            await self.client.send_to_device_messages()

    async def _upload_fallback_key(self) -> None:
        """A fallback key answers key claims even when every one-time key is gone. nio has no API for it;
        vodozemac does, so we reach the account nio wraps (the only private attribute we touch)."""
        olm = self.client.olm
        if olm is None:
            return
        account: Any = olm.account._account  # vodozemac.Account; its stubs lack the fallback-key API
        account.generate_fallback_key()
        keys = {}
        for key_id, key in account.fallback_key.items():
            signed: dict[str, Any] = {"key": key.to_base64(), "fallback": True}
            signature = olm.sign_json(signed)
            signed["signatures"] = {self.user_id: {f"ed25519:{self.device_id}": signature}}
            keys[f"signed_curve25519:{key_id}"] = signed
        if not keys:
            return
        await self._request("POST", "/_matrix/client/v3/keys/upload", {"fallback_keys": keys})
        account.mark_keys_as_published()
        olm.save_account()

    async def start_keys(self) -> None:
        """At start-up: identity keys uploaded (first start), a fresh fallback key."""
        async with self._key_lock:
            if self.client.should_upload_keys:
                response = await self.client.keys_upload()
                if not isinstance(response, nio.KeysUploadResponse):
                    raise MatrixError("uploading the device keys failed")
            await self._upload_fallback_key()

    async def own_device_keys(self) -> dict[str, Any]:
        """Our device's key object as the homeserver holds it (what a patient's app sees)."""
        response = await self._request(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {self.user_id: [self.device_id]}}
        )
        device = response.get("device_keys", {}).get(self.user_id, {}).get(self.device_id)
        if not isinstance(device, dict):
            raise MatrixError("the homeserver does not know our device keys")
        return device

    async def set_up_cross_signing(self, keys: CrossSigningKeys) -> None:
        """Upload the master and self-signing keys (a first upload needs no interactive auth)."""
        await self._request(
            "POST", "/_matrix/client/v3/keys/device_signing/upload", device_signing_upload(self.user_id, keys)
        )

    async def sign_own_device(self, keys: CrossSigningKeys) -> str:
        """Sign our device key with the self-signing key; returns the device ed25519 key that was signed."""
        device = await self.own_device_keys()
        response = await self._request(
            "POST",
            "/_matrix/client/v3/keys/signatures/upload",
            device_signature_upload(self.user_id, device, keys),
        )
        if response.get("failures"):
            raise MatrixError("the homeserver refused the device signature")
        return str(device["keys"][f"ed25519:{self.device_id}"])

    def device_ed25519(self) -> str:
        olm = self.client.olm
        if olm is None:
            raise MatrixError("encryption is not loaded")
        return str(olm.account.identity_keys["ed25519"])

    # ---- rooms ---------------------------------------------------------------------------------------

    def room_known(self, room_id: RoomID) -> bool:
        return room_id in self.client.rooms

    async def member_keys_known(self, room_id: RoomID) -> bool:
        """Whether the bot knows a device of every other member (querying keys first if nio wants to): a
        first message sent before that would be encrypted for nobody, and the patient could never read it."""
        room = self.client.rooms.get(room_id)
        if room is None:
            return False
        if not room.encrypted:
            return True  # nothing is sent in clear: `send_message` turns encryption on first, then asks again
        async with self._key_lock:
            if self.client.should_query_keys:
                await self.client.keys_query()
        others = [user for user in room.users if user != self.user_id]
        return bool(others) and all(
            any(True for _ in self.client.device_store.active_user_devices(user)) for user in others
        )

    def room_members(self, room_id: RoomID) -> frozenset[UserID]:
        room = self.client.rooms.get(room_id)
        return frozenset(UserID(user) for user in room.users) if room else frozenset()

    async def room_state(self, room_id: RoomID) -> list[dict[str, Any]]:
        """The room's current state events, as the homeserver holds them (for deciding, never nio's view)."""
        found = await self._request_json("GET", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state")
        if not isinstance(found, list):
            raise MatrixError("the room's state is not a list of events")
        return [event for event in found if isinstance(event, dict)]

    async def join(self, room_id: RoomID) -> None:
        response = await self.client.join(room_id)
        if not isinstance(response, nio.JoinResponse):
            raise MatrixError(f"joining a room failed: {getattr(response, 'status_code', '')}")

    async def leave(self, room_id: RoomID) -> None:
        await self.client.room_leave(room_id)

    async def enable_encryption(self, room_id: RoomID) -> None:
        response = await self.client.room_put_state(
            room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}
        )
        if not isinstance(response, nio.RoomPutStateResponse):
            raise MatrixError("turning on encryption failed")

    # ---- sending -------------------------------------------------------------------------------------

    async def _apply_trust(self, room_id: RoomID) -> None:
        """Decide every device in the room explicitly, so nio shares the room key only where we said.

        Runs under the crypto lock, with the key query and the send that follow it: nio's trust flags are
        global (matrix-notes #15), so no other room's decisions may change them until this send is
        encrypted. The member and device lists are copied first: a sync may change nio's dicts meanwhile.
        """
        room = self.client.rooms[room_id]
        if self.client.should_query_keys:
            await self.client.keys_query()
        devices = [
            (UserID(user_id), device)
            for user_id in list(room.users)
            for device in list(self.client.device_store.active_user_devices(user_id))
            if not (user_id == self.user_id and device.id == self.device_id)
        ]
        for user_id, device in devices:
            decision = await self._trust(room_id, user_id, DeviceID(device.id), str(device.ed25519))
            if decision is DeviceTrust.TRUST:
                if self.client.olm and self.client.olm.is_device_blacklisted(device):
                    self.client.unblacklist_device(device)
                if not self.client.olm or not self.client.olm.is_device_verified(device):
                    self.client.verify_device(device)
            else:
                if self.client.olm and self.client.olm.is_device_verified(device):
                    self.client.unverify_device(device)
                if not self.client.olm or not self.client.olm.is_device_blacklisted(device):
                    self.client.blacklist_device(device)

    async def send_message(
        self, room_id: RoomID, content: dict[str, Any], txn_id: str, *, allow_unencrypted: bool = False
    ) -> EventID:
        """`allow_unencrypted`: only for the bot's own fixed words that carry nothing about anyone (why it
        is leaving a chat it cannot make safe); any other message waits for encryption."""
        if room_id not in self.client.rooms:
            raise TransientMatrixError("the room is not known yet (it appears after the next sync)")
        if allow_unencrypted and not self.client.rooms[room_id].encrypted:
            response = await self.client.room_send(room_id, "m.room.message", content, tx_id=txn_id)
            if not isinstance(response, nio.RoomSendResponse):
                raise _error("sending a message", response)
            return EventID(response.event_id)
        if not self.client.rooms[room_id].encrypted:
            # Never a word in clear: turn encryption on, and send once the next sync shows it on. If the bot
            # may not change the room's settings, this raises and the message is never sent.
            await self.enable_encryption(room_id)
            raise TransientMatrixError("encryption was just turned on; waiting for it to take effect")
        if not self.client.rooms[room_id].members_synced:
            await self.client.joined_members(room_id)
        # One send at a time decides trust, shares the room key and encrypts (matrix-notes #15): a send in
        # another room, or a key query, cannot change a device's trust in between.
        async with self._key_lock:
            await self._apply_trust(room_id)
            try:
                response = await self.client.room_send(
                    room_id, "m.room.message", content, tx_id=txn_id, ignore_unverified_devices=False
                )
            except nio.OlmUnverifiedDeviceError as error:  # a device appeared after the decisions above
                raise TransientMatrixError("a device appeared while sending; it will be retried") from error
        if not isinstance(response, nio.RoomSendResponse):
            raise _error("sending a message", response)
        return EventID(response.event_id)

    async def send_text(
        self,
        room_id: RoomID,
        text: str,
        txn_id: str,
        *,
        allow_unencrypted: bool = False,
        notify: bool = False,
    ) -> EventID:
        """A Markdown message. `notify`: an `m.text` that default push rules notify for (a question or an
        outcome the reader must see, matrix-notes #14); otherwise an `m.notice`, which never notifies. Every
        message carries `m.mentions` (empty), so no legacy mention rule fires on words in it."""
        content = message_content(text, msgtype="m.text" if notify else "m.notice")
        return await self.send_message(room_id, content, txn_id, allow_unencrypted=allow_unencrypted)

    async def upload(self, ciphertext: bytes) -> str:
        """Upload already-encrypted bytes in one piece (matrix-notes #11) under a neutral name; the mxc URL."""
        response, _ = await self.client.upload(
            lambda *_: ciphertext,
            content_type="application/octet-stream",
            filename="attachment",
            filesize=len(ciphertext),
        )
        if not isinstance(response, nio.UploadResponse):
            raise _error("uploading an attachment", response)
        return str(response.content_uri)

    async def create_direct_chat(self, invitee: UserID, name: str) -> RoomID:
        """A new encrypted direct chat with `invitee` (the bot opens it for a clinician's photo request)."""
        response = await self.client.room_create(
            is_direct=True,
            preset=RoomPreset.trusted_private_chat,
            invite=[invitee],
            name=name,
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        if not isinstance(response, nio.RoomCreateResponse):
            raise _error("opening a chat", response)
        return RoomID(response.room_id)

    async def display_name(self, user_id: UserID) -> str | None:
        """A user's display name, for showing only (never for deciding anything)."""
        response = await self.client.get_displayname(user_id)
        if isinstance(response, nio.ProfileGetDisplayNameResponse) and response.displayname:
            return str(response.displayname)[:80]
        return None

    async def user_exists(self, user_id: UserID) -> bool | None:
        """Whether the homeserver knows this account (its profile answers); None if it cannot tell (another
        server that could not be asked). Inviting an unknown id succeeds on Synapse, so ask first."""
        path = f"/_matrix/client/v3/profile/{quote(user_id, safe='')}"
        try:
            response = await self.client.send(
                "GET", path, headers={"Authorization": f"Bearer {self.client.access_token}"}
            )
        except (OSError, TimeoutError) as error:
            raise TransientMatrixError("the homeserver could not be reached to look up an account") from error
        async with response:
            if response.status == 200:
                return True
            if response.status == 404:
                return False
            if response.status == 429 or (
                response.status >= 500 and server_name(user_id) == self.server_name
            ):
                raise TransientMatrixError(f"looking up an account answered {response.status}")
            return None

    async def sender_device(self, user_id: UserID, keys: SenderKeys) -> tuple[DeviceID, str] | None:
        """The device (id, ed25519 key) of `user_id` that the encryption says sent a message, or None if the
        bot knows no such device of that user (after running any pending key query)."""
        async with self._key_lock:
            if self.client.should_query_keys:
                await self.client.keys_query()
            for device in list(self.client.device_store.active_user_devices(user_id)):
                if device.curve25519 == keys.curve25519 and device.ed25519 == keys.ed25519:
                    return DeviceID(device.id), str(device.ed25519)
        return None

    def sender_keys(self, event: Any, room_id: RoomID) -> SenderKeys | None:
        """What the encryption proves about the device that sent a decrypted event (see `SenderKeys`)."""
        olm = self.client.olm
        sender_key, session_id = getattr(event, "sender_key", None), getattr(event, "session_id", None)
        if olm is None or not getattr(event, "decrypted", False) or not sender_key or not session_id:
            return None
        session = olm.inbound_group_store.get(room_id, sender_key, session_id)
        if session is None or session.forwarding_chain:
            return None
        return SenderKeys(curve25519=str(sender_key), ed25519=str(session.ed25519))

    async def query_device_keys(self, user_ids: Collection[UserID]) -> dict[str, Any]:
        """The homeserver's /keys/query answer for these users, with their cross-signing keys."""
        return await self._request(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user: [] for user in sorted(user_ids)}}
        )

    async def redact(self, room_id: RoomID, event_id: EventID, reason: str, txn_id: str) -> None:
        response = await self.client.room_redact(room_id, event_id, reason=reason, tx_id=txn_id)
        if not isinstance(response, nio.RoomRedactResponse):
            raise _error("removing a message", response)

    # ---- media ---------------------------------------------------------------------------------------

    async def download_encrypted(self, file: EncryptedFile) -> bytes:
        """The attachment's ciphertext, as uploaded: decrypt it with `decrypt_file` (a worker thread may)."""
        response = await self.client.download(mxc=file.url)
        if not isinstance(response, nio.DownloadResponse):
            if getattr(response, "status_code", None) == "M_NOT_FOUND":
                raise MediaGoneError("the attachment is not on the homeserver")
            raise _error("downloading an attachment", response)
        status = getattr(getattr(response, "transport_response", None), "status", 200)
        if status == 429 or status >= 500:  # nio takes a proxy's error page for the file itself
            raise TransientMatrixError(f"the homeserver answered {status} to a download; it will be retried")
        if status != 200:
            raise MatrixError(f"the homeserver answered {status} to a download")
        body = response.body
        if not isinstance(body, bytes):
            raise MatrixError("the download was not kept in memory")
        return body

    async def media_info(self, mxc_url: str) -> MediaInfo | None:
        """Who uploaded a piece of media and when, from the homeserver's admin API (needs the admin token);
        None if the homeserver does not know it (never uploaded, or already deleted)."""
        token = self._admin_token()
        path = _admin_media_path(mxc_url)
        if not token or path is None:
            raise MatrixError("media info needs a homeserver-admin credential and an mxc:// link")
        try:
            response = await self.client.send("GET", path, headers={"Authorization": f"Bearer {token}"})
        except (OSError, TimeoutError) as error:
            raise TransientMatrixError("the homeserver could not be reached to check an upload") from error
        async with response:
            if response.status == 404:
                return None
            if response.status >= 500 or response.status == 429:
                raise TransientMatrixError(f"media info answered {response.status}")
            if response.status != 200:
                raise MatrixError(f"media info answered {response.status}")
            body = await response.json()
        info = body.get("media_info") if isinstance(body, dict) else None
        if not isinstance(info, dict) or not isinstance(info.get("created_ts"), int):
            raise MatrixError("media info answered without the upload's details")
        uploader = info.get("user_id")
        return MediaInfo(UserID(uploader) if isinstance(uploader, str) else None, int(info["created_ts"]))

    async def purge_media(self, mxc_url: str) -> PurgeOutcome:
        """Delete an upload from the homeserver's media store (needs a homeserver-admin token)."""
        token = self._admin_token()
        if not token:
            return PurgeOutcome.NOT_CONFIGURED
        path = _admin_media_path(mxc_url)
        if path is None:
            return PurgeOutcome.FAILED
        try:
            response = await self.client.send("DELETE", path, headers={"Authorization": f"Bearer {token}"})
        except (OSError, TimeoutError) as error:
            raise TransientMatrixError("the homeserver could not be reached to delete media") from error
        async with response:
            if response.status == 200:
                return PurgeOutcome.DELETED
            if response.status == 404:
                return PurgeOutcome.ALREADY_GONE
            if response.status >= 500 or response.status == 429:
                raise TransientMatrixError(f"media deletion answered {response.status}")
            return PurgeOutcome.FAILED

    # ---- plumbing ------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        parsed = await self._request_json(method, path, body)
        if not isinstance(parsed, dict):
            raise MatrixError(f"{method} {path} answered something that is not a JSON object")
        return parsed

    async def _request_json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.client.access_token}", "Content-Type": "application/json"}
        try:
            response = await self.client.send(
                method, path, json.dumps(body) if body is not None else None, headers=headers
            )
        except (OSError, TimeoutError) as error:
            raise TransientMatrixError(
                f"{method} {path.split('?', maxsplit=1)[0]} could not reach the homeserver"
            ) from error
        async with response:
            text = await response.text()
            if response.status >= 500 or response.status == 429:
                raise TransientMatrixError(f"{method} {path} answered {response.status}")
            if response.status >= 400:
                raise MatrixError(f"{method} {path} answered {response.status}: {text[:200]}")
            return json.loads(text) if text else {}


def decrypt_file(ciphertext: bytes, file: EncryptedFile) -> bytes:
    """The plaintext of a downloaded attachment. Raises AttachmentError if it does not match its event."""
    return decrypt_attachment(ciphertext, key=file.key, iv=file.iv, sha256=file.sha256)


def _error(action: str, response: object) -> MatrixError:
    status = str(getattr(response, "status_code", "") or "")
    if status in {"M_LIMIT_EXCEEDED", "429"} or status.startswith("5"):
        return TransientMatrixError(f"{action}: the homeserver is busy ({status})")
    transport = getattr(response, "transport_response", None)
    http_status = getattr(transport, "status", 0) or 0
    if http_status >= 500:
        return TransientMatrixError(f"{action}: the homeserver answered {http_status}")
    if status == "M_FORBIDDEN" or http_status == 403:
        return ForbiddenError(f"{action} was forbidden ({status or http_status})")
    return MatrixError(f"{action} failed ({status or http_status})")


# ---- syncing ----------------------------------------------------------------------------------------------


async def sync_once(
    gateway: MatrixGateway, since: str | None, *, full_state: bool, timeout_ms: int
) -> SyncBatch:
    client = gateway.client
    # nio skips a response whose next_batch equals the last one it saw, leaving it undecrypted; when we
    # replay a batch after a failure, make sure it does not think it has seen it.
    client.next_batch = since or ""
    try:
        response = await client.sync(timeout=timeout_ms, since=since, full_state=full_state or None)
    except (OSError, TimeoutError) as error:
        raise TransientMatrixError("sync could not reach the homeserver") from error
    if not isinstance(response, nio.SyncResponse):
        raise TransientMatrixError(f"sync failed ({getattr(response, 'status_code', '?')})")
    invites = tuple(
        invite
        for room_id, info in response.rooms.invite.items()
        if (invite := _invite(gateway, room_id, info))
    )
    timelines: dict[RoomID, list[Incoming]] = {}
    for raw_room_id, info in response.rooms.join.items():
        room_id = RoomID(raw_room_id)
        events = list(info.timeline.events)
        if info.timeline.limited and since is not None and info.timeline.prev_batch:
            events = await _page_back(gateway, room_id, info.timeline.prev_batch, since) + events
        converted = [
            replace(incoming, sender_keys=gateway.sender_keys(event, room_id))
            for event in events
            if getattr(event, "sender", None) != gateway.user_id and (incoming := convert(event, room_id))
        ]
        if converted:
            timelines[room_id] = converted
    count = response.device_key_count.signed_curve25519 if response.device_key_count else None
    return SyncBatch(
        next_batch=response.next_batch,
        invites=invites,
        timelines=timelines,
        left_rooms=tuple(RoomID(room_id) for room_id in response.rooms.leave),
        one_time_key_count=count,
    )


async def _page_back(gateway: MatrixGateway, room_id: RoomID, prev_batch: str, since: str) -> list[Any]:
    """The events a limited timeline left out, oldest first: page back from prev_batch to our checkpoint."""
    collected: list[Any] = []
    start = prev_batch
    while True:
        response = await gateway.client.room_messages(
            room_id, start=start, end=since, direction=MessageDirection.back, limit=100
        )
        if not isinstance(response, nio.RoomMessagesResponse):
            raise TransientMatrixError("paging back through a room's history failed")
        collected.extend(response.chunk)
        if not response.chunk or not response.end or response.end == start:
            break
        start = response.end
    if collected:
        log.info("filled a gap of %d events in a room after a limited sync", len(collected))
    return list(reversed(collected))


def _invite(gateway: MatrixGateway, room_id: str, info: Any) -> Invite | None:
    for event in info.invite_state:
        if isinstance(event, nio.InviteMemberEvent) and event.state_key == gateway.user_id:
            if event.membership != "invite":
                continue
            content = event.content if isinstance(event.content, dict) else {}
            return Invite(RoomID(room_id), UserID(event.sender), bool(content.get("is_direct", False)))
    return None


def _admin_media_path(mxc_url: str) -> str | None:
    """The admin API's path for an upload (its info with GET, its deletion with DELETE); None for a link
    that is not a well-formed mxc:// link."""
    link = parse_mxc(mxc_url)
    if link is None:
        return None
    return f"/_synapse/admin/v1/media/{quote(link.server, safe='')}/{quote(link.media_id, safe='')}"


# mypy proves here that the gateway is what the handlers are typed against.
_IMPLEMENTS_THE_PORT: type[MatrixPort] = MatrixGateway
