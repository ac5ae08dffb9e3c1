"""End-to-end fixtures: a real Synapse for the whole session, the real bot as a process, real nio people."""

from __future__ import annotations

import itertools
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.ids import UserID
from bot.keyring import MasterKeyError
from bot.leak_scan import scan_log_text, scan_paths
from devtools.demo.bot_process import BotProcess
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver, RegisteredUser, default_synapse_python

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}x{secrets.token_hex(3)}"


@dataclass
class LeakScanTargets:
    """What the session's leak scan covers, and the master key files: the only files allowed a master key."""

    paths: list[Path] = field(default_factory=list)
    master_keys: list[Path] = field(default_factory=list)


LEAK_SCAN_SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The leak scan's figures at the end of every run, so CI logs show what was scanned and found."""
    summary = config.stash.get(LEAK_SCAN_SUMMARY, None)
    if summary is not None:
        terminalreporter.write_line(summary)


@pytest.fixture(scope="session", autouse=True)
def leak_scan_targets(pytestconfig: pytest.Config) -> Iterator[LeakScanTargets]:
    """After the session, the leak scanner (`photobot leak-scan`) over everything the end-to-end tests made.

    The fixtures below register what they create: the homeserver's directory (its database, WAL and media
    store) and the temporary directory of every test with a bot or people in it (each bot's data directory,
    temporary directory and log, the people's stores), and each bot's master key file. An image, NHS number
    or key found in clear fails the session, with the list of where (never what).
    """
    targets = LeakScanTargets()
    yield targets
    keys = sorted(key for key in set(targets.master_keys) if key.exists())
    try:
        report = scan_paths(sorted(set(targets.paths)), keys)
    except MasterKeyError as error:
        pytest.fail(f"the leak scan cannot use a bot's master key file: {error}", pytrace=False)
    problems = [str(finding) for finding in report.findings] + [f"not scanned: {p}" for p in report.problems]
    pytestconfig.stash[LEAK_SCAN_SUMMARY] = (
        f"leak scan: {report.files} files, {report.bytes / 1e6:.1f} MB (bot data, temp files, logs, homeserver "
        f"database and media store), {len(report.findings)} finding(s), {len(report.problems)} not scanned"
    )
    if problems:
        pytest.fail(
            f"the leak scan of {report.files} files found {len(problems)} problem(s):\n"
            + "\n".join(problems),
            pytrace=False,
        )


@pytest.fixture(scope="session")
async def homeserver(
    tmp_path_factory: pytest.TempPathFactory, leak_scan_targets: LeakScanTargets
) -> AsyncIterator[LocalHomeserver]:
    server = LocalHomeserver(
        tmp_path_factory.mktemp("synapse"), synapse_python=default_synapse_python(PROJECT_ROOT)
    )
    leak_scan_targets.paths.append(server.base_dir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def homeserver_admin(homeserver: LocalHomeserver) -> RegisteredUser:
    return await homeserver.register_user("practiceadmin", "pw-practice-admin", admin=True)


@dataclass
class BotUnderTest:
    process: BotProcess
    user_id: UserID
    data_dir: Path

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Query the bot's database from outside, as an operator (or a disk fault) would; writes are committed."""
        connection = sqlite3.connect(self.data_dir / "photobot.sqlite3", timeout=10)
        try:
            rows = list(connection.execute(sql, params).fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()


BotFactory = Callable[..., Awaitable[BotUnderTest]]
PersonFactory = Callable[[str], Awaitable[Person]]


@pytest.fixture
async def make_bot(
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    tmp_path: Path,
    leak_scan_targets: LeakScanTargets,
) -> AsyncIterator[BotFactory]:
    bots: list[BotUnderTest] = []
    leak_scan_targets.paths.append(tmp_path)

    async def make(
        start: bool = True, purge: bool = True, program: tuple[str, ...] | None = None, **settings: str
    ) -> BotUnderTest:
        localpart = unique("photobot")
        password = f"pw-{localpart}"
        user = await homeserver.register_user(localpart, password)
        data_dir = tmp_path / localpart
        temp_dir = tmp_path / f"{localpart}-tmp"  # the bot's temporary files land here, to be leak-scanned
        temp_dir.mkdir(mode=0o700)
        env = {
            "TMPDIR": str(temp_dir),
            "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
            "PHOTOBOT_USER_ID": user.user_id,
            "PHOTOBOT_PASSWORD": password,
            "PHOTOBOT_DATA_DIR": str(data_dir),
            "PHOTOBOT_PRACTICE_NAME": "Riverside Surgery",
            "PHOTOBOT_TEST_MODE": "true",
            "PHOTOBOT_LOG_LEVEL": "INFO",
        }
        if purge:
            env["PHOTOBOT_HOMESERVER_ADMIN_TOKEN"] = homeserver_admin.access_token
        env |= {f"PHOTOBOT_{key.upper()}": value for key, value in settings.items()}
        log_path = tmp_path / f"{localpart}.log"
        process = BotProcess(env, log_path) if program is None else BotProcess(env, log_path, program=program)
        bot = BotUnderTest(process, UserID(user.user_id), data_dir)
        bots.append(bot)
        await bot.process.init()
        if start:
            await bot.process.start()
        return bot

    try:
        yield make
    finally:
        for bot in bots:
            await bot.process.kill()
            print(f"--- log of {bot.user_id}\n{bot.process.log_text()[-4000:]}")
        leak_scan_targets.master_keys += [
            Path(bot.process.env.get("PHOTOBOT_MASTER_KEY_FILE", str(bot.data_dir / "master.key")))
            for bot in bots
        ]
        # Log hygiene: no NHS number, media URL, attachment key or nio event repr in any line a bot wrote.
        unclean = [
            str(f) for bot in bots for f in scan_log_text(bot.process.log_text(), bot.process.log_path)
        ]
        if unclean:
            pytest.fail("a bot logged what it must never log:\n" + "\n".join(unclean), pytrace=False)


@pytest.fixture
async def make_person(
    homeserver: LocalHomeserver, tmp_path: Path, leak_scan_targets: LeakScanTargets
) -> AsyncIterator[PersonFactory]:
    people: list[Person] = []
    leak_scan_targets.paths.append(tmp_path)

    async def make(prefix: str) -> Person:
        localpart = unique(prefix)
        person = await Person.sign_up(homeserver, localpart, tmp_path / "stores" / localpart)
        people.append(person)
        return person

    try:
        yield make
    finally:
        for person in people:
            # Shown by pytest only when the test fails: what each person saw, in order.
            for room_id, seen in person.seen.items():
                print(f"--- {person.user_id} in {room_id}")
                for message in seen:
                    print(f"    [{message.kind}] {message.body[:160]!r}")
            await person.close()
