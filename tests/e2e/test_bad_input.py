"""Bad input against the real bot: each gets a clear reply, leaves the chat, and nothing is stored."""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

import nio
import pytest
from PIL import Image

from bot.ids import EventID, RoomID
from bot.keyring import Keyring, load_master_key_file
from bot.matrix.attachments import encrypt_attachment
from devtools.demo.people import Person
from handlers.photo_intake import photo_id_for
from tests.e2e.conftest import BotFactory, BotUnderTest, PersonFactory
from tests.e2e.journey import NHS_NUMBER, open_chat, reach_photos, stored_photos, vault_files
from tests.unit.image_factory import (
    Look,
    make_jpeg,
    make_png,
    make_scene,
    patch_jpeg_frame_size,
    png_claiming_size,
)

pytestmark = pytest.mark.e2e

ARABIC_INDIC = NHS_NUMBER.translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
FULL_WIDTH = NHS_NUMBER.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})


async def _expect(patient: Person, room_id: RoomID, action: Awaitable[EventID], needle: str) -> EventID:
    """Do `action` (which sends one event) and wait for the bot's reply containing `needle`."""
    event_id, _ = await _exchange(patient, room_id, action, needle)
    return event_id


async def _exchange(
    patient: Person, room_id: RoomID, action: Awaitable[EventID], needle: str
) -> tuple[EventID, str]:
    """Do `action` and wait for the bot's reply containing `needle`; the event sent and the whole reply."""
    before = len(patient.seen.get(room_id, []))
    event_id = await action
    reply = await patient.wait_for_text(room_id, needle, after=before)
    return event_id, reply.body


async def _upload(patient: Person, data: bytes, content_type: str = "application/octet-stream") -> str:
    response, _ = await patient.client.upload(lambda *_: data, content_type=content_type, filesize=len(data))
    assert isinstance(response, nio.UploadResponse)
    return str(response.content_uri)


async def _send_encrypted_media(
    patient: Person,
    room_id: RoomID,
    data: bytes,
    *,
    msgtype: str,
    body: str,
    info: dict[str, Any],
    **extra: Any,
) -> tuple[EventID, str]:
    """An encrypted attachment sent as `msgtype` (m.video, m.audio...), as a chat app does; (event, mxc)."""
    upload = encrypt_attachment(data)
    url = await _upload(patient, upload.ciphertext)
    content = {"msgtype": msgtype, "body": body, "info": info, "file": upload.file_content(url), **extra}
    return await patient.send_content(room_id, content), url


async def _send_undecryptable(patient: Person, room_id: RoomID) -> None:
    """An m.room.encrypted event from a Megolm session the bot never received a key for."""
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEpABfakeciphertextthatnobodycandecrypt0123456789abcdef",
        "device_id": patient.client.device_id,
        "sender_key": patient.client.olm.account.identity_keys["curve25519"],  # type: ignore[union-attr]
        "session_id": "unknownsession",
    }
    txn = secrets.token_hex(8)
    response = await patient.client.send(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.encrypted/{txn}",
        json.dumps(content),
        headers={
            "Authorization": f"Bearer {patient.client.access_token}",
            "Content-Type": "application/json",
        },
    )
    async with response:
        assert response.status == 200


async def _uploads_deleted(patient: Person, urls: list[str], timeout: float = 30.0) -> bool:
    """Whether every upload is gone from the homeserver (404) within `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            statuses = [await patient.media_status(url) for url in urls]
            if all(status == 404 for status in statuses):
                return True
            await asyncio.sleep(0.5)


def _nothing_stored(bot: BotUnderTest) -> bool:
    return bot.query("SELECT COUNT(*) FROM photos") == [(0,)] and vault_files(bot) == []


def _tiff() -> bytes:
    out = io.BytesIO()
    make_scene(1200, 900).save(out, format="TIFF")
    return out.getvalue()


async def test_bad_nhs_numbers_personal_details_and_early_photos_are_explained_and_removed(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """At the NHS number step, mistyped numbers, personal details and an early photo each get a clear reply."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)

    early_photo = await _expect(
        patient,
        room_id,
        patient.send_photo(room_id, make_jpeg(1200, 900), filename="early.jpg", mimetype="image/jpeg"),
        "Please don't send photos yet",
    )
    born, reply = await _exchange(
        patient, room_id, patient.say(room_id, "I was born on 02/03/1961"), "I only need your NHS number"
    )
    assert "I've removed your message because it looked like it contained a date of birth" in reply
    lives, reply = await _exchange(
        patient, room_id, patient.say(room_id, "I live at LS1 4AP"), "I only need your NHS number"
    )
    assert "I've removed your message because it looked like it contained" in reply and "postcode" in reply
    await patient.wait_until(lambda: {early_photo, born, lives} <= patient.redacted)
    assert await _uploads_deleted(patient, patient.uploads[early_photo])
    assert _nothing_stored(bot)

    attempts = [
        await _expect(patient, room_id, patient.say(room_id, "999 765 4324"), "doesn't quite add up"),
        await _expect(patient, room_id, patient.say(room_id, "000 000 0000"), "isn't a number the NHS gives"),
        await _expect(patient, room_id, patient.say(room_id, "999 765 432O"), "made only of digits"),
    ]
    _, reply = await _exchange(patient, room_id, patient.say(room_id, "ABC DEF GHIJ"), "didn't understand")
    assert "NHS number" in reply
    for digits in (ARABIC_INDIC, FULL_WIDTH):
        attempt, reply = await _exchange(
            patient, room_id, patient.say(room_id, digits), "I've read the NHS number as"
        )
        assert "999 765 4323" in reply, "digits of any script are read back as ASCII"
        attempts.append(attempt)
        if digits == ARABIC_INDIC:
            await _expect(patient, room_id, patient.say(room_id, "no"), "type the NHS number again")
    await _expect(patient, room_id, patient.say(room_id, "1"), "intimate area")
    # Every message that carried a number, mistyped or not, leaves the chat once the number is confirmed.
    await patient.wait_until(lambda: set(attempts) <= patient.redacted)
    assert _nothing_stored(bot)


async def test_messages_that_are_not_photos_are_refused_and_removed_at_the_photo_step(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A video, voice note, sticker, location, unencrypted image or unreadable message is refused clearly."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)

    video, video_url = await _send_encrypted_media(
        patient,
        room_id,
        os.urandom(8192),
        msgtype="m.video",
        body="clip.mp4",
        info={"mimetype": "video/mp4", "size": 8192},
    )
    await patient.wait_for_text(room_id, "I can't use a video here")
    voice, voice_url = await _send_encrypted_media(
        patient,
        room_id,
        os.urandom(4096),
        msgtype="m.audio",
        body="Voice message.ogg",
        info={"mimetype": "audio/ogg", "size": 4096, "duration": 3000},
        **{"org.matrix.msc3245.voice": {}},
    )
    await patient.wait_for_text(room_id, "I can't use a voice message here")
    sticker_url = await _upload(patient, make_png(64, 64), "image/png")
    sticker = await _expect(
        patient,
        room_id,
        patient.send_content(
            room_id,
            {"body": "waving", "url": sticker_url, "info": {"mimetype": "image/png", "w": 64, "h": 64}},
            event_type="m.sticker",
        ),
        "I can't use a sticker here",
    )
    location = await _expect(
        patient,
        room_id,
        patient.send_content(
            room_id, {"msgtype": "m.location", "body": "My location", "geo_uri": "geo:51.5074,-0.1278"}
        ),
        "I can't use a location here",
    )
    plain = make_jpeg(1200, 900)
    plain_url = await _upload(patient, plain, "image/jpeg")
    unencrypted = await _expect(
        patient,
        room_id,
        patient.send_content(
            room_id,
            {
                "msgtype": "m.image",
                "body": "x.jpg",
                "url": plain_url,
                "info": {"mimetype": "image/jpeg", "size": len(plain), "w": 1200, "h": 900},
            },
        ),
        "wasn't sent securely",
    )
    before = len(patient.seen.get(room_id, []))
    await _send_undecryptable(patient, room_id)
    await patient.wait_for_text(room_id, "I couldn't open your last message", after=before)

    await patient.wait_until(lambda: {video, voice, sticker, location, unencrypted} <= patient.redacted)
    assert await _uploads_deleted(patient, [sticker_url]), "a sticker is an unencrypted upload: purged too"
    assert await _uploads_deleted(patient, [video_url, voice_url, plain_url])
    assert _nothing_stored(bot)
    assert bot.query("SELECT COUNT(*) FROM submissions") == [(0,)]


async def test_files_that_are_not_usable_photos_get_a_specific_reply_and_the_limit_holds(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Each unusable file gets its own reason; a blurred photo can be kept; a photo over the limit is refused."""
    bot = await make_bot(max_photos="2")
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    jpeg = make_jpeg(1200, 900)
    bad_files: list[tuple[bytes, str, str, bool, str]] = [
        # (data, filename, declared mimetype, sent as a file, what the reply says)
        (
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
            "scan.jpg",
            "image/jpeg",
            False,
            "looks like a PDF file, not a photo",
        ),
        (_tiff(), "photo.tiff", "image/tiff", True, "looks like a TIFF file, not a photo"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle r="40"/></svg>',
            "drawing.svg",
            "image/svg+xml",
            True,
            "looks like an SVG file, not a photo",
        ),
        (
            b"<!DOCTYPE html>\n<html><head><title>Photo</title></head><body><p>hi</p></body></html>",
            "photo.html",
            "text/html",
            True,
            "looks like an HTML file, not a photo",
        ),
        (b"", "empty.jpg", "image/jpeg", False, "arrived empty"),
        (os.urandom(4096), "noise.jpg", "image/jpeg", False, "doesn't look like a photo I can open"),
        (jpeg[: len(jpeg) * 6 // 10], "cut.jpg", "image/jpeg", False, "didn't arrive in full"),
        (png_claiming_size(50_000, 50_000), "huge.png", "image/png", False, "too large for me to open"),
        (
            patch_jpeg_frame_size(jpeg, 12_000, 9_000),
            "huge.jpg",
            "image/jpeg",
            False,
            "too large for me to open",
        ),
    ]
    refused: list[EventID] = []
    for data, filename, mimetype, as_file, needle in bad_files:
        refused.append(
            await _expect(
                patient,
                room_id,
                patient.send_photo(room_id, data, filename=filename, mimetype=mimetype, as_file=as_file),
                needle,
            )
        )
    await patient.wait_until(lambda: set(refused) <= patient.redacted)
    assert await _uploads_deleted(patient, [url for event_id in refused for url in patient.uploads[event_id]])
    assert _nothing_stored(bot)

    blurred = await _expect(
        patient,
        room_id,
        patient.send_photo(
            room_id, make_jpeg(1600, 1200, look=Look.BLURRED), filename="b.jpg", mimetype="image/jpeg"
        ),
        "it looks a little blurred. Could you take it again?",
    )
    await _expect(patient, room_id, patient.say(room_id, "KEEP"), "OK, I'll use photo 1 as it is.")
    good = await _expect(
        patient,
        room_id,
        patient.send_photo(room_id, make_jpeg(1600, 1200), filename="g.jpg", mimetype="image/jpeg"),
        "Photo 2 received",
    )
    over = await _expect(
        patient,
        room_id,
        patient.send_photo(room_id, make_jpeg(1400, 1050), filename="o.jpg", mimetype="image/jpeg"),
        "You've already sent the most photos I can take (2)",
    )
    await patient.wait_until(lambda: {blurred, good, over} <= patient.redacted)
    assert await _uploads_deleted(patient, patient.uploads[over])
    keyring = Keyring(load_master_key_file(bot.data_dir / "master.key"))
    assert {photo.photo_id for photo in stored_photos(bot)} == {
        photo_id_for(blurred, keyring),
        photo_id_for(good, keyring),
    }
    assert len(vault_files(bot)) == 2
    with Image.open(io.BytesIO(stored_photos(bot)[0].data)) as image:
        assert image.size == (1600, 1200)
