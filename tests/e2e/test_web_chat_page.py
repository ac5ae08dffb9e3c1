"""The practice's web chat (issue 18) in Debian's headless Chromium on a phone-sized screen, against the real
bot and the suite's real Synapse: a patient with no app follows a link and sends two photos, one HEIC."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from PIL import Image
from playwright.async_api import Browser, FilePayload, Page, ViewportSize, async_playwright, expect

from bot.ids import RoomID, UserID
from devtools.local_homeserver import LocalHomeserver, RegisteredUser, pick_free_port
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import NHS_NUMBER
from tests.e2e.web_chat_stand_in import STATIC, WebChatApi
from tests.e2e.workspace import command, images, open_practice
from tests.unit.image_factory import make_heic, make_jpeg

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes say: no background networking, no component updates, no sync, no first-run UI.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = ViewportSize(width=360, height=740)
GPS_IFD = 0x8825
CONTACT = "Please phone Riverside Surgery on 01632 960000."


def build_page() -> None:
    """The page as a practice gets it: `npm ci` from the lock file, then the build into bot/web_chat/static."""
    assert shutil.which("npm"), "this test needs Node.js and npm to build the web chat"
    if not (WEB / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=300)
    subprocess.run(["npm", "run", "build", "--silent"], cwd=WEB, check=True, timeout=120)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "this test needs Debian's chromium (apt-get install chromium)"
    build_page()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on what the page shows now (injected over the debugger
    protocol, which the page's Content-Security-Policy does not govern)."""
    await page.evaluate((WEB / "node_modules" / "axe-core" / "axe.min.js").read_text())
    results: dict[str, Any] = await page.evaluate("axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in results["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


async def transfer_bytes(page: Page) -> int:
    """Bytes of the page's own files the browser fetched (document, scripts, style, the crypto wasm)."""
    return int(
        await page.evaluate(
            """() => performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
                .filter((entry) => entry.name.startsWith(location.origin))
                .reduce((sum, entry) => sum + entry.encodedBodySize, 0)"""
        )
    )


async def bot_says(page: Page, text: str, timeout: float = 60_000) -> None:
    await expect(page.locator("#messages li.bot", has_text=text).last).to_be_visible(timeout=timeout)


async def reply_text(page: Page, text: str, expect_text: str) -> None:
    """Type an answer and send it."""
    await page.fill("#message-input", text)
    await page.click("#send-button")
    await bot_says(page, expect_text)


async def tap(page: Page, label: str, expect_text: str) -> None:
    """Answer with the button the bot's choices hint offers."""
    await page.locator("#choices button", has_text=label).first.click()
    await bot_says(page, expect_text)


async def stored_anything(page: Page) -> dict[str, int]:
    return dict(
        await page.evaluate(
            """async () => ({local: localStorage.length, session: sessionStorage.length,
                            databases: (await indexedDB.databases()).length})"""
        )
    )


async def test_a_patient_with_no_app_sends_two_photos_from_a_request_link(
    make_bot: BotFactory, make_person: PersonFactory, browser: Browser
) -> None:
    """From a clinician's `!request link`, a patient's phone browser registers, answers (buttons where the bot
    offers them), survives a reload, sends a JPEG and a HEIC photo and gets a reference; the clinician views
    both without metadata and asks for consent through the same chat; the link opened on another phone is
    refused as used; once the clinician deletes the submission the page is emptied at once and the link
    refused; axe and the page's CSP find nothing."""
    port = pick_free_port()
    practice = await open_practice(
        make_bot,
        make_person,
        web_chat_port=str(port),
        web_chat_url=f"http://127.0.0.1:{port}/",
        web_chat_contact=CONTACT,
    )
    clinician, room = practice.clinician, practice.clinician_room
    reply = await command(
        clinician, room, "!request link the rash on your left forearm -- with a coin", "#t="
    )
    match = re.search(r"(http://127\.0\.0\.1:\d+/#t=[A-Za-z0-9_-]+)", reply)
    assert match is not None
    link = match.group(1)

    context = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = await context.new_page()
    refused: list[str] = []  # what the page's Content-Security-Policy blocked: nothing, it needs no exception
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    started = time.monotonic()
    await page.goto(link)
    await bot_says(page, "left forearm", timeout=90_000)
    first_message_s = time.monotonic() - started
    size = await transfer_bytes(page)
    assert await serious_accessibility_violations(page) == []
    assert (
        await page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    )  # no sideways scroll

    await reply_text(page, NHS_NUMBER, "999 765 4323")
    await page.reload()  # the session and its keys survive a reload mid-journey
    await bot_says(page, "999 765 4323")
    await tap(page, "1: mine", "intimate area")
    await tap(page, "No", "DONE")
    await page.set_input_files(
        "#photo-input",
        files=[
            FilePayload(name="arm.jpg", mimeType="image/jpeg", buffer=make_jpeg(1400, 1000, gps=True)),
            FilePayload(name="IMG_0001.HEIC", mimeType="image/heic", buffer=make_heic(1200, 900, gps=True)),
        ],
    )
    await bot_says(page, "Photo 2 received")
    await tap(page, "Done: send my photos", "reference")
    done = await page.locator("#messages li.bot", has_text="reference").last.inner_text()
    reference = done.split("reference is ")[1].split(".")[0].strip()
    assert await serious_accessibility_violations(page) == []

    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {reference}", "Showing 2 photo")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 2)
    for seen in images(clinician, room, before):
        shown = Image.open(io.BytesIO(await clinician.download_image(seen)))
        assert GPS_IFD not in shown.getexif()

    await command(clinician, room, f"!consent {reference} second-opinion", "I've asked the patient")
    await bot_says(page, "second opinion")  # the practice reaches the patient through the same page
    await tap(page, "Yes", "Who is answering")
    await tap(page, "1: the photos are of me", "you agree")
    await clinician.wait_for_text(room, "Consent to second-opinion")

    # The link forwarded, or opened on a second phone: it works on one phone only.
    elsewhere = await browser.new_context(viewport=PHONE, is_mobile=True)
    other_page = await elsewhere.new_page()
    await other_page.goto(link)
    await expect(other_page.locator("#message-title")).to_have_text("This link has already been used")
    await expect(other_page.locator("#message-contact")).to_have_text(CONTACT)
    await elsewhere.close()
    await bot_says(page, "you agree")  # the patient's own phone is still in its chat

    await command(clinician, room, f"!delete {reference} test of the web chat", "Reply yes")
    await command(clinician, room, "yes", "Receipt")
    await expect(page.locator("#message-title")).to_have_text("This chat has ended", timeout=30_000)
    await expect(page.locator("#message-contact")).to_have_text(CONTACT)
    assert await stored_anything(page) == {"local": 0, "session": 0, "databases": 0}
    await page.goto("about:blank")
    await page.goto(link)
    await expect(page.locator("#message-title")).to_have_text("This chat has ended")
    assert refused == []
    print(
        json.dumps(
            {
                "web_chat_transfer_bytes": size,
                "built_bytes": sum(
                    f.stat().st_size for f in STATIC.rglob("*") if f.is_file() and f.suffix != ".gz"
                ),
                "time_to_first_message_s": round(first_message_s, 2),
            }
        )
    )
    await context.close()


async def test_a_poster_visitor_starts_a_chat_with_one_tap_and_bad_or_busy_links_are_refused_kindly(
    make_bot: BotFactory, make_person: PersonFactory, browser: Browser
) -> None:
    """From the poster's plain address a patient taps Start, gets the greeting and comes back to the same
    chat on a second visit; a garbage link, an expired one, and Start once the address has used its tokens,
    show the practice's contact sentence; every screen passes axe."""
    port = pick_free_port()
    practice = await open_practice(
        make_bot,
        make_person,
        web_chat_port=str(port),
        web_chat_url=f"http://127.0.0.1:{port}/",
        web_chat_contact=CONTACT,
    )
    url = f"http://127.0.0.1:{port}/"
    phone = await browser.new_context(viewport=PHONE, is_mobile=True)
    page = await phone.new_page()
    await page.goto(url)
    await expect(page.locator("#poster-title")).to_be_visible()
    assert await serious_accessibility_violations(page) == []
    await page.click("#start-button")
    await bot_says(page, "NHS number", timeout=90_000)
    await page.goto("about:blank")
    await page.goto(url)  # the poster scanned again: the same chat, no new token
    await bot_says(page, "NHS number")
    assert practice.bot.query("SELECT COUNT(*) FROM web_links") == [(1,)]

    await page.goto(f"{url}#t=not-a-real-link")
    await expect(page.locator("#message-title")).to_have_text("This link does not work")
    await expect(page.locator("#message-contact")).to_have_text(CONTACT)
    assert await serious_accessibility_violations(page) == []
    await phone.close()

    async with aiohttp.ClientSession() as http:
        for _ in range(4):  # this address's other tokens of the hour, taken by someone else
            async with http.post(f"{url}api/poster-link") as response:
                assert response.status == 200
                unused = (await response.json())["token"]
    # Its life runs out before anyone opens it (the bot's clock is real: move the expiry back instead).
    practice.bot.query("UPDATE web_links SET expires_at = created_at WHERE redeemed_at IS NULL")
    late = await browser.new_context(viewport=PHONE, is_mobile=True)
    page = await late.new_page()
    await page.goto(f"{url}#t={unused}")
    await expect(page.locator("#message-title")).to_have_text("This link has expired")
    await expect(page.locator("#message-contact")).to_have_text(CONTACT)
    assert await serious_accessibility_violations(page) == []
    await late.close()
    other = await browser.new_context(viewport=PHONE, is_mobile=True)
    page = await other.new_page()
    await page.goto(url)
    await page.click("#start-button")
    await expect(page.locator("#message-title")).to_have_text("Please try again later")
    await expect(page.locator("#message-contact")).to_have_text(CONTACT)
    await other.close()


HOSTILE = (
    'Hello <b>there</b><script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'
    '<a href="javascript:window.pwned = 3">tap me</a> and <a href="https://example.org/">a safe link</a>'
)


async def test_markup_in_a_message_is_shown_as_text_and_never_runs(
    make_person: PersonFactory,
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    browser: Browser,
) -> None:
    """A message whose HTML holds a script, an image with onerror and a javascript: link shows them as text,
    runs nothing, and keeps the harmless bold and https link."""
    sender = await make_person("sender")

    async def open_chat(user_id: str, _area: str) -> None:
        room_id = await sender.open_direct_chat(UserID(user_id))
        await sender.wait_joined(room_id, UserID(user_id))
        await sender.send_content(
            room_id,
            {
                "msgtype": "m.notice",
                "body": "Hello",
                "format": "org.matrix.custom.html",
                "formatted_body": HOSTILE,
            },
        )

    api = WebChatApi(homeserver.base_url, homeserver_admin.access_token, sender.user_id, open_chat)
    await api.start()
    try:
        context = await browser.new_context(viewport=PHONE, is_mobile=True)
        page = await context.new_page()
        await page.goto(api.new_link("unused"))
        await bot_says(page, "Hello", timeout=90_000)
        message = page.locator("#messages li.bot").last
        text = await message.inner_text()
        assert "<script>window.pwned = 1</script>" in text
        assert '<img src="x" onerror="window.pwned = 2">' in text
        assert "javascript:window.pwned = 3" in text
        assert await page.locator("#messages script, #messages img, #messages [onerror]").count() == 0
        assert await page.locator('#messages a[href^="javascript"]').count() == 0
        assert await message.locator("b").inner_text() == "there"
        assert await message.locator('a[href="https://example.org/"]').get_attribute("rel") == (
            "noopener noreferrer"
        )
        assert await page.evaluate("window.pwned") is None
        await context.close()
    finally:
        await api.stop()


async def test_the_page_sends_nothing_into_a_chat_that_is_not_encrypted(
    make_person: PersonFactory,
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    browser: Browser,
) -> None:
    """In a chat without encryption the page refuses to send the patient's words, says so, and the room
    never receives them."""
    sender = await make_person("sender")
    rooms: list[RoomID] = []

    async def open_chat(user_id: str, _area: str) -> None:
        response = await sender.client.room_create(is_direct=True, invite=[user_id])
        assert isinstance(response, nio.RoomCreateResponse)
        rooms.append(RoomID(response.room_id))
        await sender.wait_joined(rooms[0], UserID(user_id))
        await sender.say(rooms[0], "Hello in clear")

    api = WebChatApi(homeserver.base_url, homeserver_admin.access_token, sender.user_id, open_chat)
    await api.start()
    try:
        context = await browser.new_context(viewport=PHONE, is_mobile=True)
        page = await context.new_page()
        await page.goto(api.new_link("unused"))
        await bot_says(page, "Hello in clear", timeout=90_000)
        await page.fill("#message-input", "999 765 4323")
        await page.click("#send-button")
        await expect(page.locator("#notice")).to_contain_text("not encrypted, so nothing was sent")
        await sender.say(rooms[0], "Still there?")  # anything the page had sent would arrive before this
        await bot_says(page, "Still there?")
        await sender.settled(rooms[0], quiet=1.0)
        assert sender.seen.get(rooms[0], []) == []  # nothing from the page's user, in clear or otherwise
        await context.close()
    finally:
        await api.stop()
