"""Media links from a hostile or careless patient, against the real bot, homeserver and encrypted clients:
the bot deletes only what the patient uploaded for that message, and says honestly what it cannot fetch."""

from __future__ import annotations

import asyncio
from typing import Any

import nio
import pytest

from bot.ids import RoomID
from bot.matrix.attachments import encrypt_attachment
from devtools.demo.people import Person
from devtools.local_homeserver import RegisteredUser
from tests.e2e.conftest import BotFactory, BotUnderTest, PersonFactory
from tests.e2e.journey import open_chat, reach_photos, stored_photos
from tests.unit.image_factory import make_jpeg, make_png

pytestmark = pytest.mark.e2e


async def _upload(person: Person, data: bytes, content_type: str) -> str:
    response, _ = await person.client.upload(lambda *_: data, content_type=content_type, filesize=len(data))
    assert isinstance(response, nio.UploadResponse)
    return str(response.content_uri)


async def _encrypted_photo(person: Person, data: bytes) -> dict[str, Any]:
    """A photo `person` uploaded encrypted, as the m.image content a chat app sends (and forwards)."""
    upload = encrypt_attachment(data)
    url = await _upload(person, upload.ciphertext, "application/octet-stream")
    return {
        "msgtype": "m.image",
        "body": "IMG_0420.jpg",
        "info": {"mimetype": "image/jpeg", "size": len(data)},
        "file": upload.file_content(url),
    }


async def _removed(patient: Person, room_id: RoomID, content: dict[str, Any], **kwargs: str) -> None:
    """Send `content` and wait until the bot has removed it from the chat (it always answers too)."""
    event_id = await patient.send_content(room_id, content, **kwargs)
    await patient.wait_until(lambda: event_id in patient.redacted)


async def _admin_delete(admin: RegisteredUser, person: Person, url: str) -> None:
    """Delete an upload as the homeserver's admin (what an operator would do), asserting it worked."""
    server, _, media_id = url.removeprefix("mxc://").partition("/")
    response = await person.client.send(
        "DELETE",
        f"/_synapse/admin/v1/media/{server}/{media_id}",
        headers={"Authorization": f"Bearer {admin.access_token}"},
    )
    async with response:
        assert response.status == 200


async def _ledger_settled(bot: BotUnderTest, rows: int) -> list[str]:
    """Wait until the media ledger lists `rows` uploads and none waits; their statuses, in order."""
    async with asyncio.timeout(30):
        while True:
            statuses = [str(row[0]) for row in bot.query("SELECT status FROM media_ledger ORDER BY id")]
            if len(statuses) >= rows and "pending" not in statuses:
                return statuses
            await asyncio.sleep(0.3)


async def test_links_to_other_peoples_uploads_delete_nothing(
    make_bot: BotFactory, make_person: PersonFactory, homeserver_admin: RegisteredUser
) -> None:
    """A sticker of someone's avatar, a photo message pointing at someone's upload (before and at the photo
    step) and a forwarded relative's photo leave those uploads on the homeserver; the patient's own goes."""
    bot = await make_bot()
    patient = await make_person("patient")
    relative = await make_person("relative")
    avatar_url = await _upload(relative, make_png(64, 64), "image/png")
    assert isinstance(await relative.client.set_avatar(avatar_url), nio.ProfileSetAvatarResponse)
    early = await _encrypted_photo(relative, make_jpeg(1280, 960))  # a family-chat photo, sent too early
    forwarded = await _encrypted_photo(relative, make_jpeg(1600, 1200))  # forwarded at the photo step

    # Before the photo step: removed from the chat, and the upload it points at checked, not deleted.
    early_chat = await open_chat(patient, bot)
    await _removed(patient, early_chat, early)

    room_id = await reach_photos(patient, bot)
    sticker = {"body": "waving", "url": avatar_url, "info": {"mimetype": "image/png", "w": 64, "h": 64}}
    await _removed(patient, room_id, sticker, event_type="m.sticker")
    await _removed(patient, room_id, forwarded)
    await patient.send_photo(room_id, make_jpeg(1632, 1224), filename="rash.jpg", mimetype="image/jpeg")
    await patient.wait_until(lambda: set(patient.uploads) <= patient.redacted)
    assert len(stored_photos(bot)) == 2, "the forwarded photo and the patient's own were both taken"

    statuses = await _ledger_settled(bot, rows=4)
    assert statuses == ["not the patient's upload"] * 3 + ["deleted"], statuses
    others = [avatar_url, str(early["file"]["url"]), str(forwarded["file"]["url"])]
    assert [await relative.media_status(url) for url in others] == [200, 200, 200]
    own_urls = next(urls for urls in patient.uploads.values())
    assert [await patient.media_status(url) for url in own_urls] == [404]
    # The avatar is an unencrypted image the session's leak scan would (rightly) flag: gone once checked.
    await _admin_delete(homeserver_admin, relative, avatar_url)


async def test_attachments_that_cannot_be_fetched_get_an_honest_reply(
    make_bot: BotFactory, make_person: PersonFactory, homeserver_admin: RegisteredUser
) -> None:
    """A photo on another server, a link that is not a Matrix upload, and an upload already deleted each get
    a specific reply and leave the chat; nothing waits for deletion for ever, no error is claimed, and
    `photobot check` reports no upload problem, counting the remote upload as not deletable by this practice."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)

    remote = await _encrypted_photo(patient, make_jpeg(1600, 1200))
    remote["file"]["url"] = "mxc://elsewhere.invalid/AbCdEfGhIjKlMnOp"
    remote_event = await patient.send_content(room_id, remote)
    await patient.wait_for_text(room_id, "another server")

    web_link = await _encrypted_photo(patient, make_jpeg(1600, 1200))
    web_link["file"]["url"] = "https://photos.example.com/IMG_0420.jpg"
    web_event = await patient.send_content(room_id, web_link)
    await patient.wait_for_text(room_id, "outside this chat")

    deleted = await _encrypted_photo(patient, make_jpeg(1600, 1200))
    await _admin_delete(homeserver_admin, patient, str(deleted["file"]["url"]))
    deleted_event = await patient.send_content(room_id, deleted)
    await patient.wait_for_text(room_id, "already been deleted")

    await patient.wait_until(lambda: {remote_event, web_event, deleted_event} <= patient.redacted)
    assert not any("something went wrong" in text.lower() for text in patient.texts(room_id))
    statuses = await _ledger_settled(bot, rows=2)
    assert sorted(statuses) == ["already gone", "on another server"], statuses
    assert bot.query("SELECT COUNT(*) FROM photos") == [(0,)]
    _, output = await bot.process.command("check")  # this bot has no clinician room: that is a problem
    problems = [line for line in output.splitlines() if line.startswith("problem:")]
    assert not [line for line in problems if "upload" in line or "delet" in line], output
    assert "1 upload(s) sent from other servers cannot be deleted by this practice" in output
