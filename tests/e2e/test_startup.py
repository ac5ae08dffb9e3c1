"""Start-up against a homeserver that is mistyped or not up yet: `init` fails fast naming the URL, and
`run` waits for the homeserver and then serves, with no restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.exit_codes import ExitCode
from devtools.demo.bot_process import SERVING, BotProcess
from devtools.local_homeserver import LOOPBACK, LocalHomeserver, pick_free_port
from tests.e2e.conftest import BotFactory, PersonFactory, unique
from tests.e2e.journey import open_chat

pytestmark = pytest.mark.e2e


async def _fresh_install(homeserver: LocalHomeserver, tmp_path: Path) -> BotProcess:
    """A bot account on the homeserver and settings for it; nothing initialised yet."""
    localpart = unique("photobot")
    user = await homeserver.register_user(localpart, f"pw-{localpart}")
    env = {
        "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
        "PHOTOBOT_USER_ID": user.user_id,
        "PHOTOBOT_PASSWORD": f"pw-{localpart}",
        "PHOTOBOT_DATA_DIR": str(tmp_path / localpart),
        "PHOTOBOT_TEST_MODE": "true",
    }
    return BotProcess(env, tmp_path / f"{localpart}.log")


async def test_init_against_a_port_nothing_listens_on_fails_fast_naming_the_url_and_creates_no_key(
    homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """`photobot init` with a wrong port says within 30 s that the URL cannot be reached, exits with the
    temporary-failure status, leaves no master key, and the corrected `init` then succeeds."""
    bot = await _fresh_install(homeserver, tmp_path)
    wrong = f"http://{LOOPBACK}:{pick_free_port()}"
    started = time.monotonic()
    code, output = await bot.command("init", extra_env={"PHOTOBOT_HOMESERVER_URL": wrong})
    assert time.monotonic() - started < 30
    assert code == ExitCode.TEMPORARY, output
    assert f"the homeserver at {wrong} cannot be reached" in output
    assert "Traceback" not in output
    assert not (Path(bot.env["PHOTOBOT_DATA_DIR"]) / "master.key").exists()
    code, output = await bot.command("init")
    assert code == 0, output
    assert "Created the master key" in output


async def test_init_with_https_against_a_plain_http_homeserver_is_a_configuration_error_naming_the_url(
    homeserver: LocalHomeserver, tmp_path: Path
) -> None:
    """`photobot init` with https:// for a homeserver that speaks http says the TLS handshake failed at that
    URL and exits with the configuration status (a restart would not help)."""
    bot = await _fresh_install(homeserver, tmp_path)
    wrong = homeserver.base_url.replace("http://", "https://")
    started = time.monotonic()
    code, output = await bot.command("init", extra_env={"PHOTOBOT_HOMESERVER_URL": wrong})
    assert time.monotonic() - started < 30
    assert code == ExitCode.CONFIG, output
    assert f"the homeserver at {wrong}: the TLS handshake failed" in output
    assert not (Path(bot.env["PHOTOBOT_DATA_DIR"]) / "master.key").exists()


@contextlib.asynccontextmanager
async def _forwarder(port: int, target: int) -> AsyncIterator[None]:
    """Opens `port` and relays each connection to `target`: the homeserver "comes up" at `port`."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks: set[asyncio.Task[None]] = set()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(LOOPBACK, target)
        for task in (pipe(client_reader, server_writer), pipe(server_reader, client_writer)):
            tasks.add(asyncio.create_task(task))

    server = await asyncio.start_server(relay, LOOPBACK, port)
    try:
        yield
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_run_started_before_the_homeserver_waits_and_then_serves_without_a_restart(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver
) -> None:
    """`photobot run` started while its homeserver's URL does not answer logs that it is waiting, keeps
    running, and greets a patient once the homeserver answers there, in the same process."""
    bot = await make_bot(start=False)
    port = pick_free_port()
    await bot.process.start(extra_env={"PHOTOBOT_HOMESERVER_URL": f"http://{LOOPBACK}:{port}"}, wait=False)
    offset = 0
    await bot.process._wait_for_log("waiting for the homeserver", offset)
    pid = bot.process.pid
    assert pid is not None
    assert SERVING not in bot.process.log_text()
    async with _forwarder(port, homeserver.port):
        await bot.process._wait_for_log(SERVING, offset, timeout=90)
        patient = await make_person("patient")
        await open_chat(patient, bot)
        assert bot.process.pid == pid and bot.process.runs == 1
        await bot.process.stop()
    log_text = bot.process.log_text()
    assert f"the homeserver at http://{LOOPBACK}:{port} answers now" in log_text
