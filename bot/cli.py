"""The `photobot` command: init, run, check, admin, backup ... The only place that reads the process environment."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from bot import __version__
from bot.admin_cli import admin_command, make_poster, verify_audit
from bot.app import NotInitialisedError, open_app
from bot.clock import Clock, OffsetClock, SystemClock
from bot.exit_codes import ExitCode, exit_code_table
from bot.initialise import initialise
from bot.key_rotation import KeyRotationError
from bot.keyring import MasterKeyError
from bot.leak_scan import leak_scan_command
from bot.logs import configure_logging
from bot.maintenance_cli import backup, restore, rotate_key
from bot.matrix.gateway import MatrixError, TransientMatrixError
from bot.matrix.homeserver_audit import HomeserverAudit
from bot.matrix.reachability import bounded, probe
from bot.practice_cli import add_practice, list_practices, remove_practice
from bot.practices import HOST_DIR_VARIABLE, Host, HostServer
from bot.production_check import (
    Findings,
    check_admin_token,
    check_leftovers,
    check_people,
    check_rooms,
    run_time_changes,
)
from bot.serve import run
from bot.settings import Settings, SettingsError, load_settings
from bot.standby import held_lease, lock_data_dir
from bot.web_chat.homeserver_check import check_web_chat
from storage.backup import BackupError
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.sql import DatabaseBusyError, DatabaseError
from storage.vault import VaultConfigError, VaultError, VaultUnavailableError

CHECK_SECONDS = 30.0
DEMO_ELSEWHERE = "it runs from a source checkout, with `bash dev.sh demo`"

# What stops a command with a message for the operator, and the exit status each means (bot.exit_codes).
_TEMPORARY = (TransientMatrixError, DataDirBusyError, DatabaseBusyError, VaultUnavailableError)
_NEEDS_OPERATOR = (
    SettingsError,
    MasterKeyError,
    NotInitialisedError,
    DatabaseError,
    MatrixError,
    KeyRotationError,
    VaultConfigError,
    BackupError,
)


def _environment(env_file: Path | None) -> Mapping[str, str]:
    """The process environment over the .env file: the environment wins, as operators expect. A file named
    with --env-file must exist (a typo must not silently run on defaults); ./.env is read if it is there."""
    values: dict[str, str] = {}
    if env_file is not None and not env_file.is_file():
        raise SettingsError([f"--env-file {env_file}: no such file."])
    path = env_file or Path(".env")
    if path.exists():
        values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    values.update(os.environ)
    return values


def _host(args: argparse.Namespace) -> Host | None:
    """The host directory (several practices, bot.practices): --host, or PHOTOBOT_HOST_DIR in the process
    environment. None for the single practice of an env file and a data directory."""
    named = args.host or os.environ.get(HOST_DIR_VARIABLE, "").strip()
    return Host(Path(named).expanduser().absolute()) if named else None


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of the practice a command is for: the env file's (one practice), or under a host the
    named practice's own file, never the process environment's (which every practice would share)."""
    host = _host(args)
    if args.practice is not None:
        if host is None:
            raise SettingsError([f"--practice needs the host directory: --host DIR or {HOST_DIR_VARIABLE}."])
        if args.env_file is not None:
            raise SettingsError(["--practice reads the practice's own settings: leave out --env-file."])
        return host.settings(args.practice)
    if host is not None:
        known = ", ".join(host.serving_names()) or "none yet"
        raise SettingsError(
            [f"name the practice of {host.root} this is for: --practice NAME (practices: {known})."]
        )
    return load_settings(_environment(args.env_file))


def _host_logging() -> None:
    """A host's own log settings, from the process environment (each practice's file has its own, unused)."""
    level = os.environ.get("PHOTOBOT_LOG_LEVEL", "INFO").strip().upper()
    fmt = os.environ.get("PHOTOBOT_LOG_FORMAT", "text").strip().lower()
    problems = []
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        problems.append("PHOTOBOT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR.")
    if fmt not in {"text", "json"}:
        problems.append("PHOTOBOT_LOG_FORMAT must be text or json.")
    if problems:
        raise SettingsError(problems)
    configure_logging(level, fmt)


def _clock(settings: Settings) -> Clock:
    if settings.test_mode and settings.test_clock_file is not None:
        return OffsetClock(settings.test_clock_file)
    return SystemClock()


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # With PostgreSQL, the practice's lease first (bot.standby): nothing in the data directory, nio's store
    # above all, is opened before this process holds it.
    async with held_lease(settings, stop) as held:
        if not held:
            return
        lock = await lock_data_dir(settings, "the bot (photobot run)", stop)
        if lock is None:
            return
        with lock:
            await _serve_locked(settings, stop)


async def _serve_locked(settings: Settings, stop: asyncio.Event) -> None:
    app = await open_app(settings, _clock(settings))
    try:
        await run(app, stop)
    finally:
        await app.close()


async def _serve_host(host: Host) -> None:
    """`photobot run` with a host directory: every practice in this process, each with its own app."""
    if not host.root.is_dir():
        raise SettingsError([f"the host directory {host.root} does not exist."])
    with DataDirLock.acquire(host.root, "the host (photobot run)"):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await HostServer(host, _clock).run(stop)


def _practice_command(args: argparse.Namespace) -> int:
    host = _host(args)
    if host is None:
        raise SettingsError(
            [f"photobot practice needs the host directory: --host DIR or {HOST_DIR_VARIABLE}."]
        )
    _host_logging()
    if args.action == "add":
        return asyncio.run(add_practice(host, args.name, args.env_file, SystemClock(), print))
    if args.action == "remove":
        return asyncio.run(remove_practice(host, args.name, yes=args.yes, ask=_read_line, say=print))
    return list_practices(host, print)


def _vault_name(settings: Settings) -> str:
    """Where the vault is, without credentials: the bucket and prefix, or the directory."""
    if settings.vault is not None and settings.vault.is_s3:
        return f"s3://{settings.vault.bucket}/{settings.vault.prefix}".rstrip("/")
    return str(settings.vault_dir)


async def _check(settings: Settings) -> int:
    """0 if all is well (warnings may be printed); 1 with one line per problem found: damaged stored images,
    uploads the homeserver keeps refusing to delete, and what `bot.production_check` asks the homeserver.
    A damaged database, a bad master key or an unreachable homeserver stop it earlier (bot.exit_codes)."""
    await probe(settings.homeserver_url)
    app = await open_app(settings, SystemClock())  # the master key, and the database's own check
    found = Findings()
    try:
        print("The database passed SQLite's integrity check.")
        try:
            await app.checks.check_vault()
        except VaultError as error:
            found.problems.append(f"The image vault cannot be used: {error}.")
        else:
            print(f"The image vault ({_vault_name(settings)}) can be written, read, listed and deleted.")
        checked, damaged = await app.checks.damaged_images()
        if damaged:
            found.problems.append(
                f"{len(damaged)} of {checked} stored image(s) cannot be shown: their files are missing or "
                "damaged. The bot will never show another image in their place. Restore the vault from a "
                "backup, or tell the clinicians these photos are lost:"
                + "".join(f"\n  - {line}" for line in damaged)
            )
        else:
            print(f"All {checked} stored image(s) open and pass their integrity check.")
        backlog = await app.patient.media.backlog()
        if backlog.failing:
            found.problems.append(
                f"{backlog.waiting} upload(s) of patients' photos wait to be deleted from the homeserver; it "
                f"refused {backlog.failing} of them, up to {backlog.most_failures} times. Check the "
                "homeserver-admin credential (`photobot admin set homeserver_admin_token`)."
            )
        elif backlog.waiting:
            print(f"{backlog.waiting} upload(s) of patients' photos wait to be deleted from the homeserver.")
        if remote := await app.patient.media.remote_count():
            print(f"{remote} upload(s) sent from other servers cannot be deleted by this practice.")
        async with bounded(settings.homeserver_url, CHECK_SECONDS, "checking the bot's account"):
            user = await app.gateway.whoami()
        print(
            f"The homeserver {settings.homeserver_url} knows the bot as {user}, device {app.gateway.device_id}."
        )
        config = app.config.current
        bot_token = app.gateway.access_token()
        async with HomeserverAudit.session() as session:
            audit = HomeserverAudit(settings.homeserver_url, session)
            await check_admin_token(audit, config.homeserver_admin_token.value, bot_token, found)
            await check_rooms(audit, bot_token, config, found)
            await check_web_chat(
                settings.web_chat,
                settings.homeserver_url,
                config.homeserver_admin_token.value,
                session,
                found.problems,
            )
        check_people(settings, config, found)
        check_leftovers(settings, config, found)
        changed = run_time_changes(app.config.defaults, config, await app.config.repository.overrides())
        for line in changed:
            print(f"Changed at run time (overrides the environment): {line}")
    finally:
        await app.close()
    for warning in found.warnings:
        print(f"warning: {warning}")
    for problem in found.problems:
        print(f"problem: {problem}")
    if found.problems:
        print(f"{len(found.problems)} problem(s) found.")
        return ExitCode.PROBLEMS_FOUND
    print("Configuration is valid.")
    return ExitCode.OK


def _read_secret(prompt: str) -> str:
    """A secret from a prompt without echo on a terminal, or the first line of standard input otherwise."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline()


def _read_line(prompt: str) -> str:
    """An answer typed at the terminal, or the first line of standard input."""
    if sys.stdin.isatty():
        return input(prompt)
    print(prompt, end="", flush=True)
    return sys.stdin.readline()


def _message(command: str, error: Exception) -> str:
    """One line for the operator (a configuration with several problems lists each on its own line)."""
    if isinstance(error, SettingsError) and len(error.problems) == 1:
        return f"photobot {command}: {error.problems[0]}"
    return f"photobot {command}: {error}"


def _parser() -> argparse.ArgumentParser:
    env_file = argparse.ArgumentParser(add_help=False)
    env_file.add_argument(
        "--env-file", type=Path, default=argparse.SUPPRESS, help="settings file (default: ./.env)"
    )
    env_file.add_argument(
        "--host",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help=f"a host directory of several practices (default: ${HOST_DIR_VARIABLE})",
    )
    env_file.add_argument(
        "--practice",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="the practice of the host this command is for",
    )
    parser = argparse.ArgumentParser(
        prog="photobot",
        description="GP Photo Bot",
        parents=[env_file],
        epilog=exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        # --env-file is accepted after the command too (`photobot run --env-file x`), as operators type it.
        return commands.add_parser(name, help=help_text, parents=[env_file])

    command("init", "create the data directory, master key, device and cross-signing identity")
    command("run", "serve patients and clinicians (with a host directory: every practice in it)")
    command("check", "validate the configuration and reach the homeserver")
    admin = command("admin", "change the practice configuration, as in the admin room")
    admin.add_argument("words", nargs=argparse.REMAINDER, help="e.g. clinician add @dr.patel:example.org")
    audit = command("audit", "check the audit log has not been altered")
    audit.add_argument("action", choices=["verify"])
    poster = command("poster", "a printable A4 poster with a QR code for the waiting room")
    poster.add_argument("--out", type=Path, default=Path(), help="directory for the PDF and PNG")
    key = command("key", "rotate the master key (the bot must be stopped)")
    key.add_argument("action", choices=["rotate"])
    backup_parser = command("backup", "a consistent backup, while the bot runs")
    backup_parser.add_argument("destination", type=Path, metavar="DEST", help="a new directory")
    restore_parser = command("restore", "restore a backup (the bot must be stopped)")
    restore_parser.add_argument("source", type=Path, metavar="SRC", help="a directory made by backup")
    practice = command("practice", "add, remove or list the practices of a host directory")
    actions = practice.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a practice from its settings file", parents=[env_file])
    add.add_argument("name", metavar="NAME")
    remove = actions.add_parser(
        "remove", help="destroy a practice: its keys, rows and files", parents=[env_file]
    )
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    actions.add_parser("list", help="the practices and their bots", parents=[env_file])
    # The demo needs the throwaway homeserver and test people, which a practice's install does not carry
    # (they live in devtools/, beside the application): the command stays only to say where the demo is.
    demo = command("demo", f"not in an installed bot: {DEMO_ELSEWHERE}")
    demo.add_argument("--keep", help=argparse.SUPPRESS)  # accepted, so the answer is where the demo is
    leak = command("leak-scan", "look for images, NHS numbers and keys left in clear")
    leak.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="files or directories to scan")
    leak.add_argument(
        "--master-key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="the master key file; without one, each master.key in the scanned paths is taken as one",
    )
    leak.add_argument(
        "--log",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a bot log to check line by line, too",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.env_file = getattr(args, "env_file", None)
    args.host = getattr(args, "host", None)
    args.practice = getattr(args, "practice", None)

    if args.command == "leak-scan":
        return leak_scan_command(args.paths, args.master_key, args.log, print)

    if args.command == "demo":
        print(f"The demo is not part of an installed bot: {DEMO_ELSEWHERE}.", file=sys.stderr)
        return ExitCode.USAGE
    try:
        if args.command == "practice":
            return _practice_command(args)
        if args.command == "run" and args.practice is None and (host := _host(args)) is not None:
            if args.env_file is not None:
                raise SettingsError(
                    ["--env-file names one practice's settings: a host's practices each have their own file."]
                )
            _host_logging()
            asyncio.run(_serve_host(host))
            return ExitCode.OK
        settings = _settings(args)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "init":
            asyncio.run(initialise(settings, SystemClock(), print))
        elif args.command == "run":
            asyncio.run(_serve(settings))
        elif args.command == "check":
            return asyncio.run(_check(settings))
        elif args.command == "admin":
            return asyncio.run(admin_command(settings, SystemClock(), args.words, print, _read_secret))
        elif args.command == "audit":
            return asyncio.run(verify_audit(settings, SystemClock(), print))
        elif args.command == "poster":
            return make_poster(settings, settings.practice.practice_name, args.out, print)
        elif args.command == "key":
            return asyncio.run(rotate_key(settings, _clock(settings), print))
        elif args.command == "backup":
            return asyncio.run(backup(settings, args.destination, _clock(settings), print))
        elif args.command == "restore":
            return asyncio.run(restore(settings, args.source, _clock(settings), print))
    except _TEMPORARY as error:
        print(_message(args.command, error), file=sys.stderr)
        return ExitCode.TEMPORARY
    except _NEEDS_OPERATOR as error:
        print(_message(args.command, error), file=sys.stderr)
        return ExitCode.CONFIG
    return ExitCode.OK
