"""The Matrix core against a real Synapse: greeting, exactly-once handling, gaps, faults, keys, identity."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp
import nio
import pytest
from nio.api import RoomPreset

from bot.cross_signing import verify_json
from bot.exit_codes import ExitCode
from bot.faults import FAULT_EXIT_CODE
from bot.ids import RoomID
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver
from tests.e2e.conftest import BOTH_BACKENDS, BotFactory, PersonFactory
from tests.e2e.workspace import open_practice

pytestmark = pytest.mark.e2e

NHS_NUMBER = "999 765 4323"  # a synthetic test-range number (valid check digit), accepted only in test mode


async def _greeted(patient: Person, bot_user: str) -> RoomID:
    room_id = await patient.open_direct_chat(bot_user)  # type: ignore[arg-type]
    await patient.wait_for_text(room_id, "NHS number")
    assert "Riverside Surgery" in patient.seen[room_id][0].body
    await patient.settled(room_id)
    return room_id


async def test_patient_is_greeted_and_answered_in_an_encrypted_chat(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A patient opens an encrypted chat; the bot joins, greets by practice name and answers, all decryptable."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await _greeted(patient, bot.user_id)
    greeting = len(patient.seen[room_id])
    await patient.say(room_id, NHS_NUMBER)
    await patient.wait_for_text(room_id, "999 765 4323", after=greeting)  # read back for confirmation
    seen = patient.seen[room_id]
    assert all(message.kind == "text" and message.encrypted for message in seen), (
        "every bot message arrived encrypted and decrypted on the patient's phone"
    )
    assert patient.client.rooms[room_id].encrypted


@pytest.mark.parametrize("fault_point", ["before_commit", "after_commit", "after_send_before_outbox_done"])
async def test_a_message_interrupted_by_a_crash_is_handled_exactly_once(
    make_bot: BotFactory, make_person: PersonFactory, fault_point: str
) -> None:
    """The bot is killed mid-handling; after a restart the message has one reply and one record."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await _greeted(patient, bot.user_id)
    await bot.process.stop()
    await bot.process.start(extra_env={"PHOTOBOT_FAULT_POINTS": fault_point})
    event_id = await patient.say(room_id, NHS_NUMBER)
    assert await bot.process.wait_exit() == FAULT_EXIT_CODE
    await bot.process.start()
    await patient.wait_for_text(room_id, "999 765 4323")
    await asyncio.sleep(3)  # time for a duplicate to arrive, if the bot were to send one
    read_backs = [text for text in patient.texts(room_id) if "999 765 4323" in text]
    assert len(read_backs) == 1
    assert bot.query("SELECT COUNT(*) FROM handled_events WHERE event_id = ?", (event_id,)) == [(1,)]
    assert bot.query("SELECT state FROM conversations WHERE room_id = ?", (room_id,)) == [
        ("confirming_nhs_number",)
    ]


@BOTH_BACKENDS  # the checkpoint and the handled events are rows: resuming after a restart is the database's
async def test_messages_sent_while_the_bot_was_down_are_all_handled_once(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """150 messages sent while the bot is stopped are each handled exactly once after it starts."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await _greeted(patient, bot.user_id)
    greeting = len(patient.seen[room_id])
    await bot.process.stop()
    sent = [await patient.say(room_id, f"hello number {index}") for index in range(150)]
    await bot.process.start()
    await patient.wait_for(room_id, greeting + 150, timeout=120)
    handled = {
        row[0] for row in bot.query("SELECT event_id FROM handled_events WHERE room_id = ?", (room_id,))
    }
    assert set(sent) <= handled
    await asyncio.sleep(2)
    assert len(patient.seen[room_id]) == greeting + 150  # one answer per message, none twice


async def test_one_patients_broken_conversation_does_not_stop_the_bot_for_another(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A handler that fails on one patient's event still answers that patient kindly, and serves the next."""
    bot = await make_bot()
    first, second = await make_person("patient"), await make_person("patient")
    first_room = await _greeted(first, bot.user_id)
    second_room = await _greeted(second, bot.user_id)
    bot.query("UPDATE conversations SET data = x'00' WHERE room_id = ?", (first_room,))
    await first.say(first_room, NHS_NUMBER)
    failure = await first.wait_for_text(first_room, "went wrong")
    assert "went wrong" in failure.body and "ref" in failure.body.lower()
    await second.say(second_room, NHS_NUMBER)
    await second.wait_for_text(second_room, "999 765 4323")


async def test_a_new_device_reaches_the_bot_after_its_one_time_keys_are_exhausted(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver
) -> None:
    """Another account claims every one-time key; a brand-new patient device can still start a chat."""
    bot = await make_bot()
    thief = await make_person("claimer")
    device_id = bot.query("SELECT device_id FROM bot_account")[0][0]
    claimed = 0
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {thief.client.access_token}"}
        body = {"one_time_keys": {bot.user_id: {device_id: "signed_curve25519"}}}
        for _ in range(200):
            async with http.post(
                f"{homeserver.base_url}/_matrix/client/v3/keys/claim", json=body, headers=headers
            ) as r:
                keys = (await r.json())["one_time_keys"].get(bot.user_id, {}).get(device_id, {})
            if not keys or any(value.get("fallback") for value in keys.values()):
                break
            claimed += 1
    assert claimed >= 40, "the bot had one-time keys to lose"
    patient = await make_person("newphone")
    room_id = await _greeted(patient, bot.user_id)
    await patient.say(room_id, NHS_NUMBER)
    await patient.wait_for_text(room_id, "999 765 4323")


async def _query_keys(person: Person, homeserver: LocalHomeserver, user_id: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{homeserver.base_url}/_matrix/client/v3/keys/query",
            json={"device_keys": {user_id: []}},
            headers={"Authorization": f"Bearer {person.client.access_token}"},
        ) as response,
    ):
        result: dict[str, object] = await response.json()
    return result


def _only_key(key_object: dict[str, object]) -> tuple[str, str]:
    keys = key_object["keys"]
    assert isinstance(keys, dict) and len(keys) == 1
    key_id, value = next(iter(keys.items()))
    return str(key_id), str(value)


async def test_the_bots_device_is_cross_signed_and_keeps_its_identity_across_restarts(
    make_bot: BotFactory, make_person: PersonFactory, homeserver: LocalHomeserver
) -> None:
    """Master key signs the self-signing key, which signs the bot's device; a restart changes none of it."""
    bot = await make_bot()
    patient = await make_person("patient")

    async def chain() -> tuple[str, str, str]:
        keys = await _query_keys(patient, homeserver, bot.user_id)
        master = keys["master_keys"][bot.user_id]  # type: ignore[index]
        self_signing = keys["self_signing_keys"][bot.user_id]  # type: ignore[index]
        devices = keys["device_keys"][bot.user_id]  # type: ignore[index]
        assert len(devices) == 1
        ((device_id, device),) = devices.items()
        master_id, master_public = _only_key(master)
        ssk_id, ssk_public = _only_key(self_signing)
        assert verify_json(self_signing, user_id=bot.user_id, key_id=master_id, public_key=master_public)
        assert verify_json(device, user_id=bot.user_id, key_id=ssk_id, public_key=ssk_public)
        assert not verify_json(device, user_id=bot.user_id, key_id=ssk_id, public_key=master_public)
        return device_id, master_public, ssk_public

    before = await chain()
    await bot.process.stop()
    await bot.process.start()
    assert await chain() == before


def _loose_modes(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)} {oct(path.stat().st_mode & 0o777)}"
        for path in [root, *root.rglob("*")]
        if path.stat().st_mode & 0o077
    ]


async def test_data_is_private_and_a_bad_master_key_stops_start_up(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Store and data files are for the bot's user only; a missing or world-readable key refuses to start."""
    bot = await make_bot()
    patient = await make_person("patient")
    await _greeted(patient, bot.user_id)
    await bot.process.stop()
    assert _loose_modes(bot.data_dir) == []

    key_file = bot.data_dir / "master.key"
    key_file.chmod(0o644)
    code, output = await bot.process.command("run")
    assert code == ExitCode.CONFIG and "chmod 600" in output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o644, "the key file was left alone"

    key_bytes = key_file.read_bytes()
    key_file.unlink()
    before = sorted(str(p) for p in bot.data_dir.rglob("*"))
    code, output = await bot.process.command("run")
    assert code == ExitCode.CONFIG and "photobot init" in output
    assert not key_file.exists(), "no new key was generated in its place"
    assert sorted(str(p) for p in bot.data_dir.rglob("*")) == before

    key_file.write_bytes(key_bytes)
    key_file.chmod(0o600)
    await bot.process.start()


@BOTH_BACKENDS  # `photobot check` opens the database and the vault the URLs name
async def test_check_reports_a_valid_configuration(make_bot: BotFactory, make_person: PersonFactory) -> None:
    """`photobot check` on a practice with its rooms set up reaches the homeserver, names the bot's device
    and finds no problem."""
    bot = (await open_practice(make_bot, make_person)).bot
    code, output = await bot.process.command("check")
    assert code == 0, output
    device_id = bot.query("SELECT device_id FROM bot_account")[0][0]
    assert str(device_id) in output


async def test_a_chat_opened_without_encryption_gets_encryption_before_any_reply(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """A patient whose app opened an unencrypted chat gets it encrypted by the bot; no reply goes out in clear."""
    bot = await make_bot()
    patient = await make_person("patient")
    response = await patient.client.room_create(
        is_direct=True, invite=[bot.user_id], preset=RoomPreset.trusted_private_chat
    )
    assert isinstance(response, nio.RoomCreateResponse)
    room_id = RoomID(response.room_id)
    await patient.wait_for_text(room_id, "NHS number")
    assert patient.client.rooms[room_id].encrypted
    assert all(message.encrypted for message in patient.seen[room_id]), "not one message in clear"
