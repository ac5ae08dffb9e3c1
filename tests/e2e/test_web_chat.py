"""The web chat's bot side against the real bot and a real Synapse: a real encrypted nio client stands in for
the page's user, registering with the registration token the API gave it (issue 18)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from bot.ids import RoomID, UserID
from bot.matrix.message_content import CHOICES_KEY
from bot.web_chat.homeserver_check import check_web_chat
from bot.web_chat.settings import WebChatSettings
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver, RegisteredUser, pick_free_port
from tests.e2e.conftest import BotFactory, BotUnderTest, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, send_photo
from tests.e2e.workspace import command, open_practice
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.timeout(300)


@dataclass
class Page:
    """What the page does over HTTP: the bot's web chat API, and registering on the homeserver."""

    url: str
    homeserver: LocalHomeserver
    http: aiohttp.ClientSession

    async def api(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{self.url}/api/{path}", json=body) as response:
            return response.status, await response.json()

    async def register(self, username: str, registration_token: str) -> tuple[UserID, str]:
        """Token-authenticated registration (client-server API), as the page does; the new user and password."""
        password = f"pw-{username}"
        url = f"{self.homeserver.base_url}/_matrix/client/v3/register"
        body: dict[str, Any] = {"username": username, "password": password, "inhibit_login": True}
        async with self.http.post(url, json=body) as response:
            assert response.status == 401
            session = (await response.json())["session"]
        body["auth"] = {"type": "m.login.registration_token", "token": registration_token, "session": session}
        async with self.http.post(url, json=body) as response:
            assert response.status == 401  # Synapse's flow: the token stage, then m.login.dummy
        body["auth"] = {"type": "m.login.dummy", "session": session}
        async with self.http.post(url, json=body) as response:
            created = await response.json()
            assert response.status == 200, created
        return UserID(created["user_id"]), password


async def web_chat_practice(make_bot: BotFactory, make_person: PersonFactory) -> tuple[Any, str]:
    port = pick_free_port()
    practice = await open_practice(
        make_bot,
        make_person,
        web_chat_end_grace="3s",
        web_chat_port=str(port),
        web_chat_url=f"http://127.0.0.1:{port}/",
        web_chat_contact="Please phone Riverside Surgery on 01632 960000.",
    )
    return practice, f"http://127.0.0.1:{port}"


async def sign_up_from_link(page: Page, token: str, store: Path) -> tuple[Person, RoomID]:
    """What the page does with a link: redeem it, register, set up cross-signing, say ready, join the chat."""
    assert await page.api("status", {"token": token}) == (200, {"state": "open"})
    status, redeemed = await page.api("redeem", {"token": token})
    assert status == 200, redeemed
    user_id, password = await page.register(redeemed["username"], redeemed["registration_token"])
    person = await Person.log_in(page.homeserver, user_id, password, store)
    await person.set_up_cross_signing()
    status, ready = await page.api("ready", {"token": token, "user_id": user_id})
    assert status == 200, ready
    room_id = RoomID(ready["room_id"])
    await person.wait_until(lambda: room_id in person.client.rooms, timeout=60)
    return person, room_id


async def account(homeserver: LocalHomeserver, admin: RegisteredUser, user_id: UserID) -> dict[str, Any]:
    url = f"{homeserver.base_url}/_synapse/admin/v2/users/{quote(user_id, safe='')}"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {admin.access_token}"}) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_a_request_link_brings_a_patient_without_an_app_through_the_journey_then_is_erased(
    make_bot: BotFactory,
    make_person: PersonFactory,
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    tmp_path: Path,
) -> None:
    """A clinician's `!request link` gives a link; the throwaway account it makes gets the request, sends a
    photo and a reference; once the clinician deletes the submission the account is deactivated and erased,
    the link is refused from then on, and the closing is audited under the submission's reference."""
    practice, url = await web_chat_practice(make_bot, make_person)
    bot: BotUnderTest = practice.bot
    clinician, room = practice.clinician, practice.clinician_room
    reply = await command(
        clinician, room, "!request link the rash on your left forearm -- with a coin", "#t="
    )
    match = re.search(r"#t=([A-Za-z0-9_-]+)", reply)
    assert match is not None
    token = match.group(1)
    assert token not in str(bot.query("SELECT * FROM web_links"))

    async with aiohttp.ClientSession() as http:
        page = Page(url, homeserver, http)
        patient, patient_room = await sign_up_from_link(page, token, tmp_path / "stores" / "web-request")
        try:
            intro = await patient.wait_for_text(patient_room, "asked you for a photo of")
            assert "left forearm" in intro.body
            assert "with a coin" in intro.body
            await answer(patient, patient_room, NHS_NUMBER, "999 765 4323")
            # The questions carry the answers the page shows as buttons; pressing one sends its answer.
            readback = patient.seen[patient_room][-1].content[CHOICES_KEY]
            assert readback == [
                {"label": "1: mine", "answer": "1"},
                {"label": "2: someone I look after", "answer": "2"},
                {"label": "No, that's wrong", "answer": "no"},
            ]
            await answer(patient, patient_room, readback[0]["answer"], "intimate area")
            intimate = patient.seen[patient_room][-1].content[CHOICES_KEY]
            assert [choice["answer"] for choice in intimate] == ["yes", "no"]
            await answer(patient, patient_room, intimate[1]["answer"], "DONE")
            await send_photo(
                patient,
                patient_room,
                make_jpeg(1400, 1000),
                "Photo 1 received",
                filename="a.jpg",
                mimetype="image/jpeg",
            )
            done = await answer(patient, patient_room, "done", "reference")
            reference = done.split("reference is ")[1].split(".")[0].strip("*")
            assert all(seen.encrypted for seen in patient.seen[patient_room])
            assert await page.api("status", {"token": token}) == (200, {"state": "open"})
            assert (await page.api("redeem", {"token": token}))[1]["error"] == "used"

            await command(clinician, room, f"!delete {reference} test of the web chat", "Reply yes")
            await command(clinician, room, "yes", "Receipt")
            assert await page.api("status", {"token": token}) == (200, {"state": "closed"})
            erased = await account(homeserver, homeserver_admin, patient.user_id)
            assert erased["deactivated"] is True
            assert erased["erased"] is True
            status, refused = await page.api("redeem", {"token": token})
            assert (status, refused["error"]) == (410, "closed")
            assert "01632 960000" in refused["message"]
        finally:
            await patient.close()
    closed = bot.query("SELECT closed_reason FROM web_links")
    assert closed == [("submission deleted",)]
    audited = bot.query("SELECT actor, action, subject FROM audit_log WHERE action LIKE 'web%' ORDER BY seq")
    assert [(actor, action) for actor, action, _ in audited] == [
        (clinician.user_id, "web_link"),
        ("bot", "web_account_opened"),
        ("bot", "web_account_closed"),
    ]
    assert audited[-1][2] == reference  # the account's end is on its submission's trail (`!audit REF`)


async def test_a_poster_link_greets_a_new_patient_and_a_cancel_closes_the_account(
    make_bot: BotFactory,
    make_person: PersonFactory,
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    tmp_path: Path,
) -> None:
    """The poster's token opens a new patient's chat with the usual greeting; cancelling ends it and the
    sweep erases the account without the page asking; 50 token requests from one address get 5 tokens."""
    practice, url = await web_chat_practice(make_bot, make_person)
    async with aiohttp.ClientSession() as http:
        page = Page(url, homeserver, http)
        status, body = await page.api("poster-link")
        assert status == 200
        token = body["token"]
        patient, patient_room = await sign_up_from_link(page, token, tmp_path / "stores" / "web-poster")
        try:
            await patient.wait_for_text(patient_room, "NHS number")
            await answer(patient, patient_room, "cancel", "Cancelled")
            erased: dict[str, Any] = {}
            for _ in range(60):  # the sweep runs every 2 s in test mode
                erased = await account(homeserver, homeserver_admin, patient.user_id)
                if erased["erased"] and erased["deactivated"]:  # Synapse marks erased first, then deactivated
                    break
                await patient.settled(patient_room, quiet=0.5)
            assert erased["deactivated"] is True
            assert erased["erased"] is True
            assert await page.api("status", {"token": token}) == (200, {"state": "closed"})
        finally:
            await patient.close()
        statuses = [(await page.api("poster-link"))[0] for _ in range(49)]
        assert statuses.count(200) == 4  # the first token above was the fifth of this address's hour
        assert statuses.count(429) == 45
    assert practice.bot.query("SELECT closed_reason FROM web_links WHERE redeemed_at IS NOT NULL") == [
        ("journey cancelled",)
    ]


async def test_the_homeserver_makes_accounts_only_from_a_registration_token(
    homeserver: LocalHomeserver,
) -> None:
    """`photobot check`'s web chat question passes on the suite's homeserver, and there an account cannot be
    registered without a token."""
    problems: list[str] = []
    async with aiohttp.ClientSession() as http:
        settings = WebChatSettings(url="http://127.0.0.1:1/", port=1)
        await check_web_chat(settings, homeserver.base_url, "an admin token", http, problems)
        assert problems == []
        url = f"{homeserver.base_url}/_matrix/client/v3/register"
        body: dict[str, Any] = {"username": "web-without-token", "password": "pw-without-token"}
        async with http.post(url, json=body) as response:
            session = (await response.json())["session"]
        body["auth"] = {"type": "m.login.dummy", "session": session}
        async with http.post(url, json=body) as response:
            assert response.status == 401
            assert "m.login.registration_token" not in (await response.json()).get("completed", [])
