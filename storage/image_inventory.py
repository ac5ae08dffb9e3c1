"""What the vault should hold, as the database says: read at start-up and by `photobot check`.

The start-up clean-up removes vault files no row names (a crash between writing a file and committing its
row); `photobot check` opens every image a row still names. Reads only; the rows are written by their
owners (`storage.photos`, `storage.submissions`).
"""

from __future__ import annotations

from storage.sql import Database


class ImageInventory:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def live_image_ids(self) -> set[str]:
        """Every image id a row still names: originals not destroyed, and every record image."""
        async with self._db.connection.execute(
            "SELECT photo_id, record_image_id, original_destroyed_at FROM photos"
        ) as cursor:
            rows = await cursor.fetchall()
        known = {str(row["photo_id"]) for row in rows if row["original_destroyed_at"] is None}
        known |= {str(row["record_image_id"]) for row in rows if row["record_image_id"]}
        return known

    async def kept_submissions(self) -> list[tuple[str, str]]:
        """(submission id, reference) of every submission not deleted, oldest first."""
        async with self._db.connection.execute(
            "SELECT submission_id, reference FROM submissions WHERE status != 'deleted' ORDER BY created_at"
        ) as cursor:
            return [(str(row[0]), str(row[1])) for row in await cursor.fetchall()]

    async def unsent_photo_keys(self) -> list[tuple[str, bytes]]:
        """(photo id, wrapped key) of the photos of conversations not yet sent, oldest first."""
        async with self._db.connection.execute(
            "SELECT photo_id, wrapped_key FROM photos WHERE submission_id IS NULL ORDER BY created_at"
        ) as cursor:
            return [(str(row[0]), bytes(row[1])) for row in await cursor.fetchall()]
