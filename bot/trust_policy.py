"""The device trust policy, in one place: which devices get the room key when the bot sends.

- Patient chats: the patient's own devices, trusted on first use (a patient cannot verify a bot); every
  other device, including other devices of the bot's own account, is excluded and gets no room key.
- Clinician rooms: only devices of allowlisted clinicians, and where a clinician has a cross-signing
  identity, only the devices they have signed with it (and whose key is the one they signed). Every other
  member's devices are excluded. A revoked clinician's devices are excluded from the next message on, and
  nio starts a new room key when a device's trust changes, so they cannot read anything sent after.
- The admin room: the same rule, for admins.
- Any other room: everyone excluded.

Cross-signing is read from the homeserver's /keys/query (nio 0.26 has none) and checked by
`bot.device_signatures`; answers are cached for a few seconds so one send does not query per device.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.device_signatures import SigningStatus, signing_status
from bot.ids import DeviceID, RoomID, UserID
from bot.matrix.gateway import DeviceTrust
from storage.practice_config import LiveConfig
from storage.rooms import RoomKind, RoomRepository

log = logging.getLogger(__name__)

KeysQuery = Callable[[Collection[UserID]], Awaitable[dict[str, Any]]]
CACHE_FOR = timedelta(seconds=10)


class TrustPolicy:
    def __init__(self, rooms: RoomRepository, config: LiveConfig, clock: Clock) -> None:
        self._rooms = rooms
        self._config = config
        self._clock = clock
        self._query: KeysQuery | None = None
        self._cache: dict[UserID, tuple[Any, SigningStatus, dict[str, Any]]] = {}

    def use_keys_query(self, query: KeysQuery) -> None:
        self._query = query

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
        return DeviceTrust.TRUST if await self._signed(user_id, device_id, ed25519) else DeviceTrust.EXCLUDE

    async def _signed(self, user_id: UserID, device_id: DeviceID, ed25519: str) -> bool:
        """True if the user has no cross-signing identity (trust on first use), or signed this device."""
        if self._query is None:
            return False
        now = self._clock.now()
        cached = self._cache.get(user_id)
        if cached is None or now - cached[0] > CACHE_FOR or now < cached[0]:
            response = await self._query([user_id])
            status = signing_status(response, user_id)
            devices = response.get("device_keys", {}).get(user_id, {})
            cached = (now, status, devices if isinstance(devices, dict) else {})
            self._cache[user_id] = cached
            for problem in status.problems[:3]:
                log.info("cross-signing of a staff member's devices: %s", problem)
        _, status, devices = cached
        if not status.has_identity:
            return True
        if device_id not in status.signed_devices:
            return False
        device = devices.get(device_id, {})
        keys = device.get("keys", {}) if isinstance(device, dict) else {}
        return isinstance(keys, dict) and keys.get(f"ed25519:{device_id}") == ed25519
