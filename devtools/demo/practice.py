"""The demo's practice: the bot's account, a clinician and their encrypted clinician room, the running bot.

Set up as an operator would (docs/operator.md), with no configuration from the person running the demo:
the homeserver's shared registration secret makes the accounts, and a homeserver-admin token lets the bot
delete uploaded media. No practice admin is needed: the clinician list and room are given at start-up.
Everything started here is registered on `cleanup`, so it is stopped whatever happens next.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot.ids import RoomID, UserID
from devtools.demo.bot_process import BotProcess
from devtools.demo.people import Person
from devtools.demo.transcript import Transcript
from devtools.local_homeserver import LocalHomeserver

PRACTICE_NAME: Final = "Riverside Surgery (demo)"
BOT_LOCALPART: Final = "photobot"
BOT_PASSWORD: Final = "pw-demo-bot"  # noqa: S105 (a throwaway account on a throwaway homeserver)


@dataclass(frozen=True)
class DemoPractice:
    bot: BotProcess
    bot_user: UserID
    data_dir: Path
    clinician: Person
    clinician_room: RoomID


async def open_practice(
    homeserver: LocalHomeserver,
    base: Path,
    cleanup: contextlib.AsyncExitStack,
    groups: list[int],
    transcript: Transcript,
) -> DemoPractice:
    """Accounts, the clinician room and the running bot; the bot's process group is added to `groups`."""
    transcript.step(
        "Accounts: the bot, a clinician, and a homeserver admin token so the bot can delete media"
    )
    media_admin = await homeserver.register_user("homeserveradmin", "pw-demo-homeserver-admin", admin=True)
    bot_user = await homeserver.register_user(BOT_LOCALPART, BOT_PASSWORD)
    clinician = await Person.sign_up(homeserver, "dr.demo", base / "people" / "clinician")
    cleanup.push_async_callback(clinician.close)
    clinician_room = await clinician.create_encrypted_room("Clinicians", [bot_user.user_id])
    transcript.note(f"the bot is {bot_user.user_id}; the clinician is {clinician.user_id}")
    transcript.note("the clinician made an encrypted clinician room and invited the bot")

    data_dir = base / "bot-data"
    env = {
        "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
        "PHOTOBOT_USER_ID": bot_user.user_id,
        "PHOTOBOT_PASSWORD": BOT_PASSWORD,
        "PHOTOBOT_DATA_DIR": str(data_dir),
        "PHOTOBOT_PRACTICE_NAME": PRACTICE_NAME,
        "PHOTOBOT_CLINICIANS": clinician.user_id,
        "PHOTOBOT_CLINICIAN_ROOMS": clinician_room,
        "PHOTOBOT_HOMESERVER_ADMIN_TOKEN": media_admin.access_token,
        # Test mode accepts the NHS's test-range numbers (999 ...), which are never issued to a person.
        "PHOTOBOT_TEST_MODE": "true",
        # A described view-then-delete's photos wait this long for an `!undo` (2 minutes in a practice).
        "PHOTOBOT_UNDO_WINDOW": "10s",
    }
    bot = BotProcess(env, base / "bot.log", own_process_group=True)

    async def stop_bot() -> None:
        running = bot.pid is not None
        await bot.stop()
        if running:
            transcript.note("the bot stopped")

    cleanup.push_async_callback(stop_bot)
    transcript.step("photobot init: the master key, the bot's device and its cross-signing identity")
    for line in (await bot.init()).strip().splitlines():
        transcript.note(line)
    transcript.step("photobot run")
    transcript.note("starting the bot ...")
    await bot.start()
    if bot.pid is not None:
        groups.append(bot.pid)
    transcript.note(f"the bot is serving (process {bot.pid}); waiting for it to join the clinician room")
    await clinician.wait_joined(clinician_room, bot_user.user_id)
    transcript.note("the bot joined the clinician room")
    return DemoPractice(bot, bot_user.user_id, data_dir, clinician, clinician_room)
