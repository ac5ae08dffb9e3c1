"""The web chat's HTTP API over real TCP, with a real SQLite database and an in-memory homeserver admin port:
poster tokens and their limits, single-use redemption, expired/used/garbage links, status, headers."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.ids import EventID, RoomID, UserID
from bot.keyring import Keyring, MasterKey, Sealer
from bot.settings import load_settings
from bot.web_chat.links import mint_token, token_hash
from bot.web_chat.server import WebChatServer
from bot.web_chat.service import WebChat
from bot.web_chat.settings import WebChatSettings
from bot.web_chat.synapse_admin import HomeserverUnavailableError
from handlers.commands import Invocation, UsageError
from handlers.request_links import RequestLinks, request_link
from storage.audit import AuditLog
from storage.database import SqliteDatabase
from storage.postgres import PostgresDatabase
from storage.practice_config import defaults_from
from storage.sql import Database
from storage.web_links import WebLinkRepository

KEY = MasterKey(key_id="mk-0000000a", secret=bytes(range(32)))
START = datetime(2031, 3, 4, 9, 30, tzinfo=UTC)
BOT = UserID("@photobot:practice.example")
CONTACT = "Please phone Riverside Surgery on 01632 960000."


class MovableClock:
    def __init__(self) -> None:
        self.moment = START

    def now(self) -> datetime:
        return self.moment


@dataclass
class FakeAdmin:
    """The homeserver's admin API as the web chat sees it: what it was asked, and whether it is up."""

    up: bool = True
    tokens: list[datetime] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)
    erased: list[str] = field(default_factory=list)

    async def registration_token(self, expires_at: datetime) -> str:
        if not self.up:
            raise HomeserverUnavailableError("down")
        self.tokens.append(expires_at)
        return f"regtoken{len(self.tokens)}"

    async def account_exists(self, user_id: UserID) -> bool:
        return user_id in self.accounts

    async def deactivate_and_erase(self, user_id: UserID) -> bool:
        self.erased.append(user_id)
        return True


@dataclass
class Served:
    url: str
    chat: WebChat
    admin: FakeAdmin
    clock: MovableClock
    database: Database
    http: aiohttp.ClientSession
    opened: list[str] = field(default_factory=list)
    rooms: dict[UserID, RoomID] = field(default_factory=dict)

    async def call(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        async with self.http.post(self.url + path, data=data, headers=headers) as response:
            return response.status, await response.json(), dict(response.headers)

    async def request_link(self, **details: Any) -> str:
        token = mint_token()
        async with self.database.transaction() as db:
            await self.chat.links.add(
                db,
                token_hash(token),
                "request",
                created_at=self.clock.now(),
                expires_at=self.clock.now() + timedelta(days=3),
                details={"area": "left forearm", "note": None, "by": "@dr.synthetic:practice.example"}
                | details,
            )
        return token


async def _stored(database: Database, secret: str) -> bool:
    """Whether the database holds `secret` anywhere: in the SQLite file's or its WAL's bytes, or in any row
    of any PostgreSQL table (text as it is, bytea as hex)."""
    if isinstance(database, SqliteDatabase):
        files = (database.path, database.path.with_name(database.path.name + "-wal"))
        return any(secret.encode() in path.read_bytes() for path in files if path.exists())
    async with database.connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ) as cursor:
        tables = [str(row[0]) for row in await cursor.fetchall()]
    for table in tables:
        async with database.connection.execute(f'SELECT CAST(t AS TEXT) FROM "{table}" t') as cursor:  # noqa: S608
            dump = "".join(str(row[0]) for row in await cursor.fetchall())
        if secret in dump or secret.encode().hex() in dump:
            return True
    return False


@pytest.fixture(params=["sqlite", "postgresql"])
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    database: Database
    if request.param == "postgresql":
        database = await PostgresDatabase.open(request.getfixturevalue("postgres_url"))
    else:
        database = await SqliteDatabase.open(tmp_path / "data" / "photobot.sqlite3")
    keyring = Keyring(KEY)
    clock = MovableClock()
    admin = FakeAdmin()
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text(
        "<!doctype html><title>chat</title><script src=/assets/app.js></script>"
    )
    (static / "assets" / "app.js").write_text("console.log('page')")
    (static / "assets" / "chunk-RUETFX72.js").write_text("console.log('chunk')")
    (static / "assets" / "chunk-RUETFX72.js.gz").write_bytes(gzip.compress(b"console.log('chunk')"))
    (static / "assets" / "pkg").mkdir()
    (static / "assets" / "pkg" / "crypto_bg.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (tmp_path / "secret.txt").write_text("not for the web")
    opened: list[str] = []

    rooms: dict[UserID, RoomID] = {}

    async def open_request(
        request_id: str, patient: UserID, area: str, *, note: str | None, by: UserID, expires: datetime
    ) -> str:
        opened.append(f"request {area} for {patient}")
        rooms[patient] = RoomID("!request:practice.example")
        return "opened"

    async def open_poster_chat(user: UserID) -> RoomID:
        opened.append(f"poster chat for {user}")
        rooms[user] = RoomID("!poster:practice.example")
        return rooms[user]

    async def find_room(user: UserID) -> RoomID | None:
        return rooms.get(user)

    chat = WebChat(
        settings=WebChatSettings(
            url="https://photos.practice.example/",
            port=1,
            homeserver_url="https://matrix.practice.example",
            contact=CONTACT,
            poster_per_address=5,
            poster_per_day=20,
            trust_proxy=True,
        ),
        links=WebLinkRepository(database, Sealer(keyring)),
        database=database,
        audit=AuditLog(database, keyring, clock),
        admin=admin,
        clock=clock,
        bot_user_id=BOT,
        practice_name=lambda: "Riverside Surgery",
        open_request=open_request,
        open_poster_chat=open_poster_chat,
        find_room=find_room,
    )
    server = WebChatServer(chat, static)
    await server.start("127.0.0.1", 0, allow_public=False)
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(f"http://127.0.0.1:{server.port}", chat, admin, clock, database, http, opened, rooms)
    finally:
        await server.close()
        await database.close()


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.250, {address}"}


async def test_fifty_poster_token_requests_in_a_minute_from_one_address_get_five_tokens(
    served: Served,
) -> None:
    """From one address, 50 requests in a minute give the configured 5 tokens; the other 45 are told to wait
    (429, busy, with Retry-After and the contact sentence) while another address is still served."""
    answers = []
    for second in range(50):
        served.clock.moment = START + timedelta(seconds=second)
        answers.append(await served.call("/api/poster-link", headers=from_address("203.0.113.5")))
    granted = [body for status, body, _ in answers if status == 200]
    refused = [(body, headers) for status, body, headers in answers if status == 429]
    assert len(granted) == 5
    assert len({body["token"] for body in granted}) == 5
    assert len(refused) == 45
    assert all(body["error"] == "busy" and CONTACT in body["message"] for body, _ in refused)
    assert all(int(headers["Retry-After"]) > 0 for _, headers in refused)
    status, body, _ = await served.call("/api/poster-link", headers=from_address("203.0.113.6"))
    assert status == 200
    assert "token" in body


async def test_the_practice_wide_daily_limit_stops_token_minting_in_bulk(served: Served) -> None:
    """Many addresses together get no more than the day's limit (20 here); the next day they are served."""
    statuses = []
    for i in range(30):
        status, _, _ = await served.call("/api/poster-link", headers=from_address(f"192.0.2.{i}"))
        statuses.append(status)
    assert statuses == [200] * 20 + [429] * 10
    served.clock.moment = START + timedelta(days=1, seconds=1)
    status, _, _ = await served.call("/api/poster-link", headers=from_address("192.0.2.200"))
    assert status == 200


async def test_a_link_is_redeemed_once_for_a_registration_token_and_a_bot_chosen_username(
    served: Served,
) -> None:
    """The first redemption gets a registration token and a username; the second is refused as used."""
    _, body, _ = await served.call("/api/poster-link", headers=from_address("203.0.113.5"))
    token = body["token"]
    status, first, headers = await served.call("/api/redeem", {"token": token})
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert first["registration_token"] == "regtoken1"
    assert first["username"].startswith("web-")
    assert first["homeserver_url"] == "https://matrix.practice.example"
    assert first["bot_user_id"] == BOT
    assert served.admin.tokens == [START + timedelta(minutes=15)]
    status, again, _ = await served.call("/api/redeem", {"token": token})
    assert (status, again["error"]) == (410, "used")
    assert CONTACT in again["message"]
    assert len(served.admin.tokens) == 1
    assert await _stored(served.database, first["username"]), "the check cannot see what is stored"
    assert not await _stored(served.database, token)
    assert not await _stored(served.database, first["registration_token"])


async def test_expired_garbage_and_unknown_links_are_refused_kindly(served: Served) -> None:
    """An expired link answers 410 expired, a garbage or unknown one 404 unknown, each with the contact
    sentence; a body that is not a JSON object answers 400."""
    token = await served.request_link()
    served.clock.moment = START + timedelta(days=3, seconds=1)
    status, body, _ = await served.call("/api/redeem", {"token": token})
    assert (status, body["error"]) == (410, "expired")
    assert CONTACT in body["message"]
    for garbage in ("", "abc", "../../etc/passwd", mint_token()[:-1] + "!", 12345, None):
        status, body, _ = await served.call("/api/redeem", {"token": garbage})
        assert (status, body["error"]) == (404, "unknown")
    status, body, _ = await served.call("/api/redeem", {"token": mint_token()})
    assert (status, body["error"]) == (404, "unknown")
    for raw in (b"not json", b"[1, 2]", b"\xff\xfe"):
        status, body, _ = await served.call("/api/redeem", raw)
        assert status == 400
    assert served.admin.tokens == []


async def test_a_failed_registration_token_leaves_the_link_usable(served: Served) -> None:
    """If the homeserver cannot make a registration token the patient is told to try later, and the link
    still works afterwards."""
    token = await served.request_link()
    served.admin.up = False
    status, body, _ = await served.call("/api/redeem", {"token": token})
    assert (status, body["error"]) == (503, "unavailable")
    served.admin.up = True
    status, body, _ = await served.call("/api/redeem", {"token": token})
    assert status == 200


async def test_ready_opens_the_request_chat_once_for_the_account_the_link_made(served: Served) -> None:
    """`ready` for another user is refused; for the link's own registered user the bot opens the
    clinician's request once, however often the page says ready."""
    token = await served.request_link(area="right knee")
    _, redeemed, _ = await served.call("/api/redeem", {"token": token})
    user = f"@{redeemed['username']}:practice.example"
    status, body, _ = await served.call(
        "/api/ready", {"token": token, "user_id": "@someone:practice.example"}
    )
    assert (status, body["error"]) == (400, "wrong_user")
    status, body, _ = await served.call("/api/ready", {"token": token, "user_id": user})
    assert (status, body["error"]) == (409, "not_registered")
    served.admin.accounts.add(user)
    for _ in range(3):
        status, body, _ = await served.call("/api/ready", {"token": token, "user_id": user})
        assert (status, body) == (200, {"room_id": "!request:practice.example"})
    assert served.opened == [f"request right knee for {user}"]


async def test_a_chat_opened_before_a_crash_is_not_opened_twice(served: Served) -> None:
    """If the bot stopped after opening the chat but before recording it, the page's next `ready` gets
    that chat back and no second chat is opened."""
    token = await served.request_link()
    _, redeemed, _ = await served.call("/api/redeem", {"token": token})
    user = UserID(f"@{redeemed['username']}:practice.example")
    served.admin.accounts.add(user)
    served.rooms[user] = RoomID("!opened-before-the-crash:practice.example")
    status, body, _ = await served.call("/api/ready", {"token": token, "user_id": user})
    assert (status, body) == (200, {"room_id": "!opened-before-the-crash:practice.example"})
    assert served.opened == []


async def test_status_says_open_until_the_period_ends_then_closed_and_erased(served: Served) -> None:
    """A redeemed link is open; once its period has ended the status answers closed, the account is
    erased, and the link is refused from then on."""
    _, body, _ = await served.call("/api/poster-link", headers=from_address("203.0.113.5"))
    token = body["token"]
    _, redeemed, _ = await served.call("/api/redeem", {"token": token})
    user = f"@{redeemed['username']}:practice.example"
    served.admin.accounts.add(user)
    await served.call("/api/ready", {"token": token, "user_id": user})
    assert served.opened == [f"poster chat for {user}"]
    assert (await served.call("/api/status", {"token": token}))[1] == {"state": "open"}
    served.clock.moment = START + timedelta(days=14)
    assert (await served.call("/api/status", {"token": token}))[1] == {"state": "closed"}
    assert served.admin.erased == [user]
    status, body, _ = await served.call("/api/redeem", {"token": token})
    assert (status, body["error"]) == (410, "closed")
    status, body, _ = await served.call("/api/ready", {"token": token, "user_id": user})
    assert (status, body["error"]) == (410, "closed")
    assert await served.chat.sweep() == 0
    assert served.admin.erased == [user]


async def test_status_of_unknown_and_expired_links(served: Served) -> None:
    """The page is told unknown for a link that is not ours and expired for one never used in time."""
    assert (await served.call("/api/status", {"token": "garbage"}))[1] == {"state": "unknown"}
    assert (await served.call("/api/status", {"token": mint_token()}))[1] == {"state": "unknown"}
    _, body, _ = await served.call("/api/poster-link", headers=from_address("203.0.113.5"))
    served.clock.moment = START + timedelta(minutes=11)
    assert (await served.call("/api/status", {"token": body["token"]}))[1] == {"state": "expired"}


async def test_the_page_and_the_api_carry_a_strict_content_security_policy(served: Served) -> None:
    """Every answer forbids inline script and every other origin but the homeserver's for connections, is
    never framed and sends no referrer; a path outside the assets is not served."""
    async with served.http.get(served.url + "/") as response:
        assert response.status == 200
        assert "<title>chat</title>" in await response.text()
        headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in csp
    assert "'unsafe-inline'" not in csp
    assert "default-src 'none'" in csp
    assert "connect-src 'self' https://matrix.practice.example;" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    async with served.http.get(served.url + "/assets/app.js") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.headers["Content-Security-Policy"] == csp
    async with served.http.get(served.url + "/assets/app.js") as response:
        assert response.headers["Cache-Control"] == "no-cache"  # not a hashed name: revalidated
        etag = response.headers["ETag"]
    async with served.http.get(served.url + "/assets/app.js", headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    async with served.http.get(served.url + "/assets/chunk-RUETFX72.js") as response:
        assert await response.text() == "console.log('chunk')"
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
    async with served.http.get(served.url + "/assets/pkg/crypto_bg.wasm") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/wasm"  # streaming compilation needs it
    for path in (
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/secret.txt",
        "/assets/nope.js",
    ):
        async with served.http.get(served.url + path) as response:
            assert response.status == 404
            assert "not for the web" not in await response.text()
            assert response.headers["Content-Security-Policy"] == csp
    async with served.http.get(served.url + "/api/config") as response:
        assert await response.json() == {
            "homeserver_url": "https://matrix.practice.example",
            "bot_user_id": BOT,
            "practice_name": "Riverside Surgery",
            "contact": CONTACT,
        }
        assert response.headers["Cache-Control"] == "no-store"


def link_command(body: str) -> Invocation:
    config = defaults_from(
        load_settings({"PHOTOBOT_HOMESERVER_URL": "https://matrix.practice.example", "PHOTOBOT_USER_ID": BOT})
    )
    return Invocation(
        "request",
        tuple(body.split()),
        body,
        UserID("@dr.synthetic:practice.example"),
        RoomID("!clinicians:practice.example"),
        EventID("$command"),
        START,
        config,
    )


async def test_request_link_replies_with_a_working_link_whose_token_only_the_reply_holds(
    served: Served,
) -> None:
    """`!request link <area> -- note` answers with the link and its expiry; once committed the link redeems,
    and the database holds only its hash; a missing area or a practice without the web chat gets a kind
    usage reply."""
    minter = RequestLinks(
        served.chat.links, served.chat.audit, served.chat.settings, ZoneInfo("Europe/London")
    )
    outcome = await minter.request(link_command("link the rash on your left forearm -- with a coin"))
    match = re.search(r"#t=([A-Za-z0-9_-]+)`", outcome.reply)
    assert match is not None
    assert outcome.reply.startswith(
        "Here is a web chat link asking for a photo of: the rash on your left forearm."
    )
    assert "until Fri 7 Mar 09:30" in outcome.reply  # the practice's 3-day request expiry, local time
    assert outcome.work is not None
    async with served.database.transaction() as db:
        await outcome.work(db)
    token = match.group(1)
    assert not await _stored(served.database, token)
    status, body, _ = await served.call("/api/redeem", {"token": token})
    assert status == 200
    user = f"@{body['username']}:practice.example"
    served.admin.accounts.add(user)
    await served.call("/api/ready", {"token": token, "user_id": user})
    assert served.opened == [f"request the rash on your left forearm for {user}"]
    with pytest.raises(UsageError, match="What area to photograph is missing"):
        await minter.request(link_command("link"))
    with pytest.raises(UsageError, match="not set up at this practice"):
        await request_link(None, link_command("link left knee"))


async def test_an_account_closes_once_its_kept_submission_is_exported_and_no_consent_is_waiting(
    served: Served,
) -> None:
    """With real rows: a kept submission keeps the account, a waiting consent question too; once exported
    and answered the sweep erases it, and says so on the submission's audit trail."""
    token = await served.request_link()
    _, redeemed, _ = await served.call("/api/redeem", {"token": token})
    user = UserID(f"@{redeemed['username']}:practice.example")
    served.admin.accounts.add(user)
    room = RoomID("!kept:practice.example")
    served.rooms[user] = room
    await served.call("/api/ready", {"token": token, "user_id": user})
    now = START.isoformat()
    db = served.database.connection
    await db.execute("INSERT INTO rooms (room_id, kind, joined_at) VALUES (?, 'patient', ?)", (room, now))
    await db.execute(
        "INSERT INTO conversations (room_id, state, data, last_activity_at) VALUES (?, 'submitted', ?, ?)",
        (room, b"\x00", now),
    )
    await db.execute(
        "INSERT INTO submissions (submission_id, reference, room_id, nhs_number, nhs_lookup, keep_in_record,"
        " intimate, acting_for_someone, details, status, created_at)"
        " VALUES ('sub1', 'GP-TEST-0001', ?, ?, 'lookup', 1, 0, 0, ?, 'done', ?)",
        (room, b"\x00", b"\x00", now),
    )
    await db.execute(
        "INSERT INTO consents (consent_id, submission_id, purpose, asked_by, asked_at)"
        " VALUES ('c1', 'sub1', 'teaching', '@dr.synthetic:practice.example', ?)",
        (now,),
    )
    assert await served.chat.sweep() == 0  # kept, not exported
    async with served.database.transaction() as tx:
        await served.chat.audit.append(
            tx, actor="@dr.synthetic:practice.example", action="export", subject="GP-TEST-0001"
        )
    assert await served.chat.sweep() == 0  # exported, but the consent question waits for its answer
    await db.execute("UPDATE consents SET answer = 'yes', given_by = 'patient', answered_at = ?", (now,))
    assert await served.chat.sweep() == 1
    assert served.admin.erased == [user]
    assert (await served.call("/api/status", {"token": token}))[1] == {"state": "closed"}
    # What `!audit GP-TEST-0001` lists: the account's end is on the submission's own trail.
    trail = await served.chat.audit.entries("GP-TEST-0001")
    assert [entry.action for entry in trail] == ["export", "web_account_closed"]
    assert trail[-1].details["reason"] == "submission kept and exported"
