"""The `photos` table from the patient's side: a photo's row written when a conversation keeps it, tied to
its submission when the patient sends, deleted when the patient removes it before sending.

A row holds the image's wrapped key (never next to its vault file), size, keyed digest and format; the
patient's caption is sealed. Every statement runs in the caller's transaction. What clinicians read and
change of a submitted photo is in `storage.submissions`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.clock import iso
from bot.ids import RoomID
from bot.keyring import Sealer
from storage.sql import Connection


class PhotoRepository:
    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    async def upsert(
        self,
        db: Connection,
        photo_id: str,
        *,
        room_id: RoomID,
        conversation_id: str,
        wrapped_key: bytes,
        size: int,
        digest: str,
        mime: str,
        source_format: str,
        quality: tuple[str, ...],
        created_at: datetime,
        caption: str | None,
    ) -> None:
        """Write a kept photo's row; a replay of the same event (same id) overwrites its key, size, digest."""
        await db.execute(
            "INSERT INTO photos (photo_id, room_id, conversation_id, wrapped_key, size, digest, mime, source_format,"
            " quality, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (photo_id) DO UPDATE SET"
            " wrapped_key = excluded.wrapped_key, size = excluded.size, digest = excluded.digest",
            (
                photo_id,
                room_id,
                conversation_id,
                wrapped_key,
                size,
                digest,
                mime,
                source_format,
                ",".join(quality),
                iso(created_at),
            ),
        )
        await self._store_caption(db, photo_id, caption)

    async def _store_caption(self, db: Connection, photo_id: str, caption: str | None) -> None:
        """Seal a photo's caption into its row; nothing when there is none."""
        if caption:
            sealed = self._sealer.seal(caption.encode("utf-8"), context=f"photo-caption:{photo_id}")
            await db.execute("UPDATE photos SET caption = ? WHERE photo_id = ?", (sealed, photo_id))

    async def attach(self, db: Connection, submission_id: str, photo_ids: Iterable[str]) -> None:
        """The photos a patient sent become the submission's."""
        for photo_id in photo_ids:
            await db.execute(
                "UPDATE photos SET submission_id = ? WHERE photo_id = ?", (submission_id, photo_id)
            )

    async def delete(self, db: Connection, photo_id: str) -> None:
        """The row goes, its wrapped key with it (crypto-shredding; the vault file is destroyed after commit)."""
        await db.execute("DELETE FROM photos WHERE photo_id = ?", (photo_id,))
