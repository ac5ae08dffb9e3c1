"""The `key_rotations` table, and the photo key columns a master-key rotation re-wraps (`bot.key_rotation`).

A rotation is one row from its start to its end (`finished_at`); at most one is unfinished, and while it is
the bot refuses to start. Each image key re-wrapped is one transaction with the rotation's progress counter,
and it only replaces the value it read (a second run finds nothing left to do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.clock import iso
from storage.sql import Database, holds_bytes

KeyColumn = Literal["wrapped_key", "record_wrapped_key"]
DigestColumn = Literal["digest", "record_digest"]


@dataclass(frozen=True)
class Rotation:
    rotation_id: int
    old_key_id: str
    new_key_id: str
    phase: str


@dataclass(frozen=True)
class WrappedImageKey:
    """One image's wrapped key as stored: the original's (`wrapped_key`) or its record image's."""

    column: KeyColumn
    photo_id: str
    image_id: str
    wrapped: bytes


@dataclass(frozen=True)
class StoredImage:
    """An image a row names, with the keyed digest stored for it."""

    digest_column: DigestColumn
    photo_id: str
    image_id: str
    wrapped: bytes
    digest: str | None


class KeyRotations:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def unfinished(self) -> Rotation | None:
        async with self._db.connection.execute(
            "SELECT rotation_id, old_key_id, new_key_id, phase FROM key_rotations WHERE finished_at IS NULL"
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return Rotation(
            int(row["rotation_id"]), str(row["old_key_id"]), str(row["new_key_id"]), str(row["phase"])
        )

    async def record(self, old_key_id: str, new_key_id: str, now: datetime) -> Rotation:
        async with self._db.transaction() as db:
            cursor = await db.execute(
                "INSERT INTO key_rotations (old_key_id, new_key_id, phase, started_at, updated_at)"
                " VALUES (?, ?, 're-wrapping', ?, ?) RETURNING rotation_id",
                (old_key_id, new_key_id, iso(now), iso(now)),
            )
            row = await cursor.fetchone()
        assert row is not None
        rotation_id = int(row[0])
        return Rotation(rotation_id, old_key_id, new_key_id, "re-wrapping")

    async def set_phase(self, rotation: Rotation, phase: str, now: datetime) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE key_rotations SET phase = ?, updated_at = ? WHERE rotation_id = ?",
                (phase, iso(now), rotation.rotation_id),
            )

    async def finish(self, rotation: Rotation, now: datetime) -> None:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE key_rotations SET phase = 'finished', updated_at = ?, finished_at = ?"
                " WHERE rotation_id = ?",
                (iso(now), iso(now), rotation.rotation_id),
            )

    async def image_keys_not_under(self, prefix: bytes) -> list[WrappedImageKey]:
        """Every stored image key whose wrapping does not start with `prefix` (the new master key's)."""
        dialect = self._db.dialect
        async with self._db.connection.execute(
            "SELECT 'wrapped_key' AS key_column, photo_id, photo_id AS image_id, wrapped_key AS wrapped"  # noqa: S608
            f" FROM photos WHERE original_destroyed_at IS NULL AND {holds_bytes('wrapped_key', dialect)}"
            " AND length(wrapped_key) > 0 AND substr(wrapped_key, 1, :n) != :prefix"
            " UNION ALL SELECT 'record_wrapped_key', photo_id, record_image_id, record_wrapped_key FROM photos"
            f" WHERE record_image_id IS NOT NULL AND {holds_bytes('record_wrapped_key', dialect)}"
            " AND length(record_wrapped_key) > 0 AND substr(record_wrapped_key, 1, :n) != :prefix"
            " ORDER BY photo_id, key_column",
            {"n": len(prefix), "prefix": prefix},
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            WrappedImageKey(
                "wrapped_key" if row["key_column"] == "wrapped_key" else "record_wrapped_key",
                str(row["photo_id"]),
                str(row["image_id"]),
                bytes(row["wrapped"]),
            )
            for row in rows
        ]

    async def replace_image_key(
        self, rotation: Rotation, key: WrappedImageKey, rewrapped: bytes, now: datetime
    ) -> None:
        """The re-wrapped key in place of the one read, and the rotation's counter, in one transaction."""
        async with self._db.transaction() as db:
            await db.execute(
                f"UPDATE photos SET {key.column} = ? WHERE photo_id = ? AND {key.column} = ?",  # noqa: S608
                (rewrapped, key.photo_id, key.wrapped),  # the column is one of two fixed names
            )
            await db.execute(
                "UPDATE key_rotations SET images_rewrapped = images_rewrapped + 1, updated_at = ?"
                " WHERE rotation_id = ?",
                (iso(now), rotation.rotation_id),
            )

    async def stored_images(self) -> list[StoredImage]:
        """Every image a row names (originals not destroyed, record images), in photo order."""
        async with self._db.connection.execute(
            "SELECT photo_id, wrapped_key, digest, original_destroyed_at, record_image_id,"
            " record_wrapped_key, record_digest FROM photos ORDER BY photo_id"
        ) as cursor:
            rows = await cursor.fetchall()
        images: list[StoredImage] = []
        for row in rows:
            photo_id = str(row["photo_id"])
            if row["original_destroyed_at"] is None and row["wrapped_key"]:
                images.append(
                    StoredImage("digest", photo_id, photo_id, bytes(row["wrapped_key"]), row["digest"])
                )
            if row["record_image_id"]:
                wrapped = bytes(row["record_wrapped_key"] or b"")
                record = StoredImage(
                    "record_digest", photo_id, str(row["record_image_id"]), wrapped, row["record_digest"]
                )
                images.append(record)
        return images

    async def replace_digests(self, digests: list[tuple[DigestColumn, str, str]]) -> None:
        """(column, digest, photo id): the keyed digests recomputed under the new key, in one transaction."""
        if not digests:
            return
        async with self._db.transaction() as db:
            for column, digest, photo_id in digests:
                await db.execute(
                    f"UPDATE photos SET {column} = ? WHERE photo_id = ?",  # noqa: S608 - two fixed names
                    (digest, photo_id),
                )
