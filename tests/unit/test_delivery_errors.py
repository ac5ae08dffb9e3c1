"""Sending replies when something unexpected breaks: the error stays with that reply, never ends the bot.

The gateway here is the real `MatrixGateway` with its two sending calls replaced (a seam: a subclass, no
network); the outbox and database are the real ones of a bot built by `open_app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio.client.async_client import AsyncClient

from bot.app import App
from bot.ids import DeviceID, EventID, RoomID, UserID
from bot.matrix.gateway import DeviceTrust, MatrixGateway
from handlers.delivery import Delivery
from storage.outbox import derive_txn_id
from tests.unit.test_fuzz_support import offline_app

BROKEN = RoomID("!broken:example.org")
HEALTHY = RoomID("!healthy:example.org")


async def _exclude(room_id: RoomID, user_id: UserID, device_id: DeviceID, key: str) -> DeviceTrust:
    return DeviceTrust.EXCLUDE


class SendBreaksInOneRoom(MatrixGateway):
    """Every room is known; a send into BROKEN fails as nio does when a key update changes its device dict
    while the bot walks it."""

    def __init__(self) -> None:
        super().__init__(AsyncClient("http://127.0.0.1:9", "@photobot:example.org"), trust=_exclude)
        self.sent: list[tuple[RoomID, str]] = []

    def room_known(self, room_id: RoomID) -> bool:
        return True

    async def send_message(
        self, room_id: RoomID, content: dict[str, Any], txn_id: str, *, allow_unencrypted: bool = False
    ) -> EventID:
        if room_id == BROKEN:
            raise RuntimeError("dictionary changed size during iteration")
        self.sent.append((room_id, str(content["body"])))
        return EventID(f"$sent{len(self.sent)}")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    opened = await offline_app(tmp_path / "data")
    try:
        yield opened
    finally:
        await opened.close()


async def test_an_unexpected_send_failure_stays_with_its_reply_and_other_rooms_are_served(app: App) -> None:
    """A reply whose send fails unexpectedly waits in the outbox to be retried, the flush does not raise (it
    would end the sync loop), and another room's reply is sent."""
    outbox = app.patient.outbox
    async with app.database.transaction() as db:
        for room in (BROKEN, HEALTHY):
            await outbox.add(db, room, derive_txn_id(f"$ask-{room}", 0), "message", {"text": f"hello {room}"})
    gateway = SendBreaksInOneRoom()
    delivery = Delivery(outbox, gateway, app.sync.faults, app.status.metrics)

    await delivery.flush_all()

    assert gateway.sent == [(HEALTHY, f"hello {HEALTHY}")]
    [waiting] = await outbox.pending(BROKEN)
    assert waiting.attempts == 1
    assert await outbox.pending(HEALTHY) == []
