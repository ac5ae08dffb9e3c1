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
from bot.keyring import MasterKeyError
from bot.logs import configure_logging
from bot.matrix.gateway import MatrixError
from bot.settings import Settings, SettingsError, load_settings
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
    app = await open_app(settings, _clock(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run(app, stop)
    finally:
        await app.close()


async def _check(settings: Settings) -> None:
    app = await open_app(settings, SystemClock())
    try:
        user = await app.gateway.whoami()
        print(
            f"Configuration is valid; the homeserver knows the bot as {user}, device {app.gateway.device_id}."
        )
    finally:
        await app.close()


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
    demo = commands.add_parser("demo", help="the whole journey on a throwaway local homeserver")
    demo.add_argument("--keep", type=Path, default=None, help="keep the demo's files in this directory")
    args = parser.parse_args(argv)

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
            asyncio.run(_check(settings))
        elif args.command == "admin":
            return asyncio.run(admin_command(settings, SystemClock(), args.words, print))
        elif args.command == "audit":
            return asyncio.run(verify_audit(settings, SystemClock(), print))
        elif args.command == "poster":
            return make_poster(settings, settings.practice_name, args.out, print)
    except (SettingsError, MasterKeyError, NotInitialisedError, DatabaseError, MatrixError) as error:
        print(f"photobot {args.command}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
