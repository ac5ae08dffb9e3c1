"""One measured round: N patients, each already at the photo step, all send one photo at once.

Before the phase the bot, Synapse and the patients are idle (their idle CPU rates are measured over a few
seconds and reported). The phase starts when every patient taps "send" together and its figures are:
- CPU of the bot and of Synapse (utime + stime from /proc) from the start until every confirmation has
  arrived and the bot has fallen quiet again (so its follow-up work, redacting the photo message and
  deleting the upload from the homeserver, counts too), divided by N;
- the bot's pipeline CPU per photo (photobot_photo_pipeline_cpu_seconds, sum/count over the phase) against
  the floor measured in this process just before the phase on the same photo;
- send-to-stored per photo (tap to the confirmation in the patient's chat) and event-to-stored (the
  message accepted by the homeserver to the confirmation);
- event-loop lag (photobot_event_loop_lag_seconds, bucket counts over the phase up to the last
  confirmation, so idle time after it does not dilute them); peak RSS of the bot (VmHWM) and total time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.bots import BenchBot, new_bot
from bench.context import BenchContext
from bench.floor import Floor, measure_floor
from bench.patients import Patient, PhotoTiming, enrol, prepare_upload, send_photo
from bench.photos import GeneratedPhoto
from bench.pipeline_steps import PipelineSteps, measure_pipeline_steps
from bench.proc_stats import CpuReading, own_cpu
from bench.profiler import Recording, summarise_stacks
from bench.round_figures import CpuDeltas, round_figures

ENROL_AT_ONCE = 10  # patients walking through the questions at the same time during set-up
IDLE_SECONDS = 3.0
QUIET_POLL_SECONDS = 0.5
QUIET_CPU_SECONDS = 0.005  # the bot used less than this in each of two polls: it has nothing left to do
QUIET_LIMIT_SECONDS = 30.0
PHOTO_TIMEOUT = 600.0

LAG_TARGET_JPEG = 0.01
LAG_TARGET_HEIC = 0.05


@dataclass(frozen=True)
class Readings:
    bot: CpuReading
    synapse: CpuReading
    bench: CpuReading
    database: CpuReading
    store: CpuReading
    at: float

    @classmethod
    def now(cls, bot: BenchBot, context: BenchContext) -> Readings:
        backend = context.backend
        return cls(
            bot.cpu(),
            context.synapse_cpu(),
            own_cpu(),
            backend.database_cpu(),
            backend.object_store_cpu(),
            time.monotonic(),
        )

    def since(self, earlier: Readings) -> CpuDeltas:
        return CpuDeltas(
            (self.bot - earlier.bot).total,
            (self.synapse - earlier.synapse).total,
            (self.bench - earlier.bench).total,
            (self.database - earlier.database).total,
            (self.store - earlier.store).total,
        )


async def enrol_patients(context: BenchContext, bot: BenchBot, count: int) -> list[Patient]:
    """`count` patients at the photo step; on any failure, those already enrolled are closed."""
    slots = asyncio.Semaphore(ENROL_AT_ONCE)

    async def one() -> Patient:
        async with slots:
            localpart = context.name("patient")
            return await enrol(
                context.homeserver,
                bot.user_id,
                localpart,
                context.base_dir / "stores" / localpart,
                context.nhs_number(),
            )

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    patients = [result for result in results if isinstance(result, Patient)]
    failure = next((result for result in results if isinstance(result, BaseException)), None)
    if failure is not None:
        await close_patients(patients)
        raise failure
    return patients


async def close_patients(patients: list[Patient]) -> None:
    await asyncio.gather(*(patient.person.close() for patient in patients), return_exceptions=True)


async def idle_rates(bot: BenchBot, context: BenchContext) -> CpuDeltas:
    """CPU seconds per second each side uses while nobody sends anything (patients' syncs only)."""
    before = Readings.now(bot, context)
    await asyncio.sleep(IDLE_SECONDS)
    after = Readings.now(bot, context)
    spent = after.since(before)
    seconds = after.at - before.at
    return CpuDeltas(
        spent.bot / seconds,
        spent.synapse / seconds,
        spent.bench / seconds,
        spent.database / seconds,
        spent.store / seconds,
    )


async def until_quiet(bot: BenchBot) -> float:
    """Wait until the bot has used (almost) no CPU for two polls in a row; seconds waited."""
    started = time.monotonic()
    quiet_polls = 0
    last = bot.cpu().total
    while quiet_polls < 2 and time.monotonic() - started < QUIET_LIMIT_SECONDS:
        await asyncio.sleep(QUIET_POLL_SECONDS)
        now = bot.cpu().total
        quiet_polls = quiet_polls + 1 if now - last < QUIET_CPU_SECONDS else 0
        last = now
    return time.monotonic() - started


def profiled(
    context: BenchContext, bot: BenchBot, label: str
) -> contextlib.AbstractAsyncContextManager[object]:
    """A py-spy recording of the phase when the run profiles, else nothing."""
    if context.profile_dir is None:
        return contextlib.nullcontext()
    return Recording(bot.pid, context.profile_dir / f"{context.phase_label(label)}.txt")


def profile_summary(path: Path) -> dict[str, Any]:
    return summarise_stacks(path.read_text().splitlines()) if path.exists() else {}


def _floor_and_steps(jpeg: bytes, scratch: Path) -> tuple[Floor, PipelineSteps]:
    return measure_floor(jpeg, scratch), measure_pipeline_steps(jpeg, scratch)


async def photo_round(context: BenchContext, label: str, photo: GeneratedPhoto, count: int) -> dict[str, Any]:
    """Run one round with a fresh bot; the figures as a JSON-ready mapping. For a JPEG, the floor and the
    pipeline's steps are measured on the same photo just before the phase."""
    name = context.name("photobot")
    bot = await new_bot(
        context.homeserver, context.admin_token, context.base_dir, name, await context.bot_environment(name)
    )
    await bot.process.start()
    patients: list[Patient] = []
    try:
        context.say(f"[{label} {context.backend.name}] enrolling {count} patient(s) up to the photo step ...")
        setup_started = time.monotonic()
        patients = await enrol_patients(context, bot, count)
        setup_seconds = time.monotonic() - setup_started
        prepared = [prepare_upload(photo) for _ in patients]
        floor, steps = (
            await asyncio.to_thread(_floor_and_steps, photo.data, context.base_dir)
            if photo.mimetype == "image/jpeg"
            else (None, None)
        )
        idle = await idle_rates(bot, context)
        context.say(
            f"[{label} {context.backend.name}] set up in {setup_seconds:.0f} s; {count} photo(s) sent at once ..."
        )
        async with aiohttp.ClientSession() as session, profiled(context, bot, label):
            before_metrics = await bot.metrics(session)
            rss_before = bot.rss_kib()
            before = Readings.now(bot, context)
            results = await asyncio.gather(
                *(
                    send_photo(patient, photo, upload, timeout=PHOTO_TIMEOUT)
                    for patient, upload in zip(patients, prepared, strict=True)
                ),
                return_exceptions=True,
            )
            last = Readings.now(bot, context)
            at_last_metrics = await bot.metrics(session)
            quiet_seconds = await until_quiet(bot)
            after = Readings.now(bot, context)
            after_metrics = await bot.metrics(session)
        timings = [result for result in results if isinstance(result, PhotoTiming)]
        finished = max((timing.confirmed for timing in timings), default=last.at)
        figures = round_figures(
            label=label,
            backend=context.backend.name,
            photo=photo,
            count=count,
            timings=timings,
            failures=len(results) - len(timings),
            setup_seconds=setup_seconds,
            started=before.at,
            finished=finished,
            spent=after.since(before),
            spent_to_last=last.since(before),
            idle=idle,
            quiet_seconds=quiet_seconds,
            floor=floor,
            steps=steps,
            before=before_metrics,
            at_last=at_last_metrics,
            after=after_metrics,
            rss_before_kib=rss_before,
            peak_rss_kib=bot.peak_rss_kib(),
            lag_target=LAG_TARGET_HEIC if photo.mimetype == "image/heic" else LAG_TARGET_JPEG,
        )
        if context.profile_dir is not None:
            figures["profile"] = profile_summary(context.profile_dir / f"{context.phase_label(label)}.txt")
        context.say(
            f"[{label} {context.backend.name}] {len(timings)}/{count} photos stored in {figures['total_seconds']:.1f} s"
        )
        return figures
    finally:
        await close_patients(patients)
        with contextlib.suppress(Exception):
            await bot.process.stop()
