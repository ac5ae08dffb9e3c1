"""The `photobot` command: init, run, check, demo. The only place that reads the process environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from bot.admin_cli import admin_command, make_poster, verify_audit
from bot.app import NotInitialisedError, initialise, open_app, run
from bot.clock import Clock, OffsetClock, SystemClock
from bot.key_rotation import KeyRotationError
from bot.keyring import MasterKeyError
from bot.leak_scan import leak_scan_command
from bot.logs import configure_logging
from bot.maintenance_cli import backup, restore, rotate_key
from bot.matrix.gateway import MatrixError
from bot.settings import Settings, SettingsError, load_settings
from storage.backup import BackupError
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.database import DatabaseError

EXIT_CONFIG = 2


def _environment(env_file: Path | None) -> Mapping[str, str]:
    """The process environment over the .env file: the environment wins, as operators expect."""
    values: dict[str, str] = {}
    path = env_file or Path(".env")
    if path.exists():
        values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    values.update(os.environ)
    return values


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(_environment(args.env_file))


def _clock(settings: Settings) -> Clock:
    if settings.test_mode and settings.test_clock_file is not None:
        return OffsetClock(settings.test_clock_file)
    return SystemClock()


async def _serve(settings: Settings) -> None:
    with DataDirLock.acquire(settings.data_dir, "the bot (photobot run)"):
        await _serve_locked(settings)


async def _serve_locked(settings: Settings) -> None:
    app = await open_app(settings, _clock(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run(app, stop)
    finally:
        await app.close()


async def _check(settings: Settings) -> int:
    """0 if all is well; 1 if stored images are damaged or the homeserver keeps refusing to delete uploads.
    (A damaged database, a bad master key or an unreachable homeserver stop it earlier, with exit code 2.)"""
    app = await open_app(settings, SystemClock())  # the master key, and the database's own check
    try:
        print("The database passed SQLite's integrity check.")
        checked, damaged = await app.damaged_images()
        if damaged:
            print(
                f"{len(damaged)} of {checked} stored image(s) cannot be shown: their files are missing or "
                "damaged. The bot will never show another image in their place. Restore the vault from a "
                "backup, or tell the clinicians these photos are lost:"
            )
            for line in damaged:
                print(f"  - {line}")
        else:
            print(f"All {checked} stored image(s) open and pass their integrity check.")
        backlog = await app.patient.media.backlog()
        if backlog.failing:
            print(
                f"{backlog.waiting} upload(s) of patients' photos wait to be deleted from the homeserver; it "
                f"refused {backlog.failing} of them, up to {backlog.most_failures} times. Check the "
                "homeserver-admin credential (`photobot admin set homeserver_admin_token ...`)."
            )
        elif backlog.waiting:
            print(f"{backlog.waiting} upload(s) of patients' photos wait to be deleted from the homeserver.")
        if remote := await app.patient.media.remote_count():
            print(f"{remote} upload(s) sent from other servers cannot be deleted by this practice.")
        user = await app.gateway.whoami()
        print(
            f"Configuration is valid; the homeserver knows the bot as {user}, device {app.gateway.device_id}."
        )
    finally:
        await app.close()
    return 1 if damaged or backlog.failing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photobot", description="GP Photo Bot")
    parser.add_argument("--env-file", type=Path, default=None, help="settings file (default: ./.env)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "init", help="create the data directory, master key, device and cross-signing identity"
    )
    commands.add_parser("run", help="serve patients and clinicians")
    commands.add_parser("check", help="validate the configuration and reach the homeserver")
    admin = commands.add_parser("admin", help="change the practice configuration, as in the admin room")
    admin.add_argument("words", nargs=argparse.REMAINDER, help="e.g. clinician add @dr.patel:example.org")
    audit = commands.add_parser("audit", help="check the audit log has not been altered")
    audit.add_argument("action", choices=["verify"])
    poster = commands.add_parser("poster", help="a printable A4 poster with a QR code for the waiting room")
    poster.add_argument("--out", type=Path, default=Path(), help="directory for the PDF and PNG")
    key = commands.add_parser("key", help="rotate the master key (the bot must be stopped)")
    key.add_argument("action", choices=["rotate"])
    backup_parser = commands.add_parser("backup", help="a consistent backup, while the bot runs")
    backup_parser.add_argument("destination", type=Path, metavar="DEST", help="a new directory")
    restore_parser = commands.add_parser("restore", help="restore a backup (the bot must be stopped)")
    restore_parser.add_argument("source", type=Path, metavar="SRC", help="a directory made by backup")
    demo = commands.add_parser("demo", help="the whole journey on a throwaway local homeserver")
    demo.add_argument("--keep", type=Path, default=None, help="keep the demo's files in this directory")
    leak = commands.add_parser("leak-scan", help="look for images, NHS numbers and keys left in clear")
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
    args = parser.parse_args(argv)

    if args.command == "leak-scan":
        return leak_scan_command(args.paths, args.master_key, args.log, print)

    if args.command == "demo":
        from bot.demo.run import run_demo  # noqa: PLC0415 (the demo pulls in test-homeserver tooling)

        return asyncio.run(run_demo(args.keep))
    try:
        settings = _settings(args)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "init":
            asyncio.run(initialise(settings, SystemClock(), print))
        elif args.command == "run":
            asyncio.run(_serve(settings))
        elif args.command == "check":
            return asyncio.run(_check(settings))
        elif args.command == "admin":
            return asyncio.run(admin_command(settings, SystemClock(), args.words, print))
        elif args.command == "audit":
            return asyncio.run(verify_audit(settings, SystemClock(), print))
        elif args.command == "poster":
            return make_poster(settings, settings.practice_name, args.out, print)
        elif args.command == "key":
            return asyncio.run(rotate_key(settings, _clock(settings), print))
        elif args.command == "backup":
            return asyncio.run(backup(settings, args.destination, _clock(settings), print))
        elif args.command == "restore":
            return asyncio.run(restore(settings, args.source, _clock(settings), print))
    except (
        SettingsError,
        MasterKeyError,
        NotInitialisedError,
        DatabaseError,
        MatrixError,
        KeyRotationError,
        BackupError,
        DataDirBusyError,
    ) as error:
        print(f"photobot {args.command}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
