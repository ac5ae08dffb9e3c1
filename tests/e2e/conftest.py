"""End-to-end fixtures: a real Synapse for the whole session, the real bot as a process, real nio people."""

from __future__ import annotations

import io
import itertools
import os
import re
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, cast

import psycopg
import pytest
from PIL import Image, UnidentifiedImageError

from bot.ids import UserID
from bot.keyring import Keyring, MasterKeyError, load_master_key_file
from bot.leak_scan import scan_bytes, scan_log_text, scan_paths
from devtools.demo.bot_process import BotProcess
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver, RegisteredUser, default_synapse_python
from devtools.object_store import ObjectStore
from storage.s3_vault import S3Location, S3Vault
from storage.vault import ImageVault, Vault
from tests.support.servers import Bucket

if TYPE_CHECKING:
    from devtools.postgres import PostgresServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}x{secrets.token_hex(3)}"


@dataclass
class LeakScanTargets:
    """What the session's leak scan covers, and the master key files: the only files allowed a master key."""

    paths: list[Path] = field(default_factory=list)
    master_keys: list[Path] = field(default_factory=list)
    object_stores: list[Path] = field(default_factory=list)  # their data directories: every object's bytes


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
    temporary directory and log, the people's stores), each bot's master key file and, once a bot ran on
    postgres+s3, the object store's data directory (SeaweedFS's volume files hold every object's bytes). An
    image, NHS number or key found in clear fails the session, with the list of where (never what).
    """
    targets = LeakScanTargets()
    yield targets
    keys = sorted(key for key in set(targets.master_keys) if key.exists())
    try:
        report = scan_paths(sorted(set(targets.paths) | set(targets.object_stores)), keys)
    except MasterKeyError as error:
        pytest.fail(f"the leak scan cannot use a bot's master key file: {error}", pytrace=False)
    problems = [str(finding) for finding in report.findings] + [f"not scanned: {p}" for p in report.problems]
    pytestconfig.stash[LEAK_SCAN_SUMMARY] = (
        f"leak scan: {report.files} files, {report.bytes / 1e6:.1f} MB (bot data, temp files, logs, homeserver "
        f"database and media store{', object store' if targets.object_stores else ''}), "
        f"{len(report.findings)} finding(s), {len(report.problems)} not scanned"
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


StorageBackend: TypeAlias = Literal["sqlite", "postgres+s3"]
SQLITE: Final = "sqlite"
POSTGRES_S3: Final = "postgres+s3"
STORAGE_BACKENDS: Final[tuple[StorageBackend, ...]] = ("sqlite", "postgres+s3")
# Runs a test once per backend: the embedded default (SQLite file, vault folder) and PostgreSQL + S3.
BOTH_BACKENDS = pytest.mark.parametrize("storage_backend", STORAGE_BACKENDS, indirect=True)
NIO_STORE: Final = "nio-store"  # matrix-nio's own encryption store, always a SQLite file in the data dir
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SQLITE_SUFFIXES: Final = (".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".sqlite3-journal")
_NEUTRAL_OBJECT_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}\.enc")
_VAULT_MAGIC: Final = b"PBIM"
_IMAGE_MAGICS: Final = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM")


@pytest.fixture
def storage_backend(request: pytest.FixtureRequest) -> StorageBackend:
    """Where the bots of a test keep their state: "sqlite" (the default: a SQLite file and a vault folder in
    the data directory) or "postgres+s3" (each bot: a fresh database of the suite's PostgreSQL and a prefix
    of its own in the session's bucket of its SeaweedFS). A test runs on both with `BOTH_BACKENDS`; PHOTOBOT_E2E_STORAGE_BACKEND sets the
    default for a whole run (to try every end-to-end test on the other backend by hand)."""
    chosen = getattr(request, "param", os.environ.get("PHOTOBOT_E2E_STORAGE_BACKEND", SQLITE))
    if chosen not in STORAGE_BACKENDS:
        raise ValueError(f"unknown storage backend {chosen!r}: one of {', '.join(STORAGE_BACKENDS)}")
    return cast("StorageBackend", chosen)


@dataclass(frozen=True)
class ObjectVault:
    """A postgres+s3 bot's vault: its prefix in a bucket of the suite's object store, read as an operator
    with the store's credentials would."""

    store: ObjectStore
    bucket: str
    prefix: str

    @property
    def location(self) -> S3Location:
        store = self.store
        return S3Location(
            self.bucket, self.prefix, store.endpoint, store.access_key, store.secret_key, store.region
        )

    def names(self) -> list[str]:
        """Every object under the prefix, by its name below the prefix."""
        client = self.store.client()
        names: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/"
        ):
            names += [item["Key"].removeprefix(f"{self.prefix}/") for item in page.get("Contents", [])]
        return sorted(names)

    def read(self, name: str) -> bytes:
        response = self.store.client().get_object(Bucket=self.bucket, Key=f"{self.prefix}/{name}")
        return bytes(response["Body"].read())


@dataclass
class BotUnderTest:
    process: BotProcess
    user_id: UserID
    data_dir: Path
    database_url: str | None = None  # PHOTOBOT_DATABASE_URL on postgres+s3; None: the SQLite file
    object_vault: ObjectVault | None = None  # where PHOTOBOT_VAULT_URL points on postgres+s3

    @property
    def backend(self) -> StorageBackend:
        return POSTGRES_S3 if self.database_url is not None else SQLITE

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Query the bot's database from outside, as an operator (or a disk fault) would; writes are committed.

        Written with SQLite's `?` placeholders; on PostgreSQL they become psycopg's `%s`.
        """
        if self.database_url is not None:
            with psycopg.connect(self.database_url) as postgres:
                cursor = postgres.execute(
                    sql.replace("%", "%%").replace("?", "%s") if params else sql, params or None
                )
                return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        connection = sqlite3.connect(self.data_dir / "photobot.sqlite3", timeout=10)
        try:
            rows = list(connection.execute(sql, params).fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()

    @property
    def master_key_file(self) -> Path:
        return Path(self.process.env.get("PHOTOBOT_MASTER_KEY_FILE", str(self.data_dir / "master.key")))

    def vault(self) -> ImageVault:
        """The bot's image vault, opened with its master key as an operator could."""
        keyring = Keyring(load_master_key_file(self.master_key_file))
        if self.object_vault is not None:
            return S3Vault(self.object_vault.location, keyring)
        return Vault(self.data_dir / "vault", keyring)

    def vault_entries(self) -> list[str]:
        """What the vault holds, by name: one file (or object) per stored image."""
        if self.object_vault is not None:
            return self.object_vault.names()
        return sorted(path.name for path in (self.data_dir / "vault").glob("*"))

    def own_sqlite_files(self) -> list[Path]:
        """SQLite files in the bot's data and temporary directories other than nio's own store."""
        found = []
        for directory in (self.data_dir, Path(self.process.env["TMPDIR"])):
            for path in sorted(directory.rglob("*")):
                if not path.is_file() or path.is_symlink() or NIO_STORE in path.relative_to(directory).parts:
                    continue
                with path.open("rb") as handle:
                    header = handle.read(len(_SQLITE_MAGIC))
                if path.name.endswith(_SQLITE_SUFFIXES) or header == _SQLITE_MAGIC:
                    found.append(path)
        return found


def not_ciphertext(vault: ObjectVault) -> list[str]:
    """The bucket objects of a bot that are not what the vault writes (why, by name; never their bytes):
    a name that is not a neutral `<image id>.enc`, a body without the vault's header, an image's magic,
    anything the leak scan finds (image structure, NHS number), or bytes an image decoder opens."""
    problems = []
    for name in vault.names():
        body = vault.read(name)
        if not _NEUTRAL_OBJECT_NAME.fullmatch(name):
            problems.append(f"{name}: not a neutral object name")
        if not body.startswith(_VAULT_MAGIC) or body.startswith(_IMAGE_MAGICS):
            problems.append(f"{name}: not the vault's ciphertext format")
        problems += [f"{name}: offset {offset}: {kind.value}" for offset, kind in scan_bytes(body)]
        try:
            with Image.open(io.BytesIO(body)) as image:
                problems.append(f"{name}: decodes as a {image.format} image")
        except (UnidentifiedImageError, OSError, ValueError):
            pass
    return problems


BotFactory = Callable[..., Awaitable[BotUnderTest]]
PersonFactory = Callable[[str], Awaitable[Person]]


@pytest.fixture(scope="session")
def e2e_bucket(object_store: ObjectStore) -> Bucket:
    """One bucket for the session's bots on postgres+s3, each under a prefix of its own (its user's localpart).

    Not a bucket per test: SeaweedFS gives each bucket volumes of its own, and runs out after a few dozen.
    """
    return Bucket(object_store, object_store.create_bucket("photobot-e2e-" + secrets.token_hex(4)))


@pytest.fixture
async def make_bot(  # noqa: PLR0917 (pytest passes fixtures by name)
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    tmp_path: Path,
    leak_scan_targets: LeakScanTargets,
    storage_backend: StorageBackend,
    request: pytest.FixtureRequest,
) -> AsyncIterator[BotFactory]:
    """Makes bots (real `photobot` processes) for the test; on postgres+s3 each bot gets a database of its own
    and a prefix of the session's bucket, and is checked after the test: no SQLite file of its own in its data
    directory (nio's store is nio's and stays there) and only ciphertext in its bucket prefix."""
    bots: list[BotUnderTest] = []
    databases: list[str] = []
    leak_scan_targets.paths.append(tmp_path)

    def backend_environment(localpart: str) -> tuple[dict[str, str], str | None, ObjectVault | None]:
        if storage_backend == SQLITE:
            return {}, None, None
        server: PostgresServer = request.getfixturevalue("postgres_server")
        bucket: Bucket = request.getfixturevalue("e2e_bucket")
        database = f"photobot_{localpart}"
        database_url = server.create_database(database)
        databases.append(database)
        leak_scan_targets.object_stores.append(bucket.store.data_dir)
        env = {"PHOTOBOT_DATABASE_URL": database_url} | bucket.environment(localpart)
        return env, database_url, ObjectVault(bucket.store, bucket.name, localpart)

    async def make(
        start: bool = True, purge: bool = True, program: tuple[str, ...] | None = None, **settings: str
    ) -> BotUnderTest:
        localpart = unique("photobot")
        password = f"pw-{localpart}"
        user = await homeserver.register_user(localpart, password)
        data_dir = tmp_path / localpart
        temp_dir = tmp_path / f"{localpart}-tmp"  # the bot's temporary files land here, to be leak-scanned
        temp_dir.mkdir(mode=0o700)
        backend_env, database_url, object_vault = backend_environment(localpart)
        env = {
            "TMPDIR": str(temp_dir),
            "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
            "PHOTOBOT_USER_ID": user.user_id,
            "PHOTOBOT_PASSWORD": password,
            "PHOTOBOT_DATA_DIR": str(data_dir),
            "PHOTOBOT_PRACTICE_NAME": "Riverside Surgery",
            "PHOTOBOT_TEST_MODE": "true",
            "PHOTOBOT_LOG_LEVEL": "INFO",
        } | backend_env
        if purge:
            env["PHOTOBOT_HOMESERVER_ADMIN_TOKEN"] = homeserver_admin.access_token
        env |= {f"PHOTOBOT_{key.upper()}": value for key, value in settings.items()}
        log_path = tmp_path / f"{localpart}.log"
        process = BotProcess(env, log_path) if program is None else BotProcess(env, log_path, program=program)
        bot = BotUnderTest(process, UserID(user.user_id), data_dir, database_url, object_vault)
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
        leak_scan_targets.master_keys += [bot.master_key_file for bot in bots]
        # Log hygiene: no NHS number, media URL, attachment key or nio event repr in any line a bot wrote.
        unclean = [
            str(f) for bot in bots for f in scan_log_text(bot.process.log_text(), bot.process.log_path)
        ]
        # Off the embedded default, nothing of the bot's own state is a local file: no SQLite database of its
        # own (nio's store stays, see NIO_STORE), and the bucket holds only the vault's ciphertext.
        misplaced = [
            f"{bot.user_id}: {problem}"
            for bot in bots
            if bot.backend == POSTGRES_S3
            for problem in [
                *(f"a SQLite file of the bot's own: {path}" for path in bot.own_sqlite_files()),
                *(not_ciphertext(bot.object_vault) if bot.object_vault is not None else []),
            ]
        ]
        if databases:
            server: PostgresServer = request.getfixturevalue("postgres_server")
            for database in databases:
                server.drop_database(database)
        if unclean:
            pytest.fail("a bot logged what it must never log:\n" + "\n".join(unclean), pytrace=False)
        if misplaced:
            pytest.fail(
                "a bot on PostgreSQL + S3 kept state where it must not:\n" + "\n".join(misplaced),
                pytrace=False,
            )


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
