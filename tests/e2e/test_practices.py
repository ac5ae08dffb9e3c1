"""Two practices in one process (issue 17, acceptance 2), against the real homeserver.

Each practice has its own bot account and device, clinicians, room, master key and data directory under one
host directory, and one `photobot run` serves both. A clinician of practice A tries every clinician command
on practice B's submission (the answer to a photo request of B's clinician), from A's room, and gets exactly the answer a reference that never existed gets;
B's bot invited into A's room does not answer there. Then `photobot practice remove b`, while the host runs,
destroys B's key, rows and files, and A goes on serving.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bot.conversation.reference import reference_code
from bot.ids import RoomID, UserID
from bot.leak_scan import scan_log_text
from bot.practices import Host
from devtools.demo.bot_process import BotProcess
from devtools.demo.people import Person
from devtools.local_homeserver import LocalHomeserver, RegisteredUser
from tests.e2e.conftest import BotUnderTest, LeakScanTargets, PersonFactory, unique
from tests.e2e.journey import NHS_NUMBER, answer, send_photo, vault_files
from tests.e2e.workspace import encrypted_room, joined, submit
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.timeout(300)

# Every command a clinician may type (handlers/staff.py `command_table`, clinician role), each naming
# practice B's submission where it takes a reference. `!request` takes a person, not a reference.
REFERENCE_COMMANDS = (
    "!claim {ref}",
    "!view {ref}",
    "!keep {ref} needed for comparison",
    "!describe {ref} 2 cm oval patch, left forearm",
    "!crop {ref} 1 0 0 50 50",
    "!rotate {ref} 1 90",
    "!blur {ref} 1 0 0 10 10",
    "!export {ref}",
    "!consent {ref} teaching",
    "!share {ref} teaching",
    "!delete {ref} sent to the wrong practice",
    "!undo {ref}",
    "!audit {ref}",
)
LISTING_COMMANDS = ("!help", "!queue all", "!queue new", "!queue claimed", "!queue done")


class HostUnderTest:
    """`photobot run` serving a host directory, and `photobot practice ...` run against it."""

    def __init__(self, root: Path, log_path: Path, temp_dir: Path) -> None:
        self.host = Host(root)
        self.process = BotProcess(
            {"PHOTOBOT_HOST_DIR": str(root), "PHOTOBOT_LOG_LEVEL": "INFO", "TMPDIR": str(temp_dir)},
            log_path,
            program=(sys.executable, "-m", "bot"),
        )

    async def add(self, name: str, env_file: Path) -> None:
        code, output = await self.process.command("practice", "add", name, "--env-file", str(env_file))
        assert code == 0, output

    async def serving(self, name: str, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while f"[{name}] the bot is serving" not in self.process.log_text():
            assert loop.time() < deadline, (
                f"practice {name} did not start:\n{self.process.log_text()[-3000:]}"
            )
            await asyncio.sleep(0.1)

    def bot(self, name: str, user_id: str) -> BotUnderTest:
        return BotUnderTest(self.process, UserID(user_id), self.host.practice_dir(name))


@pytest.fixture
async def host(tmp_path: Path, leak_scan_targets: LeakScanTargets) -> AsyncIterator[HostUnderTest]:
    leak_scan_targets.paths.append(tmp_path)
    temp_dir = tmp_path / "host-tmp"
    temp_dir.mkdir(mode=0o700)
    served = HostUnderTest(tmp_path / "host", tmp_path / "host.log", temp_dir)
    served.host.root.mkdir(mode=0o700)
    try:
        yield served
    finally:
        await served.process.kill()
        print(f"--- log of the host\n{served.process.log_text()[-6000:]}")
        leak_scan_targets.master_keys += [
            served.host.practice_dir(name) / "master.key" for name in served.host.names()
        ]
        unclean = [str(f) for f in scan_log_text(served.process.log_text(), served.process.log_path)]
        if unclean:
            pytest.fail("the host logged what it must never log:\n" + "\n".join(unclean), pytrace=False)


async def _practice_env(
    tmp_path: Path,
    homeserver: LocalHomeserver,
    admin: RegisteredUser,
    name: str,
    clinician: Person,
) -> tuple[Path, str, RoomID]:
    """A bot account for the practice, its clinician room (the bot invited), and its settings file."""
    localpart = unique(f"photobot_{name}_")
    password = f"pw-{localpart}"
    bot = await homeserver.register_user(localpart, password)
    room = await encrypted_room(clinician, f"Clinicians of {name}", [bot.user_id])
    settings = {
        "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
        "PHOTOBOT_USER_ID": bot.user_id,
        "PHOTOBOT_PASSWORD": password,
        "PHOTOBOT_PRACTICE_NAME": f"{name.title()} Surgery",
        "PHOTOBOT_CLINICIANS": clinician.user_id,
        "PHOTOBOT_CLINICIAN_ROOMS": room,
        "PHOTOBOT_TEST_MODE": "true",
        "PHOTOBOT_HOMESERVER_ADMIN_TOKEN": admin.access_token,
    }
    env_file = tmp_path / f"{name}.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return env_file, bot.user_id, room


async def _answer_request(clinician: Person, room: RoomID, patient: Person) -> tuple[RoomID, str]:
    """The clinician asks the patient for a photo; the patient answers it; (their chat, the reference)."""
    await answer(clinician, room, f"!request {patient.user_id} left forearm", "opened")
    chat = await patient.wait_for_invite_or_room()
    await patient.wait_for_text(chat, "asked you for a photo of")
    await answer(patient, chat, NHS_NUMBER, "999 765 4323")
    await answer(patient, chat, "1", "intimate area")
    await answer(patient, chat, "no", "DONE")
    await send_photo(
        patient, chat, make_jpeg(1400, 1000), "Photo 1 received", filename="a.jpg", mimetype="image/jpeg"
    )
    done = await answer(patient, chat, "done", "reference")
    return chat, done.split("reference is ")[1].split(".")[0].strip("*")


async def _devices(homeserver: LocalHomeserver, admin: RegisteredUser, user_id: str) -> set[str]:
    """The devices the homeserver lists for `user_id` (Synapse's admin API)."""
    url = f"{homeserver.base_url}/_synapse/admin/v2/users/{quote(user_id, safe='')}/devices"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {admin.access_token}"}) as response,
    ):
        assert response.status == 200
        return {str(device["device_id"]) for device in (await response.json())["devices"]}


async def _reply(person: Person, room_id: RoomID, text: str, timeout: float = 30.0) -> tuple[UserID, str]:
    """Say `text`; the first message anyone else then posts in the room (its sender and text)."""
    before = len(person.seen.get(room_id, []))
    await person.say(room_id, text)
    reply = await person.wait_for_text(room_id, "", after=before, timeout=timeout)
    return reply.sender, reply.body


async def test_a_clinician_of_one_practice_reaches_nothing_of_another_and_a_removed_practice_is_destroyed(
    host: HostUnderTest,
    homeserver: LocalHomeserver,
    homeserver_admin: RegisteredUser,
    make_person: PersonFactory,
    tmp_path: Path,
) -> None:
    clinician_a = await make_person("clinician_a")
    clinician_b = await make_person("clinician_b")
    env_a, bot_a_id, room_a = await _practice_env(tmp_path, homeserver, homeserver_admin, "a", clinician_a)
    env_b, bot_b_id, room_b = await _practice_env(tmp_path, homeserver, homeserver_admin, "b", clinician_b)
    await host.add("a", env_a)
    assert "PASSWORD" not in host.host.env_file("a").read_text()  # used once, by init, not kept
    await host.process.start()
    await host.serving("a")
    await host.add("b", env_b)  # while the host runs: it starts serving B within seconds
    await host.serving("b")
    await asyncio.gather(joined(clinician_a, room_a, bot_a_id), joined(clinician_b, room_b, bot_b_id))
    bot_a, bot_b = host.bot("a", bot_a_id), host.bot("b", bot_b_id)

    patient_a, patient_b = await make_person("patient_a"), await make_person("patient_b")
    # A's patient opens a chat; B's answers a photo request from B's clinician.
    (_, ref_a), (chat_b, ref_b) = await asyncio.gather(
        submit(patient_a, bot_a), _answer_request(clinician_b, room_b, patient_b)
    )
    # Each clinician room's new-submission alert, before any command, so that no reply is mistaken for one.
    await clinician_a.wait_for_text(room_a, ref_a)
    await clinician_b.wait_for_text(room_b, ref_b)
    await clinician_a.settled(room_a, quiet=1.0)
    b_before = bot_b.query("SELECT reference, status FROM submissions")
    b_files = vault_files(bot_b)
    assert b_before == [(ref_b, "new")]
    b_requests = bot_b.query("SELECT status FROM photo_requests")
    assert b_requests == [("answered",)]
    assert len(b_files) == 1

    # Every clinician command on B's submission, from A's room: the answer a never-issued reference gets.
    never = reference_code(f"never-issued-{secrets.token_hex(4)}")
    for template in REFERENCE_COMMANDS:
        sender, on_b = await _reply(clinician_a, room_a, template.format(ref=ref_b))
        _, on_never = await _reply(clinician_a, room_a, template.format(ref=never))
        assert sender == bot_a_id
        assert on_b.replace(ref_b, "REF") == on_never.replace(never, "REF"), template
    for text in LISTING_COMMANDS:
        sender, listing = await _reply(clinician_a, room_a, text)
        assert sender == bot_a_id
        assert ref_b not in listing, text
    _, listing = await _reply(clinician_a, room_a, "!queue all")
    assert ref_a in listing  # A's own work is there
    assert "answers a photo request" not in listing  # B's request and its answer are not
    sender, asked = await _reply(clinician_a, room_a, f"!request {patient_b.user_id} left forearm")
    assert sender == bot_a_id
    assert ref_b not in asked

    # B's bot, invited into A's room, never answers a command there.
    await clinician_a.client.room_invite(room_a, bot_b_id)
    await clinician_a.settled(room_a, quiet=2.0)
    before = len(clinician_a.seen[room_a])
    await clinician_a.say(room_a, f"!view {ref_b}")
    await clinician_a.say(room_a, "!queue all")
    await clinician_a.wait_for_text(room_a, ref_a, after=before)
    await clinician_a.settled(room_a, quiet=2.0)
    answers = clinician_a.seen[room_a][before:]
    assert {seen.sender for seen in answers} == {bot_a_id}
    assert [seen.body for seen in answers if ref_b in seen.body] == [
        f"I can't find a submission '{ref_b}'. `!queue` lists them."
    ]
    assert not [seen for seen in clinician_a.seen[room_a] if seen.kind in {"image", "file"}]

    # Nothing of B changed: still new, unclaimed, its photo in its vault, none of A's clinician in its log.
    assert bot_b.query("SELECT reference, status FROM submissions") == b_before
    assert bot_b.query("SELECT status FROM photo_requests") == b_requests
    assert vault_files(bot_b) == b_files
    _, b_queue = await _reply(clinician_b, room_b, "!queue all")
    assert ref_b in b_queue
    assert ref_a not in b_queue
    _, b_trail = await _reply(clinician_b, room_b, f"!audit {ref_b}")
    # The same command from B's own room finds it ("no audit entries" yet): the comparison above can fail.
    assert "can't find" not in b_trail
    assert ref_b in b_trail

    # Removing B while the host runs: its key, rows and files destroyed; A still serves.
    b_dir = host.host.practice_dir("b")
    [(device_b,)] = bot_b.query("SELECT device_id FROM bot_account")
    assert device_b in await _devices(homeserver, homeserver_admin, bot_b_id)
    code, output = await host.process.command("practice", "remove", "b", "--yes")
    assert code == 0, output
    assert "Logged out its bot's device" in output
    assert "master key" in output
    assert device_b not in await _devices(homeserver, homeserver_admin, bot_b_id)  # with its keys
    assert not b_dir.exists()
    assert host.host.names() == ["a"]
    assert "practice b is being removed: stopping it" in host.process.log_text()
    _, listing = await _reply(clinician_a, room_a, "!queue all")
    assert ref_a in listing
    before = len(patient_b.seen.get(chat_b, []))
    await patient_b.say(chat_b, "hello?")
    await patient_b.settled(chat_b, quiet=3.0)
    assert len(patient_b.seen.get(chat_b, [])) == before  # B's bot serves nobody any more
