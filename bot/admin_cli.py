"""`photobot admin ...`, `photobot audit verify` and `photobot poster`: the operator's commands that work on
the data directory without the bot's Matrix connection (the bot may be running: SQLite serialises writers,
and the running bot reads configuration changes at its next sync)."""

from __future__ import annotations

import asyncio
import getpass
import secrets
from collections.abc import Callable
from pathlib import Path

from bot.app import prepare_data_dir
from bot.backends import open_database
from bot.clock import Clock, SystemClock
from bot.errors import UserFacingError
from bot.exit_codes import ExitCode
from bot.ids import EventID, RoomID, UserID
from bot.key_rotation import KeyRotationUnfinishedError, refuse_unfinished_rotation
from bot.keyring import Keyring, Sealer, load_master_key_file
from bot.matrix.homeserver_audit import HomeserverAudit
from bot.matrix.reachability import probe
from bot.poster import WEB_CHAT_TEXTS, render_poster, texts_for_server
from bot.production_check import admin_token_problem
from bot.settings import Settings
from handlers.admin import AdminDesk
from handlers.commands import Invocation, Outcome, UsageError, parse_command, usage_reply
from handlers.retention import resume_retention
from handlers.staff import admin_commands
from storage.audit import AuditLog
from storage.practice_config import SETTINGS, ConfigRepository, LiveConfig, defaults_from
from storage.sql import Connection, Database
from storage.staff_identities import StaffIdentities


async def _open(settings: Settings) -> tuple[Keyring, Database]:
    keyring = Keyring(load_master_key_file(settings.master_key_file))
    prepare_data_dir(settings)
    return keyring, await open_database(settings)


async def admin_command(
    settings: Settings,
    clock: Clock,
    words: list[str],
    say: Callable[[str], None],
    read_secret: Callable[[str], str] = lambda prompt: "",
) -> int:
    """Run one admin command, exactly as in the admin room, audited as `cli:<login>`. A secret setting is
    read with `read_secret` (standard input or a prompt), never from the command line, and checked with
    the homeserver before it is stored."""
    checked = await _secret_from_input(settings, words, say, read_secret)
    if isinstance(checked, ExitCode):
        return checked
    words = checked
    keyring, database = await _open(settings)
    try:
        try:
            # A value sealed now under the old key would be lost when the rotation destroys it.
            await refuse_unfinished_rotation(database)
        except KeyRotationUnfinishedError as error:
            say(str(error))
            return ExitCode.CONFIG
        config = LiveConfig(defaults_from(settings), ConfigRepository(database, Sealer(keyring), clock))
        await config.refresh()
        audit = AuditLog(database, keyring, clock)

        async def no_redaction(cmd: Invocation) -> None:
            return None

        async def resume(db: Connection) -> None:
            await resume_retention(db, clock.now())

        desk = AdminDesk(config, audit, no_redaction, resume, StaffIdentities(database, clock))
        commands = [command for command in admin_commands(desk, desk.show) if command.name != "help-admin"]
        table = {command.name: command for command in commands}
        parsed = parse_command("!" + " ".join(words))
        if parsed is None or parsed[0] not in table:
            say("usage: photobot admin <command>, one of:")
            for command in commands:
                say(f"  {command.usage.removeprefix('!')}: {command.summary}")
            return ExitCode.USAGE
        name, args, body = parsed
        actor = UserID(f"cli:{getpass.getuser()}")
        cmd = Invocation(
            name,
            args,
            body,
            actor,
            RoomID("cli"),
            EventID(f"cli-{secrets.token_hex(8)}"),
            clock.now(),
            config.current,
        )
        try:
            outcome: Outcome = await table[name].handler(cmd)
        except UsageError as error:
            say(_plain(usage_reply(table[name], error.text)))
            return ExitCode.USAGE
        except UserFacingError as error:
            say(_plain(error.text))
            return ExitCode.USAGE
        async with database.transaction() as db:
            if outcome.work is not None:
                await outcome.work(db)
        say(_plain(outcome.reply))
        return 0
    finally:
        await database.close()


def _plain(markdown: str) -> str:
    return markdown.replace("**", "").replace("`", "")


async def _secret_from_input(
    settings: Settings, words: list[str], say: Callable[[str], None], read_secret: Callable[[str], str]
) -> list[str] | ExitCode:
    """`set <secret>`: the value read with `read_secret` and checked with the homeserver, appended to the
    words; an exit code if it was given on the command line, empty or refused. Other commands: unchanged."""
    secret = [name for name, setting in SETTINGS.items() if setting.secret]
    if len(words) >= 2 and words[0] == "set" and words[1] in secret:
        if len(words) > 2:
            say(
                f"Give {words[1]} on standard input or at the prompt, not on the command line (where shell "
                f"history and `ps` keep it): photobot admin set {words[1]}"
            )
            return ExitCode.USAGE
        value = read_secret(f"{words[1]} (input hidden; 'none' to remove): ").strip()
        if not value:
            say(f"No value was given for {words[1]}; nothing changed.")
            return ExitCode.USAGE
        if value != "none":
            await probe(settings.homeserver_url)
            async with HomeserverAudit.session() as session:
                problem = await admin_token_problem(HomeserverAudit(settings.homeserver_url, session), value)
            if problem is not None:
                say(f"{problem} Nothing changed.")
                return ExitCode.CONFIG
        return [*words, value]
    return words


async def verify_audit(settings: Settings, clock: Clock, say: Callable[[str], None]) -> int:
    """`photobot audit verify`: 0 if the audit log is intact, 1 (with every problem listed) if not."""
    keyring, database = await _open(settings)
    try:
        report = await AuditLog(database, keyring, clock).verify()
    finally:
        await database.close()
    if report.ok:
        say(f"The audit log is intact: {report.entries} entries, each chained to the one before.")
        return 0
    say(f"The audit log has been altered: {len(report.problems)} problem(s) in {report.entries} entries.")
    for problem in report.problems:
        say(f"  - {problem}")
    return 1


async def live_practice_name(settings: Settings, clock: Clock) -> str:
    """The practice name in force: an admin's run-time change (`set practice_name`) over the environment's."""
    keyring, database = await _open(settings)
    try:
        config = LiveConfig(defaults_from(settings), ConfigRepository(database, Sealer(keyring), clock))
        return (await config.refresh()).practice_name
    finally:
        await database.close()


def make_poster(
    settings: Settings,
    practice_name: str,
    out_dir: Path,
    say: Callable[[str], None],
) -> int:
    """`photobot poster`: the A4 PDF and PNG in `out_dir`. Once the bot's database exists, the poster carries
    the practice name in force (so a name an admin changed at run time is the one printed); before that,
    `practice_name` (the environment's). A database that exists but cannot be opened (no master key) is an
    error, not a reason to print a name that may be out of date."""
    if settings.database.engine == "postgresql" or settings.database_path.exists():
        practice_name = asyncio.run(live_practice_name(settings, SystemClock()))
    servers = sorted(settings.allowed_servers)
    texts = texts_for_server(servers[0] if len(servers) == 1 else None)  # name the one server to join
    web_chat_url = settings.web_chat.url if settings.web_chat.enabled else ""  # no app needed: the page
    poster = render_poster(
        practice_name,
        settings.user_id,
        texts=WEB_CHAT_TEXTS if web_chat_url else texts,
        phone=settings.practice_phone,
        opening_times=settings.opening_times,
        web_chat_url=web_chat_url,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "photobot-poster.png").write_bytes(poster.png)
    (out_dir / "photobot-poster.pdf").write_bytes(poster.pdf)
    say(f"Wrote {out_dir / 'photobot-poster.pdf'} (A4, to print) and {out_dir / 'photobot-poster.png'}.")
    return 0
