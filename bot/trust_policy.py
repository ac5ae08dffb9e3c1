"""The device trust policy, in one place: which devices get the room key when the bot sends, and which
devices' commands the bot obeys.

- Patient chats: the patient's own devices, trusted on first use (a patient cannot verify a bot); every
  other device, including other devices of the bot's own account, is excluded and gets no room key.
- Clinician rooms: only devices of allowlisted clinicians, and where a clinician has a cross-signing
  identity, only the devices they have signed with it (and whose key is the one they signed). Every other
  member's devices are excluded. A revoked clinician's devices are excluded from the next message on, and
  nio starts a new room key when a device's trust changes, so they cannot read anything sent after.
- The admin room: the same rule, for admins.
- Any other room: everyone excluded.
- Staff commands follow the same rule: obeyed only from a device the staff member's identity signed.
- Staff with no cross-signing identity: the `staff_without_cross_signing` setting decides. "refuse" (the
  default) trusts none of their devices, for keys or commands; "allow" trusts all of them on first use.
- Each staff member's identity (master key) is pinned on first sight. A different one later (an identity
  reset) trusts nothing, for keys or commands, until an admin accepts it with `!identity accept`; the admin
  room is told once per new identity.

Cross-signing is read from the homeserver's /keys/query (nio 0.26 has none) and checked by
`bot.device_signatures`. For room keys, a signed answer is reused for a few seconds so one send does not
query per device; an unsigned answer never is: a device the cache does not list as signed is always asked
about afresh, so a newly signed device gets the room key for the very next message. A command is always
checked against a fresh answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from bot.clock import Clock
from bot.device_signatures import SigningStatus, signing_status
from bot.ids import DeviceID, RoomID, UserID
from bot.matrix.gateway import DeviceTrust
from storage.practice_config import LiveConfig
from storage.rooms import RoomKind, RoomRepository
from storage.staff_identities import StaffIdentities

log = logging.getLogger(__name__)

KeysQuery = Callable[[Collection[UserID]], Awaitable[dict[str, Any]]]
IdentityChanged = Callable[[UserID], Awaitable[None]]
SIGNED_FOR = timedelta(seconds=10)  # how long a "this device is signed" answer is reused


class DeviceVerdict(Enum):
    """Whether a staff member's device may be trusted, and if not, why (for a kind, specific reply)."""

    SIGNED = "signed"  # signed by the staff member's pinned identity (or "allow" for one without)
    UNSIGNED = "unsigned"  # their identity has not signed this device
    NO_IDENTITY = "no identity"  # no cross-signing identity, and the setting is "refuse"
    IDENTITY_CHANGED = "identity changed"  # a new identity, not yet accepted by an admin
    UNKNOWN = "unknown"  # the bot cannot tell which device it was, or the homeserver did not say


@dataclass(frozen=True)
class _Answer:
    fetched_at: datetime
    status: SigningStatus
    devices: dict[str, Any]


class TrustPolicy:
    def __init__(
        self, rooms: RoomRepository, config: LiveConfig, clock: Clock, identities: StaffIdentities
    ) -> None:
        self._rooms = rooms
        self._config = config
        self._clock = clock
        self._identities = identities
        self._query: KeysQuery | None = None
        self._identity_changed: IdentityChanged | None = None
        self._cache: dict[UserID, _Answer] = {}

    def use_keys_query(self, query: KeysQuery) -> None:
        self._query = query

    def on_identity_changed(self, alert: IdentityChanged) -> None:
        """Called once per new identity of a staff member; it must not send (a send may be under way)."""
        self._identity_changed = alert

    async def __call__(
        self, room_id: RoomID, user_id: UserID, device_id: DeviceID, ed25519: str
    ) -> DeviceTrust:
        config = self._config.current
        if room_id in config.clinician_rooms:
            staff = config.is_clinician(user_id)
        elif room_id == config.admin_room:
            staff = config.is_admin(user_id)
        else:
            room = await self._rooms.get(room_id)
            patient_like = room is not None and room.kind in (RoomKind.PATIENT, RoomKind.REFUSED)
            if room is not None and patient_like and room.member == user_id:
                return DeviceTrust.TRUST
            return DeviceTrust.EXCLUDE
        if not staff:
            return DeviceTrust.EXCLUDE
        verdict = await self.staff_device(user_id, device_id, ed25519, fresh=False)
        return DeviceTrust.TRUST if verdict is DeviceVerdict.SIGNED else DeviceTrust.EXCLUDE

    async def staff_device(
        self, user_id: UserID, device_id: DeviceID, ed25519: str, *, fresh: bool = True
    ) -> DeviceVerdict:
        """May this device of a staff member be trusted, for room keys and for commands? A command is always
        checked against the homeserver's answer of the moment (`fresh`): an identity reset counts at once."""
        answer = await self._answer(user_id, device_id, fresh=fresh)
        if answer is None:
            return DeviceVerdict.UNKNOWN
        status = answer.status
        settled = await self._account_verdict(user_id, status)
        if settled is not None:
            return settled
        if device_id not in status.signed_devices:
            return DeviceVerdict.UNSIGNED
        device = answer.devices.get(device_id, {})
        keys = device.get("keys", {}) if isinstance(device, dict) else {}
        signed_key = isinstance(keys, dict) and keys.get(f"ed25519:{device_id}") == ed25519
        return DeviceVerdict.SIGNED if signed_key else DeviceVerdict.UNSIGNED

    async def staff_account(self, user_id: UserID) -> DeviceVerdict:
        """For an event sent in clear (Element Web's reactions): no encryption says which device sent it, so
        it counts as from a signed device only when every device the account has is signed (fresh answer)."""
        answer = await self._answer(user_id, DeviceID(""), fresh=True)
        if answer is None:
            return DeviceVerdict.UNKNOWN
        status = answer.status
        settled = await self._account_verdict(user_id, status)
        if settled is not None:
            return settled
        unsigned = [device for device in answer.devices if device not in status.signed_devices]
        return DeviceVerdict.UNSIGNED if unsigned or not answer.devices else DeviceVerdict.SIGNED

    async def _account_verdict(self, user_id: UserID, status: SigningStatus) -> DeviceVerdict | None:
        """The verdict for every device of this staff member at once, or None when it depends on the device:
        no identity (refused, or SIGNED under the "allow" setting for staff without cross-signing), or an
        identity that changed and is not yet accepted."""
        if not status.has_identity:
            allowed = self._config.current.staff_without_cross_signing == "allow"
            return DeviceVerdict.SIGNED if allowed else DeviceVerdict.NO_IDENTITY
        if status.master_key is not None and not await self._identity_pinned(user_id, status.master_key):
            return DeviceVerdict.IDENTITY_CHANGED
        return None

    async def _answer(self, user_id: UserID, device_id: DeviceID, *, fresh: bool) -> _Answer | None:
        """The user's cross-signing as the homeserver states it; reused only while it lists `device_id` as
        signed (a "not signed" answer may be out of date the moment the user signs a new device)."""
        if self._query is None:
            return None
        now = self._clock.now()
        cached = self._cache.get(user_id)
        recent = cached is not None and cached.fetched_at <= now <= cached.fetched_at + SIGNED_FOR
        if cached is not None and recent and not fresh and device_id in cached.status.signed_devices:
            return cached
        response = await self._query([user_id])
        status = signing_status(response, user_id)
        devices = response.get("device_keys", {}).get(user_id, {})
        answer = _Answer(now, status, devices if isinstance(devices, dict) else {})
        self._cache[user_id] = answer
        for problem in status.problems[:3]:
            log.debug("cross-signing of a staff member's devices: %s", problem)
        return answer

    async def _identity_pinned(self, user_id: UserID, master_key: str) -> bool:
        """True if `master_key` is the staff member's pinned identity (pinning it if none was)."""
        pinned = await self._identities.get(user_id)
        if pinned is None:
            await self._identities.pin(user_id, master_key)
            log.info("pinned a staff member's cross-signing identity on first sight")
            return True
        if pinned.master_key == master_key:
            return True
        if await self._identities.note_change(user_id, master_key):
            log.warning("a staff member's cross-signing identity changed; trusted for nothing until accepted")
            if self._identity_changed is not None:
                await self._identity_changed(user_id)
        return False
