"""One lock per room: the router, the expiry sweep and (later) clinician actions take it before they
load, step and commit a room's conversation, so work for one room happens in order."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from bot.ids import RoomID


class RoomLocks:
    def __init__(self) -> None:
        self._locks: defaultdict[RoomID, asyncio.Lock] = defaultdict(asyncio.Lock)

    def __call__(self, room_id: RoomID) -> asyncio.Lock:
        return self._locks[room_id]
