"""A patient's photo as one thing: its encrypted file in the vault and its row in `photos`, owned together.

Storing is two steps because the conversation decides in between: `write_file` puts the cleaned image in
the vault (before the step, in the CPU pool), then `keep` writes its row in the step's transaction (only
if the step kept it). Removing a photo the patient took back (or the conversation dropped) is two steps
too: `drop` deletes the rows in the step's transaction and writes the deletion ledger (no restored backup
brings them back), then `destroy_files` removes the files after the commit and shreds the WAL. A crash
between the steps leaves a file with no row, which the start-up sweep removes (`Vault.sweep_orphans`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.clock import Clock
from bot.executor import CpuPool
from bot.ids import RoomID
from storage.deletion_ledger import DeletionLedger, LedgerKind
from storage.photos import PhotoRepository
from storage.sql import Connection, Database
from storage.vault import ImageVault, StoredImage


class PhotoStore:
    def __init__(
        self,
        *,
        vault: ImageVault,
        photos: PhotoRepository,
        ledger: DeletionLedger,
        database: Database,
        pool: CpuPool,
        clock: Clock,
    ) -> None:
        self._vault = vault
        self._photos = photos
        self._ledger = ledger
        self._database = database
        self._pool = pool
        self._clock = clock

    def write_file(
        self, photo_id: str, data: bytes, *, part_written: Callable[[], None] | None = None
    ) -> StoredImage:
        """The image's encrypted file (synchronous: run it in the CPU pool); `keep` then writes its row."""
        return self._vault.put(photo_id, data, part_written=part_written)

    async def keep(
        self,
        db: Connection,
        stored: StoredImage,
        *,
        room_id: RoomID,
        conversation_id: str,
        mime: str,
        source_format: str,
        quality: tuple[str, ...],
        created_at: datetime,
        caption: str | None,
    ) -> None:
        """The row of an image `write_file` stored, in the step's transaction."""
        await self._photos.upsert(
            db,
            stored.image_id,
            room_id=room_id,
            conversation_id=conversation_id,
            wrapped_key=stored.wrapped_key,
            size=stored.size,
            digest=stored.digest,
            mime=mime,
            source_format=source_format,
            quality=quality,
            created_at=created_at,
            caption=caption,
        )

    async def attach(self, db: Connection, submission_id: str, photo_ids: Sequence[str]) -> None:
        """The patient sent: their photos become the submission's."""
        await self._photos.attach(db, submission_id, photo_ids)

    async def drop(self, db: Connection, photo_ids: Sequence[str]) -> None:
        """Unsent photos the patient removed (or the conversation ended): their rows and keys go, in the
        step's transaction, and the deletion ledger lists them. Call `destroy_files` after the commit."""
        await self._ledger.record(db, LedgerKind.IMAGES_DESTROYED, self._clock.now(), image_ids=photo_ids)
        for photo_id in photo_ids:
            await self._photos.delete(db, photo_id)

    async def destroy_files(self, photo_ids: Sequence[str]) -> None:
        """After `drop` committed: the files go, and the WAL is truncated so the old rows do not linger."""
        for photo_id in photo_ids:
            await self._pool.run(self._vault.destroy, photo_id)
        if photo_ids:
            await self._database.shred_checkpoint()
