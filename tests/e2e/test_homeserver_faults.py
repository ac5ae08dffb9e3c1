"""Homeserver faults: Synapse restarted or away while the bot downloads or replies, and media deletion refused.

This module runs its own Synapse (the `homeserver` fixture is overridden here), because its tests stop and
restart it. Some put a reverse proxy between the bot and Synapse, as most deployments have (nginx in front
of Synapse): while Synapse is down the proxy answers 502, and it can lose the answer to a message send
after Synapse stored it, as a proxy that timed out would. The scripted patients talk to Synapse directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from devtools.local_homeserver import LocalHomeserver, RegisteredUser, default_synapse_python
from tests.e2e.conftest import PROJECT_ROOT, BotFactory, BotUnderTest, LeakScanTargets, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, open_chat, reach_photos, stored_photos
from tests.e2e.workspace import open_practice, write_clock_offset
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 10.0
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}


@pytest.fixture(scope="module")
async def homeserver(
    tmp_path_factory: pytest.TempPathFactory, leak_scan_targets: LeakScanTargets
) -> AsyncIterator[LocalHomeserver]:
    """This module's own Synapse: its tests stop and restart it, which must not disturb other modules."""
    server = LocalHomeserver(
        tmp_path_factory.mktemp("synapse-faults"), synapse_python=default_synapse_python(PROJECT_ROOT)
    )
    leak_scan_targets.paths.append(server.base_dir)  # its database and media store are scanned too
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def homeserver_admin(homeserver: LocalHomeserver) -> RegisteredUser:
    return await homeserver.register_user("practiceadmin", "pw-practice-admin", admin=True)


class HomeserverProxy:
    """A reverse proxy in front of Synapse: 502 Bad Gateway (an HTML page, as nginx sends) while Synapse is
    down, and, when asked, the answer to the next message send lost after Synapse stored the message."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.lose_next_send_answer = False
        self.lost_answers = 0
        self.bad_gateway = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=120))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_BY_HOP}
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                data=body or None,
                headers=headers,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                status = upstream.status
                content_type = upstream.headers.get("Content-Type")
        except (aiohttp.ClientError, OSError):
            self.bad_gateway += 1
            return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")
        if (
            self.lose_next_send_answer
            and request.method == "PUT"
            and "/send/m.room.encrypted/" in request.path
            and status == 200
        ):
            self.lose_next_send_answer = False
            self.lost_answers += 1
            return web.Response(
                status=504, text="<html>504 Gateway Time-out</html>", content_type="text/html"
            )
        return web.Response(
            status=status, body=payload, headers={"Content-Type": content_type} if content_type else None
        )


@pytest.fixture
async def proxy(homeserver: LocalHomeserver) -> AsyncIterator[HomeserverProxy]:
    front = HomeserverProxy(homeserver.base_url)
    await front.start()
    try:
        yield front
    finally:
        await front.close()


@pytest.fixture
async def synapse_back_up(homeserver: LocalHomeserver) -> AsyncIterator[None]:
    """Whatever a test did to Synapse, it is running again for the next test."""
    yield
    if homeserver.pid is None:
        await homeserver.start()


class Pauses:
    """The test's side of a `point=pause` fault: see the bot arrive, let it through, count how often.

    The bot creates ``<point>.paused``, waits for ``<point>.release``, then deletes the release file and
    the paused file, in that order. The bot is waiting exactly when the first exists and the second not.
    """

    def __init__(self, bot: BotUnderTest, point: str) -> None:
        self._paused = bot.data_dir / "faults" / f"{point}.paused"
        self._release = bot.data_dir / "faults" / f"{point}.release"
        self.released = 0

    @property
    def waiting(self) -> bool:
        return self._paused.exists() and not self._release.exists()

    async def arrived(self, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.waiting:  # noqa: ASYNC110 - the bot's process creates the file
                await asyncio.sleep(0.02)

    def release(self) -> None:
        self._release.touch()
        self.released += 1

    async def keep_releasing(self) -> None:
        """Let the bot through every time it arrives, until cancelled."""
        try:
            while True:
                await self.arrived(timeout=3600)
                self.release()
        finally:
            # A release the bot has not taken would let its next arrival through unseen.
            self._release.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def releasing(pauses: Pauses) -> AsyncIterator[None]:
    task = asyncio.create_task(pauses.keep_releasing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], timeout: float = 60.0, what: str = "the condition") -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - the bot's database, read from outside
            await asyncio.sleep(0.25)
    assert check(), what


def count(bot: BotUnderTest, sql: str, params: tuple[object, ...] = ()) -> int:
    (row,) = bot.query(sql, params)
    return int(str(row[0]))


@pytest.mark.usefixtures("synapse_back_up")
@pytest.mark.parametrize(
    "outage",
    [
        "down_for_10_s",
        "down_for_10_s_behind_a_proxy",
    ],
)
async def test_a_photo_being_downloaded_when_the_homeserver_goes_away_is_stored_once_when_it_is_back(
    make_bot: BotFactory,
    make_person: PersonFactory,
    homeserver: LocalHomeserver,
    proxy: HomeserverProxy,
    outage: str,
) -> None:
    """Synapse stops just as the bot starts downloading a photo and is back 10 s later (reached directly, or
    through a proxy): the photo is then stored once, the patient told once, and the journey goes on."""
    behind_proxy = outage.endswith("behind_a_proxy")
    bot = await make_bot(
        homeserver_url=proxy.url if behind_proxy else homeserver.base_url,
        fault_points="before_download=pause",
    )
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    pauses = Pauses(bot, "before_download")
    event_id = await patient.send_photo(
        room_id,
        make_jpeg(1600, 1200),
        filename="arm.jpg",
        mimetype="image/jpeg",
        thumbnail=make_jpeg(160, 120),
    )
    await pauses.arrived()
    checkpoint = bot.query("SELECT next_batch FROM sync_checkpoint")  # the sync loop waits on this batch
    await homeserver.stop()
    pauses.release()
    async with releasing(pauses):
        await asyncio.sleep(OUTAGE_SECONDS)
    # Directly, the download waits (nio retries the connection); behind a proxy it fails (502) and the batch
    # is fetched again. Either way the photo's event is not marked handled, the checkpoint has not passed it.
    assert count(bot, "SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == 0
    assert count(bot, "SELECT COUNT(*) FROM photos") == 0
    assert bot.query("SELECT next_batch FROM sync_checkpoint") == checkpoint
    assert proxy.bad_gateway > 0 or not behind_proxy
    await homeserver.start()
    async with releasing(pauses):
        await patient.wait_for_text(room_id, "Photo 1 received", timeout=120)
        await patient.settled(room_id, quiet=3)
        done = await answer(patient, room_id, "done", "reference")
    print(f"{outage}: the bot reached the download {pauses.released} time(s); the photo was stored once")

    assert len([text for text in patient.texts(room_id) if "Photo 1 received" in text]) == 1
    assert "reference" in done
    assert count(bot, "SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == 1
    photos = stored_photos(bot)
    assert len(photos) == 1
    assert photos[0].submission_id is not None and photos[0].data[:2] == b"\xff\xd8"
    for url in patient.uploads[event_id]:  # the patient's photo and thumbnail, deleted from the homeserver
        assert await patient.media_status(url) == 404


@pytest.mark.usefixtures("synapse_back_up")
async def test_replies_held_up_by_a_homeserver_outage_arrive_exactly_once_and_the_bot_serves_on(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver, proxy: HomeserverProxy
) -> None:
    """A reply whose answer the proxy lost, and a reply held up by a 10 s outage, each reach the patient exactly
    once (the retries carry the same transaction id); afterwards the bot answers this patient and a new one."""
    bot = await make_bot(homeserver_url=proxy.url)
    patient = await make_person("patient")
    room_id = await open_chat(patient, bot)
    await bot.process.stop()
    await bot.process.start(extra_env={"PHOTOBOT_FAULT_POINTS": "before_send=pause"})
    pauses = Pauses(bot, "before_send")

    # 1. Synapse stores the read-back, but its answer is lost on the way: the bot sends it again later.
    proxy.lose_next_send_answer = True
    await patient.say(room_id, NHS_NUMBER)
    async with releasing(pauses):
        await patient.wait_for_text(room_id, "999 765 4323")
        await eventually(lambda: count(bot, "SELECT COUNT(*) FROM outbox") == 0, what="the outbox emptied")
    assert proxy.lost_answers == 1

    # 2. The next reply is committed, then Synapse goes away before it is sent, for 10 seconds.
    before = len(patient.seen[room_id])
    event_id = await patient.say(room_id, "1")
    await pauses.arrived()
    assert count(bot, "SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == 1
    assert count(bot, "SELECT COUNT(*) FROM outbox") >= 1
    await homeserver.stop()
    released_before_outage = pauses.released
    pauses.release()
    async with releasing(pauses):
        await asyncio.sleep(OUTAGE_SECONDS)
        assert count(bot, "SELECT COUNT(*) FROM outbox") >= 1, "the reply waits in the outbox"
        tries_in_outage = pauses.released - released_before_outage
        await homeserver.start()
        await patient.wait_for_text(room_id, "intimate area", after=before, timeout=120)
        await patient.settled(room_id, quiet=3)
        read_backs = [text for text in patient.texts(room_id) if "999 765 4323" in text]
        questions = [text for text in patient.texts(room_id) if "intimate area" in text]
        print(f"sends tried during the outage: {tries_in_outage}; 502s: {proxy.bad_gateway}")
        assert len(read_backs) == 1, "the reply whose answer was lost arrived once"
        assert len(questions) == 1, "the reply held up by the outage arrived once"
        assert count(bot, "SELECT COUNT(*) FROM outbox") == 0

        # 3. The bot serves on: this patient's next answer, and a new patient.
        await answer(patient, room_id, "no", "DONE")
        newcomer = await make_person("patient")
        await open_chat(newcomer, bot)
    assert bot.process.process is not None and bot.process.process.returncode is None


async def test_uploads_the_homeserver_refuses_to_delete_are_retried_reported_and_drained_with_the_right_token(
    make_bot: BotFactory,
    make_person: PersonFactory,
    homeserver_admin: RegisteredUser,
    tmp_path: Path,
) -> None:
    """With a wrong homeserver-admin credential, a photo's uploads stay in the ledger and are retried with
    backoff, logged without their URLs, reported once in the admin room and by `photobot check`; once an
    admin sets the right credential the backlog drains to 0 and the uploads are gone from the homeserver."""
    clock_file = tmp_path / "clock-offset"
    write_clock_offset(clock_file, 0)
    practice = await open_practice(
        make_bot,
        make_person,
        homeserver_admin_token="syt_this_is_not_a_valid_admin_token",
        test_clock_file=str(clock_file),
        test_conversation_timeout_seconds="20",  # housekeeping every 5 s
    )
    bot, admin = practice.bot, practice.admin
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    event_id = await patient.send_photo(
        room_id,
        make_jpeg(1600, 1200),
        filename="arm.jpg",
        mimetype="image/jpeg",
        thumbnail=make_jpeg(160, 120),
    )
    await patient.wait_for_text(room_id, "Photo 1 received")
    await answer(patient, room_id, "done", "reference")
    uploads = patient.uploads[event_id]

    def attempts() -> list[int]:
        rows = bot.query("SELECT attempts FROM media_ledger WHERE status = 'pending' ORDER BY id")
        return [int(str(row[0])) for row in rows]

    await eventually(lambda: attempts() == [1, 1], what="the first deletion was refused for both uploads")
    await asyncio.sleep(12)  # two more housekeeping passes: the backoff holds the next try (30 s)
    assert attempts() == [1, 1]
    for refusals in (2, 3, 4):  # an hour later each time: due again, and refused again
        write_clock_offset(clock_file, (refusals - 1) * 3600)
        expected = [refusals, refusals]
        await eventually(lambda: attempts() == expected, what=f"refusal {refusals}")  # noqa: B023
    alert = await admin.wait_for_text(practice.admin_room, "keeps failing", timeout=60)
    assert "2 upload(s) wait" in alert.body
    log_text = bot.process.log_text()
    assert "refused to delete 2 upload(s)" in log_text
    for url in uploads:
        assert url.rsplit("/", 1)[1] not in log_text, "no media id in the log"
        assert await patient.media_status(url) == 200, "still on the homeserver"
    code, output = await bot.process.command("check")
    assert code == 1, output
    assert "2 upload(s) of patients' photos wait to be deleted" in output

    code, output = await bot.process.command(
        "admin", "set", "homeserver_admin_token", stdin=homeserver_admin.access_token + "\n"
    )
    assert code == 0, output
    await eventually(lambda: attempts() == [], what="the backlog drained to 0")
    await admin.wait_for_text(practice.admin_room, "works again", timeout=60)
    for url in uploads:
        assert await patient.media_status(url) == 404
    assert bot.query("SELECT status FROM media_ledger ORDER BY id") == [("deleted",), ("deleted",)]
    await admin.settled(practice.admin_room, quiet=6)
    assert len([text for text in admin.texts(practice.admin_room) if "keeps failing" in text]) == 1
    code, output = await bot.process.command("check")
    assert code == 0, output
