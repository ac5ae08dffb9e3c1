"""`photobot demo`: the patient's journey on a throwaway local homeserver, printed as a transcript.

It starts its own Synapse on 127.0.0.1 (from .venv-synapse), creates the bot's account and a scripted
patient, runs the real bot as a process, plays the conversation with real encrypted messages and
generated photos, then stops everything and removes its files (unless --keep is given).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

from bot.demo.bot_process import BotProcess
from bot.demo.people import Person
from bot.demo.photos import camera_heic, camera_jpeg
from bot.ids import RoomID
from bot.local_homeserver import LocalHomeserver, default_synapse_python

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETTLE_SECONDS = 1.5


class Transcript:
    def __init__(self, person: Person, room_id: RoomID) -> None:
        self.person = person
        self.room_id = room_id
        self.shown = 0

    async def bot_speaks(self, minimum: int = 1, timeout: float = 60.0) -> list[str]:
        """Wait for at least `minimum` new bot messages, then until the bot falls quiet; print them."""
        await self.person.wait_for(self.room_id, self.shown + minimum, timeout)
        while True:
            count = len(self.person.seen.get(self.room_id, []))
            await asyncio.sleep(SETTLE_SECONDS)
            if len(self.person.seen.get(self.room_id, [])) == count:
                break
        new = self.person.seen[self.room_id][self.shown :]
        self.shown += len(new)
        for message in new:
            _print_turn("Bot", message.body)
        return [message.body for message in new]

    async def patient_says(self, text: str) -> list[str]:
        _print_turn("Patient", text)
        await self.person.say(self.room_id, text)
        return await self.bot_speaks()

    async def patient_sends(
        self, label: str, data: bytes, *, filename: str, mimetype: str, as_file: bool
    ) -> list[str]:
        _print_turn("Patient", f"[sends {label}: {filename}, {len(data) // 1024} KB]")
        await self.person.send_photo(
            self.room_id, data, filename=filename, mimetype=mimetype, as_file=as_file
        )
        return await self.bot_speaks()


def _print_turn(who: str, text: str) -> None:
    lines = text.replace("**", "").splitlines() or [""]
    print(f"\n{who:>8}: {textwrap.fill(lines[0], 100, subsequent_indent=' ' * 10)}")
    for line in lines[1:]:
        print(" " * 10 + textwrap.fill(line, 100, subsequent_indent=" " * 10))


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def run_demo(keep: Path | None) -> int:  # noqa: PLR0915 (a script, read top to bottom)
    base = keep or Path(tempfile.mkdtemp(prefix="photobot-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    homeserver = LocalHomeserver(
        base / "synapse",
        synapse_python=default_synapse_python(PROJECT_ROOT),
        log=lambda line: print(f"   {line}"),
    )
    bot: BotProcess | None = None
    patient: Person | None = None
    try:
        _step("Starting a throwaway Matrix homeserver (Synapse) on 127.0.0.1 ...")
        await homeserver.start()
        print(f"   ready at {homeserver.base_url} after {time.monotonic() - started:.1f} s")
        admin = await homeserver.register_user("practiceadmin", "pw-demo-admin", admin=True)
        bot_user = await homeserver.register_user("photobot", "pw-demo-bot")
        env = {
            "PHOTOBOT_HOMESERVER_URL": homeserver.base_url,
            "PHOTOBOT_USER_ID": bot_user.user_id,
            "PHOTOBOT_PASSWORD": "pw-demo-bot",
            "PHOTOBOT_DATA_DIR": str(base / "bot-data"),
            "PHOTOBOT_PRACTICE_NAME": "Riverside Surgery (demo)",
            "PHOTOBOT_TEST_MODE": "true",
            "PHOTOBOT_HOMESERVER_ADMIN_TOKEN": admin.access_token,
        }
        bot = BotProcess(env, base / "bot.log")
        _step("photobot init: master key, the bot's device and its cross-signing identity")
        for line in (await bot.init()).strip().splitlines():
            print(f"   {line}")
        _step("photobot run")
        await bot.start()
        print("   the bot is serving")

        _step("A patient opens an encrypted chat with the bot from their phone")
        patient = await Person.sign_up(homeserver, "patient.demo", base / "patient-store")
        room_id = await patient.open_direct_chat(bot_user.user_id)
        chat = Transcript(patient, room_id)
        await chat.bot_speaks()
        await chat.patient_says("My name is Alex Example and I was born on 02/03/1961")
        await chat.patient_says("999 765 4323")
        await chat.patient_says("yes")
        await chat.patient_says("no")
        await chat.patient_says("1")
        await chat.patient_says("1")
        await chat.patient_sends(
            "a photo with GPS metadata",
            camera_jpeg(seed=3),
            filename="IMG_2041.jpg",
            mimetype="image/jpeg",
            as_file=False,
        )
        await chat.patient_sends(
            "an iPhone HEIC photo as a file",
            camera_heic(seed=4),
            filename="IMG_2042.HEIC",
            mimetype="image/heic",
            as_file=True,
        )
        await chat.patient_says("It's on my left forearm, for about a week")
        await chat.patient_says("done")
        removed = len(patient.redacted)
        _step(f"What the patient's chat shows now: {removed} of their messages were removed by the bot")
        print("   (the photos and the messages carrying personal data or the NHS number)")
        return 0
    finally:
        _step("Stopping the bot and the homeserver")
        if patient is not None:
            await patient.close()
        if bot is not None:
            await bot.stop()
        await homeserver.stop()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
            print("   removed every file the demo made")
        else:
            print(f"   the demo's files are kept in {base}")
        print(f"   done in {time.monotonic() - started:.0f} s")
