"""`photobot key rotate` on a real installation: every image, sealed value, look-up hash, the audit key, the
deletion ledger and nio's store move to a new master key; a kill at any image loses nothing; the old key is
destroyed only once everything reads under the new one.

Kills are real: `photobot key rotate` runs as a child process with PHOTOBOT_FAULT_POINTS=mid_key_rotation@N,
which ends it with os._exit (as abrupt as SIGKILL) right after the N-th image key is committed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from nio.store.database import MatrixStore

from bot.exit_codes import ExitCode
from bot.faults import FAULT_EXIT_CODE
from bot.key_rotation import KeyRotationError, next_key_path, previous_key_path, refuse_unfinished_rotation
from bot.keyring import (
    Keyring,
    KeyUnavailableError,
    MasterKey,
    Sealer,
    create_master_key_file,
    load_master_key_file,
)
from bot.maintenance_cli import rotate_key
from storage.account import AccountRepository
from storage.audit import AuditLog
from storage.conversations import ConversationRepository
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.media_ledger import MediaLedger
from storage.practice_config import ConfigRepository
from storage.rooms import RoomRepository
from storage.s3_vault import S3Vault
from storage.sealed_columns import columns_under_key
from storage.submissions import SubmissionRepository
from storage.vault import ImageUnreadableError, Vault
from tests.storage.installation import (
    ACCESS_TOKEN,
    ADMIN_TOKEN,
    BOT_DEVICE,
    BOT_USER,
    Installation,
    build_installation,
    environment,
)
from tests.support.servers import Bucket

if TYPE_CHECKING:
    from devtools.object_store import ObjectStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _rotate_process(installation: Installation, faults: str = "") -> subprocess.CompletedProcess[str]:
    """`photobot key rotate` as the operator runs it, in its own process."""
    extra = {"fault_points": faults} if faults else {}
    return _bot_process(installation, "key", "rotate", **extra)


def _bot_process(installation: Installation, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHOTOBOT_")}
    env |= environment(installation.settings.data_dir, **settings) | installation.backend_environment
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=installation.settings.data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _keys(installation: Installation) -> dict[str, bytes]:
    database = await installation.open()
    try:
        async with database.connection.execute(
            "SELECT photo_id, wrapped_key, record_image_id, record_wrapped_key FROM photos"
        ) as cursor:
            rows = await cursor.fetchall()
    finally:
        await database.close()
    keys = {str(row[0]): bytes(row[1]) for row in rows if row[1]}
    keys |= {str(row[2]): bytes(row[3]) for row in rows if row[2]}
    return keys


def _unreadable(installation: Installation, keys: dict[str, bytes], keyring: Keyring) -> list[str]:
    vault = installation.vault(keyring)
    bad = []
    for image_id, wrapped in keys.items():
        try:
            if vault.get(image_id, wrapped) != installation.images[image_id]:
                bad.append(image_id)
        except ImageUnreadableError:
            bad.append(image_id)
    return bad


def _both_keys(installation: Installation) -> Keyring:
    """Whatever keys the rotation's files hold right now: the configured one and P.next / P.previous."""
    keys = [load_master_key_file(installation.key_file)]
    for path in (next_key_path(installation.key_file), previous_key_path(installation.key_file)):
        if path.exists():
            keys.append(load_master_key_file(path))
    return Keyring(keys[0], previous=keys[1:])


@pytest.fixture
async def installation(tmp_path: Path) -> Installation:
    return await build_installation(tmp_path)


@pytest.fixture(scope="module")
def rotation_bucket(object_store: ObjectStore) -> Bucket:
    """One bucket for the module, a prefix per test (a bucket per test would use up SeaweedFS's volumes)."""
    return Bucket(object_store, object_store.create_bucket("photobot-rotation-" + secrets.token_hex(4)))


async def _installation_on(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Installation:
    url = request.getfixturevalue("postgres_url") if backend.startswith("postgres") else None
    vault = None
    if backend.endswith("+s3"):
        vault = request.getfixturevalue("rotation_bucket").environment("p" + secrets.token_hex(6))
    return await build_installation(tmp_path, database_url=url, vault_environment=vault)


@pytest.fixture(params=["sqlite", "postgresql", "postgres+s3"])
async def installation_on_each_engine(tmp_path: Path, request: pytest.FixtureRequest) -> Installation:
    return await _installation_on(str(request.param), tmp_path, request)


@pytest.fixture(params=["sqlite", "postgres+s3"])
async def installation_on_each_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Installation:
    """The embedded default, and PostgreSQL with the vault in an S3 bucket."""
    return await _installation_on(str(request.param), tmp_path, request)


async def test_rotation_moves_everything_to_the_new_key_and_destroys_the_old_one(
    installation_on_each_engine: Installation,
) -> None:
    """After a rotation every photo, sealed value, look-up, the audit log, the ledger and nio's account read
    under the new key alone; the old key file is gone and nothing in the database names the old key."""
    installation = installation_on_each_engine
    old = load_master_key_file(installation.key_file)
    said: list[str] = []
    assert await rotate_key(installation.settings, installation.clock, said.append) == 0

    new = load_master_key_file(installation.key_file)
    assert new.key_id != old.key_id
    assert not next_key_path(installation.key_file).exists()
    assert not previous_key_path(installation.key_file).exists()
    alone = Keyring(new)
    keys = await _keys(installation)
    assert len(keys) == len(installation.images)
    assert _unreadable(installation, keys, alone) == []
    with pytest.raises(KeyUnavailableError):
        Keyring(old).unwrap_key(next(iter(keys.values())), aad=b"anything")

    database = await installation.open()
    try:
        sealer = Sealer(alone)
        account = await AccountRepository(database, sealer, installation.clock).load()
        assert (
            account is not None and account.access_token == ACCESS_TOKEN and account.cross_signing is not None
        )
        overrides = await ConfigRepository(database, sealer, installation.clock).overrides()
        assert overrides["homeserver_admin_token"] == ADMIN_TOKEN
        rooms = RoomRepository(database, alone, sealer, installation.clock)
        for room_id, member in installation.members.items():
            room = await rooms.get(room_id)
            assert room is not None and room.member == member
            assert await ConversationRepository(database, sealer).load(room_id) is not None
        submissions = SubmissionRepository(database, sealer)
        for submission_id, nhs_number in installation.submissions.items():
            assert await submissions.nhs_number(submission_id) == nhs_number
            submission = await submissions.by_id(submission_id)
            assert submission is not None and submission.description is not None and submission.decision
        pending = await MediaLedger(database, alone, sealer, installation.clock).pending()
        assert sorted(entry.url for entry in pending) == sorted(installation.media_urls)
        assert all(entry.owner == installation.members[entry.room_id] for entry in pending)
        # Look-ups made with the new key find the rows: the hashes were recomputed, not left stale.
        async with database.connection.execute("SELECT nhs_lookup FROM submissions") as cursor:
            lookups = {str(row[0]) for row in await cursor.fetchall()}
        assert lookups == {
            alone.lookup_hash(n, purpose="nhs-number") for n in installation.submissions.values()
        }
        async with database.connection.execute("SELECT member_lookup FROM rooms") as cursor:
            members = {str(row[0]) for row in await cursor.fetchall()}
        assert members == {alone.lookup_hash(m, purpose="room-member") for m in installation.members.values()}
        async with database.connection.execute("SELECT patient_lookup FROM photo_requests") as cursor:
            patients = {str(row[0]) for row in await cursor.fetchall()}
        assert patients == {
            alone.lookup_hash(p, purpose="room-member") for p in installation.requests.values()
        }
        # The keyed digest of each image is the new key's: the same photo stored again is recognised.
        probe = Vault(installation.settings.data_dir / "probe", alone)
        async with database.connection.execute("SELECT photo_id, digest FROM photos") as cursor:
            for photo_id, digest in await cursor.fetchall():
                assert probe.put("probe", installation.images[str(photo_id)]).digest == digest
        report = await AuditLog(database, alone, installation.clock).verify()
        assert report.ok and report.entries == len(installation.submissions)
        assert await columns_under_key(database, old.key_id) == {}
    finally:
        await database.close()

    contents = installation.ledger(alone).read()
    assert [entry.image_ids for entry in contents.entries] == [
        ("long-gone-photo",)
    ] and contents.rejected == 0
    store = MatrixStore(
        BOT_USER, BOT_DEVICE, str(installation.settings.store_dir), pickle_key=alone.nio_pickle_passphrase()
    )
    try:
        account_keys = store.load_account()
        assert (
            account_keys is not None and account_keys.identity_keys["curve25519"] == installation.nio_identity
        )
        assert len(list(store.load_inbound_group_sessions())) == 1
    finally:
        store.database.close()
    assert any("destroyed" in line for line in said)


async def test_a_rotation_killed_half_way_keeps_every_image_readable_and_finishes_when_run_again(
    installation_on_each_backend: Installation,
) -> None:
    """Killed after half the image keys, the rotation leaves every photo readable and the old key in place;
    the bot refuses to start; run again, it finishes with 0 unreadable images and the old key destroyed.
    In a bucket, not one object is rewritten: only the keys in the database are re-wrapped."""
    installation = installation_on_each_backend
    old = load_master_key_file(installation.key_file)
    stored_before = _stored_objects(installation)
    half = len(installation.images) // 2
    killed = await _rotate(installation, f"mid_key_rotation@{half}")
    assert killed.returncode == FAULT_EXIT_CODE, killed.stderr

    keys = await _keys(installation)
    under_new = [wrapped for wrapped in keys.values() if Keyring.key_id_of(wrapped) != old.key_id]
    assert len(under_new) == half, "each re-wrapped key was committed before the kill"
    assert load_master_key_file(installation.key_file).key_id == old.key_id, "the old key is still configured"
    assert _unreadable(installation, keys, _both_keys(installation)) == []
    with pytest.raises(KeyRotationError, match="unfinished"):
        await _refuse(installation)
    bot = await asyncio.to_thread(_bot_process, installation, "run")
    assert bot.returncode == ExitCode.CONFIG and "rotation" in bot.stderr and "unfinished" in bot.stderr
    admin = await asyncio.to_thread(_bot_process, installation, "admin", "set", "max_photos", "3")
    assert admin.returncode == ExitCode.CONFIG and "unfinished" in admin.stdout + admin.stderr, (
        "no value sealed mid-rotation"
    )

    finished = await _rotate(installation)
    assert finished.returncode == 0, finished.stderr + finished.stdout
    new = load_master_key_file(installation.key_file)
    assert new.key_id != old.key_id
    assert not previous_key_path(installation.key_file).exists()
    assert _unreadable(installation, await _keys(installation), Keyring(new)) == []
    await _refuse(installation)  # finished: the bot may start
    assert _stored_objects(installation) == stored_before


def _stored_objects(installation: Installation) -> dict[str, bytes]:
    """Every image's stored bytes, by id (the objects of a bucket vault; files otherwise)."""
    vault = installation.vault()
    if isinstance(vault, S3Vault):
        return {image: vault.read_object(image) or b"" for image in vault.image_ids()}
    return {path.stem: path.read_bytes() for path in installation.settings.vault_dir.glob("*.enc")}


async def test_killed_after_every_single_image_the_rotation_still_completes_with_nothing_lost(
    installation: Installation,
) -> None:
    """A rotation killed right after each image key (one kill per image: 15 kills) never loses a photo:
    after every kill all photos read under the keys on disk, and the last run destroys the old key."""
    old = load_master_key_file(installation.key_file)
    kills = 0
    while True:
        result = await _rotate(installation, "mid_key_rotation@1")
        if result.returncode == 0:
            break
        assert result.returncode == FAULT_EXIT_CODE, result.stderr
        kills += 1
        assert previous_key_path(installation.key_file).exists() is False
        assert load_master_key_file(installation.key_file).key_id == old.key_id
        assert _unreadable(installation, await _keys(installation), _both_keys(installation)) == []
        assert kills <= len(installation.images), "each run makes progress"
    assert kills == len(installation.images)
    new = load_master_key_file(installation.key_file)
    assert _unreadable(installation, await _keys(installation), Keyring(new)) == []
    assert not previous_key_path(installation.key_file).exists()


async def test_kills_at_uneven_points_then_a_clean_run_finish_the_rotation(
    installation: Installation,
) -> None:
    """Killed at the 3rd, then 5th, then 2nd image of successive runs, the rotation resumes where it was
    each time (no image re-wrapped twice is lost) and a final run completes under the new key alone."""
    old = load_master_key_file(installation.key_file)
    done = 0
    for point in (3, 5, 2, 3):
        result = await _rotate(installation, f"mid_key_rotation@{point}")
        assert result.returncode == FAULT_EXIT_CODE, result.stderr
        done += point
        assert load_master_key_file(installation.key_file).key_id == old.key_id
        assert not previous_key_path(installation.key_file).exists()
        keys = await _keys(installation)
        assert sum(Keyring.key_id_of(w) != old.key_id for w in keys.values()) == done
        assert _unreadable(installation, keys, _both_keys(installation)) == []
    assert (await _rotate(installation)).returncode == 0
    new = load_master_key_file(installation.key_file)
    assert _unreadable(installation, await _keys(installation), Keyring(new)) == []


async def test_a_rotation_killed_after_installing_the_new_key_finishes_by_destroying_the_old_one(
    installation: Installation,
) -> None:
    """If the process dies after the new key is in place but before the old one is destroyed (simulated by
    doing the installation's two renames by hand), the next run checks everything again and finishes."""
    old = load_master_key_file(installation.key_file)
    await rotate_key_killed_at(installation, 4)
    key_file = installation.key_file
    os.link(key_file, previous_key_path(key_file))
    next_key_path(key_file).replace(key_file)  # P.next -> P, P.previous holds the old key

    said: list[str] = []
    assert await rotate_key(installation.settings, installation.clock, said.append) == 0
    new = load_master_key_file(key_file)
    assert new.key_id != old.key_id and not previous_key_path(key_file).exists()
    assert _unreadable(installation, await _keys(installation), Keyring(new)) == []


async def test_an_unreadable_image_stops_the_rotation_before_the_old_key_is_destroyed(
    installation: Installation,
) -> None:
    """A damaged image file makes verification fail: the rotation stops, the old key stays configured, the
    bot still refuses to start, and nothing else is lost."""
    old = load_master_key_file(installation.key_file)
    damaged = sorted(installation.images)[0]
    path = installation.settings.vault_dir / f"{damaged}.enc"
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x01
    path.write_bytes(bytes(content))

    with pytest.raises(KeyRotationError, match="old master key is kept"):
        await rotate_key(installation.settings, installation.clock, lambda line: None)
    assert load_master_key_file(installation.key_file).key_id == old.key_id
    keys = await _keys(installation)
    assert _unreadable(installation, keys, _both_keys(installation)) == [damaged]
    with pytest.raises(KeyRotationError, match="unfinished"):
        await _refuse(installation)


async def test_rotation_refuses_while_the_bot_holds_the_data_directory(installation: Installation) -> None:
    """While the bot runs (it holds the data-directory lock) a rotation refuses and changes nothing."""
    old = load_master_key_file(installation.key_file)
    with DataDirLock.acquire(installation.settings.data_dir, "the bot (photobot run)"):
        result = await _rotate(installation)
        with pytest.raises(DataDirBusyError):
            await rotate_key(installation.settings, installation.clock, lambda line: None)
    assert result.returncode == ExitCode.TEMPORARY and "in use by the bot" in result.stderr
    assert load_master_key_file(installation.key_file).key_id == old.key_id
    assert not next_key_path(installation.key_file).exists()


async def test_a_new_key_left_by_a_run_killed_before_it_recorded_itself_is_adopted(
    installation: Installation,
) -> None:
    """A P.next written by a run that died before recording the rotation is used, not a second new key."""
    left_behind: MasterKey = create_master_key_file(next_key_path(installation.key_file))
    await rotate_key(installation.settings, installation.clock, lambda line: None)
    assert load_master_key_file(installation.key_file).key_id == left_behind.key_id


async def test_a_value_sealed_in_a_column_rotation_does_not_know_keeps_the_old_key(
    installation: Installation,
) -> None:
    """A value under the master key in a column missing from the registry stops the rotation before it
    changes anything: nothing could re-seal it, so destroying the old key would lose it."""
    old = load_master_key_file(installation.key_file)
    database = await installation.open()
    try:
        async with database.transaction() as db:
            await db.execute("CREATE TABLE future_feature (id INTEGER PRIMARY KEY, secret BLOB)")
            await db.execute(
                "INSERT INTO future_feature (secret) VALUES (?)",
                (Sealer(Keyring(old)).seal(b"synthetic", context="future"),),
            )
    finally:
        await database.close()
    with pytest.raises(KeyRotationError, match=r"future_feature\.secret"):
        await rotate_key(installation.settings, installation.clock, lambda line: None)
    assert load_master_key_file(installation.key_file).key_id == old.key_id
    assert not next_key_path(installation.key_file).exists()
    await _refuse(installation)  # nothing was started


# ---- helpers ------------------------------------------------------------------------------------------


async def _refuse(installation: Installation) -> None:
    database = await installation.open()
    try:
        await refuse_unfinished_rotation(database)
    finally:
        await database.close()


async def _rotate(installation: Installation, faults: str = "") -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_rotate_process, installation, faults)


async def rotate_key_killed_at(installation: Installation, image: int) -> None:
    result = await _rotate(installation, f"mid_key_rotation@{image}")
    assert result.returncode == FAULT_EXIT_CODE, result.stderr
