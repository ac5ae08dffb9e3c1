"""A bot on PostgreSQL + S3 keeps its state there: rows in its database, images as ciphertext in its bucket,
and nothing of its own in local files (nio's encryption store apart, which is nio's and stays local)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import NIO_STORE, POSTGRES_S3, BotFactory, PersonFactory
from tests.e2e.journey import answer, reach_photos, send_photo, stored_photos
from tests.unit.image_factory import make_jpeg

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("storage_backend", [POSTGRES_S3], indirect=True)]


async def test_a_bot_on_postgres_and_s3_keeps_rows_in_the_database_images_in_the_bucket_and_no_local_files(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    bot = await make_bot()
    assert bot.object_vault is not None
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot, keep=True)
    sent = make_jpeg(1200, 900)
    await send_photo(patient, room_id, sent, "Photo 1 received", filename="a.jpg", mimetype="image/jpeg")
    await answer(patient, room_id, "done", "reference")

    # The rows are in PostgreSQL (bot.query asks the bot's own database over TCP)...
    assert bot.query("SELECT current_setting('server_version_num')::int >= 160000") == [(True,)]
    assert bot.query("SELECT room_id, keep_in_record FROM submissions") == [(room_id, 1)]
    [(photo_id,)] = bot.query("SELECT photo_id FROM photos")
    assert bot.query("SELECT COUNT(*) FROM handled_events") != [(0,)]
    # ...the image is one object under the bot's prefix, its body ciphertext that opens to the photo...
    assert bot.vault_entries() == [f"{photo_id}.enc"]
    body = bot.object_vault.read(f"{photo_id}.enc")
    assert body.startswith(b"PBIM") and b"\xff\xd8\xff" not in body[:64]
    [stored] = stored_photos(bot)
    with Image.open(io.BytesIO(stored.data)) as image, Image.open(io.BytesIO(sent)) as original:
        assert image.size == original.size
    # ...and the data directory holds no database and no vault of the bot's own.
    local = sorted(
        str(path.relative_to(bot.data_dir))
        for path in bot.data_dir.rglob("*")
        if path.is_file() and NIO_STORE not in path.relative_to(bot.data_dir).parts
    )
    print(f"local files of a bot on {POSTGRES_S3}: {local}")
    assert not (bot.data_dir / "photobot.sqlite3").exists()
    assert bot.own_sqlite_files() == []
    assert not any((bot.data_dir / "vault").glob("*")), "no image file in a local vault folder"
    temp_dir = Path(bot.process.env["TMPDIR"])
    everything = [path for root in (bot.data_dir, temp_dir) for path in root.rglob("*") if path.is_file()]
    assert not [path for path in everything if body[5:69] in path.read_bytes()], "no local copy of the object"
