"""Each patient room's conversation: its state in clear (to find expired ones), its data sealed."""

from __future__ import annotations

from typing import Any

from bot.ids import RoomID
from bot.keyring import Sealer
from storage.sql import Connection, Database


class ConversationRepository:
    def __init__(self, database: Database, sealer: Sealer) -> None:
        self._db = database
        self._sealer = sealer

    async def load(self, room_id: RoomID) -> dict[str, Any] | None:
        async with self._db.connection.execute(
            "SELECT data FROM conversations WHERE room_id = ?", (room_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        value = self._sealer.open_json(row["data"], context=f"conversation:{room_id}")
        if not isinstance(value, dict):
            raise ValueError("a stored conversation is not an object")
        return value

    async def save(
        self,
        db: Connection,
        room_id: RoomID,
        state: str,
        data: dict[str, Any],
        last_activity_at: str,
    ) -> None:
        await db.execute(
            "INSERT INTO conversations (room_id, state, data, last_activity_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (room_id) DO UPDATE SET state = excluded.state, data = excluded.data,"
            " last_activity_at = excluded.last_activity_at",
            (
                room_id,
                state,
                self._sealer.seal_json(data, context=f"conversation:{room_id}"),
                last_activity_at,
            ),
        )

    async def rooms_in_states(self, states: list[str]) -> list[tuple[RoomID, str]]:
        marks = ",".join("?" for _ in states)
        async with self._db.connection.execute(
            f"SELECT room_id, last_activity_at FROM conversations WHERE state IN ({marks})",  # noqa: S608 (placeholders only)
            states,
        ) as cursor:
            return [(RoomID(row["room_id"]), str(row["last_activity_at"])) for row in await cursor.fetchall()]
