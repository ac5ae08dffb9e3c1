"""Crypto-shredding on PostgreSQL: after a photo's key is destroyed and `shred_checkpoint` has run, the key's
bytes are gone from the table's files on the server's disk (not merely invisible to queries).

A deleted or updated row stays in its page as a dead tuple; the test reads the heap files themselves, as
someone holding a copy of the data directory would. (The WAL still holds them until its segments are
recycled: see docs/operator.md, "The database in PostgreSQL".)
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from bot.ids import RoomID
from bot.keyring import Keyring, MasterKey, Sealer
from devtools.postgres import PostgresServer
from storage.photos import PhotoRepository
from storage.postgres import PostgresDatabase
from storage.submissions import SubmissionRepository

PHOTOS = 60
NOW = datetime(2031, 3, 4, 9, 30, tzinfo=UTC)
ROOM = RoomID("!patient:practice.example")


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    database = await PostgresDatabase.open(postgres_url)
    try:
        yield database
    finally:
        await database.close()


def _heap_bytes(server: PostgresServer, url: str) -> bytes:
    """Every file of the photos table (its heap, as flushed by a checkpoint) on the server's disk."""
    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute("CHECKPOINT")
        row = raw.execute("SELECT pg_relation_filepath('photos')").fetchone()
    assert row is not None
    first = server.data_dir / str(row[0])
    return b"".join(path.read_bytes() for path in sorted(first.parent.glob(first.name + "*")))


async def test_destroyed_image_keys_leave_the_table_files(
    database: PostgresDatabase, postgres_server: PostgresServer, postgres_url: str
) -> None:
    sealer = Sealer(Keyring(MasterKey.generate()))
    photos = PhotoRepository(sealer)
    submissions = SubmissionRepository(database, sealer)
    keys = {f"photo-{n:03d}": secrets.token_bytes(60) for n in range(PHOTOS)}
    async with database.transaction() as db:
        await db.execute(
            "INSERT INTO rooms (room_id, kind, joined_at) VALUES (?, 'patient', ?)", (ROOM, NOW.isoformat())
        )
        for photo_id, key in keys.items():
            await photos.upsert(
                db,
                photo_id,
                room_id=ROOM,
                conversation_id="conversation-1",
                wrapped_key=key,
                size=1000,
                digest="d",
                mime="image/jpeg",
                source_format="jpeg",
                quality=(),
                created_at=NOW,
                caption=None,
            )
    assert sum(key in _heap_bytes(postgres_server, postgres_url) for key in keys.values()) == PHOTOS

    # Every other photo destroyed, half by deleting its row, half by blanking its original's key; the
    # others live on, interleaved in the same pages.
    destroyed = list(keys)[::2]
    async with database.transaction() as db:
        for n, photo_id in enumerate(destroyed):
            if n % 2:
                await photos.delete(db, photo_id)
            else:
                await submissions.original_destroyed(db, photo_id, NOW)
    await database.shred_checkpoint()

    heap = _heap_bytes(postgres_server, postgres_url)
    lingering = [photo_id for photo_id in destroyed if keys[photo_id] in heap]
    assert lingering == [], f"{len(lingering)} destroyed keys are still in the table's files"
    kept = [photo_id for photo_id in keys if photo_id not in destroyed]
    assert all(keys[photo_id] in heap for photo_id in kept), "a live photo's key was lost"
