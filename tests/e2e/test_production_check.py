"""`photobot check` finds what breaks in production, one line per problem, against the real homeserver."""

from __future__ import annotations

import nio
import pytest

from bot.exit_codes import ExitCode
from bot.ids import RoomID
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.workspace import encrypted_room, joined, open_practice

pytestmark = pytest.mark.e2e

FAR_CLINICIAN = "@dr.far:elsewhere.example"


def _problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("problem: ")]


async def test_check_lists_each_production_problem_on_its_own_line(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """With a bogus admin token, a configured room the bot is not in, an unencrypted configured room and a
    clinician on a server the bot does not allow, `check` exits 1 with exactly one line for each; with a
    patient's (non-admin) token it says the token is not a server admin's."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician = practice.bot, practice.clinician
    created = await clinician.client.room_create(name="Unencrypted staff room")
    assert isinstance(created, nio.RoomCreateResponse)
    plain = RoomID(created.room_id)
    outside = await encrypted_room(clinician, "A room the bot was never invited to", [])
    for room in (plain, outside):
        code, output = await bot.process.command("admin", "room", "clinician", "add", room)
        assert code == 0, output
    await clinician.client.room_invite(plain, bot.user_id)
    await joined(clinician, plain, bot.user_id)

    wrong = {
        "PHOTOBOT_HOMESERVER_ADMIN_TOKEN": "syt_bogus_admin_token",
        "PHOTOBOT_CLINICIANS": f"{clinician.user_id},{FAR_CLINICIAN}",
    }
    code, output = await bot.process.command("check", extra_env=wrong)
    assert code == ExitCode.PROBLEMS_FOUND, output
    problems = _problems(output)
    assert len(problems) == 4, output
    assert "The homeserver admin token is not accepted by" in problems[0]
    assert f"The bot is not in the clinician room {outside}" in output
    assert f"The clinician room {plain} is not encrypted" in output
    assert f"The clinician {FAR_CLINICIAN} is on elsewhere.example, a server the bot does not allow" in output
    assert "Changed at run time (overrides the environment): clinician_rooms" in output
    assert "warning: PHOTOBOT_PASSWORD is still set" in output

    patient = await make_person("patient")
    code, output = await bot.process.command(
        "check", extra_env={"PHOTOBOT_HOMESERVER_ADMIN_TOKEN": patient.client.access_token}
    )
    assert code == ExitCode.PROBLEMS_FOUND, output
    assert f"The homeserver admin token belongs to {patient.user_id}, who is not a server admin" in output
    assert len(_problems(output)) == 3, output


async def test_the_admin_token_is_set_from_standard_input_and_checked_first(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """`photobot admin set homeserver_admin_token` refuses the token on the command line, refuses a token the
    homeserver does not accept (nothing changes), and stores a server admin's token read from stdin; the next
    start-up names each setting that overrides the environment."""
    practice = await open_practice(make_bot, make_person)
    bot = practice.bot
    code, output = await bot.process.command("admin", "set", "homeserver_admin_token", "syt_on_argv")
    assert code == ExitCode.USAGE, output
    assert "not on the command line" in output
    code, output = await bot.process.command("admin", "set", "homeserver_admin_token", stdin="syt_bogus\n")
    assert code == ExitCode.CONFIG, output
    assert "is not accepted by" in output and "Nothing changed" in output
    assert bot.query("SELECT key FROM practice_config WHERE key = 'homeserver_admin_token'") == []
    token = bot.process.env["PHOTOBOT_HOMESERVER_ADMIN_TOKEN"]
    code, output = await bot.process.command("admin", "set", "homeserver_admin_token", stdin=token + "\n")
    assert code == 0, output
    assert bot.query("SELECT key FROM practice_config WHERE key = 'homeserver_admin_token'") == [
        ("homeserver_admin_token",)
    ]
    code, output = await bot.process.command("check")
    assert code == 0, output
    assert "Configuration is valid." in output
    code, output = await bot.process.command("admin", "set", "max_photos", "3")
    assert code == 0, output
    await bot.process.stop()
    await bot.process.start()
    log_text = bot.process.log_text()
    assert (
        "settings changed at run time override the environment: max_photos: 3 (the environment says 5)"
        in (log_text)
    )
    assert "homeserver_admin_token: set" not in log_text, "the same token as the environment's is no change"
