"""A whole benchmark run: a throwaway Synapse, one fresh bot per round, the results file and the table."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.backends import DESCRIPTIONS, SQLITE, Backends
from bench.clinician_round import clinician_round
from bench.context import BenchContext
from bench.machine import describe, load_average
from bench.photo_round import photo_round
from bench.photos import FULL_SIZE, SMALL_SIZE, camera_jpeg, iphone_heic
from bench.table import backends_table, clinician_table, compare_backends, rounds_table, verdicts_table
from bench.targets import Verdict, judge
from devtools.local_homeserver import LocalHomeserver, default_synapse_python

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
HOOKS_DIR = PROJECT_ROOT / "bench" / "bot_hooks"


@dataclass(frozen=True)
class Plan:
    """What to run: JPEG rounds of these sizes, a HEIC round of `heic` patients (0: none), the clinician path."""

    jpeg_sizes: tuple[int, ...] = (1, 10, 50)
    heic: int = 10
    clinician: tuple[int, int] | None = (3, 10)  # (patients, photos each) viewed by the clinician; None: skip
    small: bool = False  # a 1024 x 768 photo instead of 12 megapixels (the smoke test)
    results_dir: Path = RESULTS_DIR
    keep: Path | None = None
    profile: Path | None = None  # py-spy each measured phase into this directory (bench.profiler)
    bot_env: tuple[tuple[str, str], ...] = ()  # extra PHOTOBOT_* settings for every bot (experiments)
    switch_interval: float | None = None  # the bots' GIL switch interval in seconds (bench/bot_hooks)
    # Each photo round runs once per backend, in this order, interleaved (N=50 on each before the next size);
    # the clinician round and the targets of issue 6 use the first.
    backends: tuple[str, ...] = (SQLITE,)


def _bot_env(plan: Plan) -> dict[str, str]:
    env = dict(plan.bot_env)
    if plan.switch_interval is not None:
        env["PYTHONPATH"] = str(HOOKS_DIR)
        env["BENCH_SWITCH_INTERVAL"] = repr(plan.switch_interval)
    return env


def _say(text: str) -> None:
    print(f"   {text}", flush=True)


def report(results: dict[str, Any]) -> str:
    """The printed summary of a results document."""
    parts = [
        "",
        "Rounds (per photo unless said; CPU = utime + stime from /proc):",
        rounds_table(results["rounds"]),
    ]
    if len(results.get("backends", [])) > 1:
        parts += [
            "",
            f"Backends side by side (ratio to {results['backends'][0]['name']}, same run):",
            backends_table(results["backend_comparison"]),
        ]
    if results["clinician"] is not None:
        parts += ["", "Clinician path (!view):", clinician_table(results["clinician"])]
    verdicts = [Verdict(**verdict) for verdict in results["targets"]]
    parts += ["", "Targets (issue 6):", verdicts_table(verdicts)]
    return "\n".join(parts)


async def run_bench(plan: Plan, argv: list[str]) -> tuple[dict[str, Any], Path]:
    """Run everything in `plan`; (the results document, the file it was written to)."""
    started = time.monotonic()
    stamp = datetime.now(UTC)
    base = plan.keep or Path(tempfile.mkdtemp(prefix="photobot-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    size = SMALL_SIZE if plan.small else FULL_SIZE
    synapse_python = default_synapse_python(PROJECT_ROOT)
    machine = describe(synapse_python)
    _say(f"{machine['cpus']} CPUs ({machine['cpu_model']}), load {machine['load_average_at_start']}")
    _say(f"generating the test photos ({size[0]} x {size[1]}) ...")
    jpeg = camera_jpeg(size)
    heic = iphone_heic(size) if plan.heic else None
    homeserver = LocalHomeserver(base / "synapse", synapse_python=synapse_python, log=_say)
    rounds: list[dict[str, Any]] = []
    heic_rounds: list[dict[str, Any]] = []
    try:
        await homeserver.start()
        async with Backends(plan.backends, base) as backends:
            admin = await homeserver.register_user("benchadmin", "pw-bench-admin", admin=True)
            first = BenchContext(
                homeserver, admin.access_token, base, _say, profile_dir=plan.profile, bot_env=_bot_env(plan)
            )
            contexts = [dataclasses.replace(first, backend=backend) for backend in backends]
            for count in plan.jpeg_sizes:
                rounds += [await photo_round(context, f"jpeg-{count}", jpeg, count) for context in contexts]
            if heic is not None:
                heic_rounds += [
                    await photo_round(context, f"heic-{plan.heic}", heic, plan.heic) for context in contexts
                ]
            clinician = await clinician_round(contexts[0], jpeg, *plan.clinician) if plan.clinician else None
    finally:
        await homeserver.stop()
        if plan.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    all_rounds = [*rounds, *heic_rounds]
    judged = plan.backends[0]
    verdicts = judge(
        [r for r in rounds if r["backend"] == judged],
        next((r for r in heic_rounds if r["backend"] == judged), None),
        clinician,
    )
    results: dict[str, Any] = {
        "started_at": stamp.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *argv]),
        "machine": machine | {"load_average_at_end": load_average()},
        "note": "the CPUs may be shared with other work (see the load averages): compare ratios within one run",
        "profiled": plan.profile is not None,
        "bot_settings": dict(plan.bot_env),
        "bot_switch_interval": plan.switch_interval,
        "backends": [{"name": name, "description": DESCRIPTIONS[name]} for name in plan.backends],
        "targets_judged_on": judged,
        "photos": {
            "jpeg_bytes": len(jpeg.data),
            "heic_bytes": len(heic.data) if heic else None,
            "width": size[0],
            "height": size[1],
        },
        "rounds": all_rounds,
        "backend_comparison": compare_backends(all_rounds, plan.backends),
        "clinician": clinician,
        "targets": [asdict(verdict) for verdict in verdicts],
        "duration_seconds": round(time.monotonic() - started, 1),
    }
    plan.results_dir.mkdir(parents=True, exist_ok=True)
    path = plan.results_dir / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results, path
