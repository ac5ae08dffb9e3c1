"""`python -m bench`: run the performance benchmark and print its table (see bench/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.backends import parse_backends
from bench.run import RESULTS_DIR, Plan, report, run_bench


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("a comma-separated list of patient counts, like 1,10,50")
    return sizes


def _backends(text: str) -> tuple[str, ...]:
    try:
        return parse_backends(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError("a setting is NAME=VALUE, like CPU_WORKERS=1")
    return f"PHOTOBOT_{name.strip().upper().removeprefix('PHOTOBOT_')}", value


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description="GP Photo Bot performance benchmark")
    parser.add_argument("--sizes", type=_sizes, default=(1, 10, 50), help="JPEG rounds: patients per round")
    parser.add_argument("--heic", type=int, default=10, help="patients in the HEIC round (0: skip it)")
    parser.add_argument("--no-clinician", action="store_true", help="skip the clinician !view round")
    parser.add_argument("--clinician-patients", type=int, default=3, help="submissions the clinician views")
    parser.add_argument("--clinician-photos", type=int, default=10, help="photos in each (at most 20)")
    parser.add_argument(
        "--backend",
        type=_backends,
        default=("sqlite",),
        help="engines, comma-separated: sqlite (file + local vault), postgres (PostgreSQL + S3); each photo "
        "round runs on each, side by side",
    )
    parser.add_argument("--small", action="store_true", help="a 1024x768 photo instead of 12 MP (smoke test)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the results JSON is written")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run's files (logs, stores) here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="sample the bot with py-spy in each phase; stacks go here"
    )
    parser.add_argument(
        "--bot-setting",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for every bot, e.g. CPU_WORKERS=1 (PHOTOBOT_ is added); for experiments",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the bots with this GIL switch interval (sys.setswitchinterval); an experiment",
    )
    args = parser.parse_args(args_list)
    plan = Plan(
        jpeg_sizes=args.sizes,
        heic=args.heic,
        clinician=None if args.no_clinician else (args.clinician_patients, args.clinician_photos),
        small=args.small,
        results_dir=args.results,
        keep=args.keep,
        profile=args.profile,
        bot_env=tuple(args.bot_setting),
        switch_interval=args.switch_interval,
        backends=args.backend,
    )
    results, path = asyncio.run(run_bench(plan, args_list))
    print(report(results))
    print(f"\nResults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
