"""The clinician path: `!view` of 30 stored photos in a clinician room, and how long each takes to arrive.

Set-up (not measured): a fresh bot with a clinician room and one allowlisted clinician, and three patients
who each send ten photos (the same generated 12-megapixel JPEG) and finish their submission. Measured:
the clinician types `!view REF` for each submission in turn; the bot decrypts each photo from its vault,
encrypts it as a Matrix attachment, uploads it and posts it as an encrypted m.image.

Forward time per photo is read from the bot's photobot_photo_forward_seconds histogram (p50/p95 over the
phase); the clinician's side is timed too: from the command to the first image, and the mean time per
image from the command to the last image of its submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import nio

from bench.bots import BenchBot, new_bot
from bench.context import BenchContext
from bench.patients import Patient, prepare_upload, send_photo
from bench.photo_round import Readings, close_patients, enrol_patients, profile_summary, profiled
from bench.photos import GeneratedPhoto
from bench.prometheus import HistogramDelta, histogram_delta
from bench.stats import ms, percentile, ratio
from bench.targets import FORWARD_P50_MS
from bot.ids import RoomID
from devtools.demo.people import Person

FORWARD = "photobot_photo_forward_seconds"
STEP_TIMEOUT = 300.0
LABEL = "clinician-view"
FORWARD_TARGET = FORWARD_P50_MS / 1000  # a bucket bound of photobot_photo_forward_seconds: the check is exact


async def _clinician_room(clinician: Person, bot: BenchBot) -> RoomID:
    response = await clinician.client.room_create(
        name="Clinicians",
        invite=[bot.user_id],
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    if not isinstance(response, nio.RoomCreateResponse):
        raise RuntimeError("creating the clinician room failed")
    room_id = RoomID(response.room_id)
    await clinician.wait_until(lambda: room_id in clinician.client.rooms, timeout=STEP_TIMEOUT)
    return room_id


async def _bot_joined(clinician: Person, room_id: RoomID, bot: BenchBot) -> None:
    def joined() -> bool:
        room = clinician.client.rooms.get(room_id)
        return room is not None and bot.user_id in room.users and bot.user_id not in room.invited_users

    await clinician.wait_until(joined, timeout=STEP_TIMEOUT)


async def _submit(patient: Patient, photo: GeneratedPhoto, photos: int) -> str:
    """Send `photos` photos one after another, say DONE; the submission's reference."""
    for number in range(1, photos + 1):
        await send_photo(patient, photo, prepare_upload(photo), number=number, timeout=STEP_TIMEOUT)
    person, room_id = patient.person, patient.room_id
    before = len(person.seen.get(room_id, []))
    await person.say(room_id, "done")
    reply = await person.wait_for_text(room_id, "reference is", after=before, timeout=STEP_TIMEOUT)
    return reply.body.split("reference is ")[1].split(".")[0].strip("*")


def _images(person: Person, room_id: RoomID) -> int:
    return sum(1 for seen in person.seen.get(room_id, []) if seen.kind == "image")


async def _view(clinician: Person, room_id: RoomID, reference: str, photos: int) -> list[float]:
    """Type `!view REF`; the seconds from the command until each of its images arrived."""
    start_count = _images(clinician, room_id)
    started = time.monotonic()
    await clinician.say(room_id, f"!view {reference}")
    arrivals: list[float] = []
    while len(arrivals) < photos:
        seen = start_count + len(arrivals)
        await clinician.wait_until(
            lambda seen=seen: _images(clinician, room_id) > seen,
            timeout=STEP_TIMEOUT,
        )
        now = time.monotonic() - started
        arrivals += [now] * (_images(clinician, room_id) - seen)
    return arrivals[:photos]


def _share(forward: HistogramDelta | None, bound: float) -> float | None:
    if forward is None or bound not in forward.bounds:
        return None
    share = forward.fraction_at_most(bound)
    return None if share is None else round(share, 4)


async def clinician_round(
    context: BenchContext, photo: GeneratedPhoto, submissions: int, photos_per_submission: int
) -> dict[str, Any]:
    """`submissions` patients each send `photos_per_submission` photos; the clinician views them all."""
    name = context.name("photobot")
    bot = await new_bot(
        context.homeserver,
        context.admin_token,
        context.base_dir,
        name,
        await context.bot_environment(name, {"PHOTOBOT_MAX_PHOTOS": str(photos_per_submission)}),
    )
    clinician_name = context.name("clinician")
    clinician = await Person.sign_up(
        context.homeserver, clinician_name, context.base_dir / "stores" / clinician_name
    )
    patients: list[Patient] = []
    try:
        room_id = await _clinician_room(clinician, bot)
        bot.process.env |= {"PHOTOBOT_CLINICIAN_ROOMS": room_id, "PHOTOBOT_CLINICIANS": clinician.user_id}
        await bot.process.start()
        await _bot_joined(clinician, room_id, bot)
        total = submissions * photos_per_submission
        context.say(f"[clinician] {submissions} patient(s) send {photos_per_submission} photo(s) each ...")
        patients = await enrol_patients(context, bot, submissions)
        references = await asyncio.gather(
            *(_submit(patient, photo, photos_per_submission) for patient in patients)
        )
        await clinician.wait_until(
            lambda: all(any(ref in text for text in clinician.texts(room_id)) for ref in references),
            timeout=STEP_TIMEOUT,
        )
        await clinician.settled(room_id, quiet=1.0)
        context.say(f"[clinician] !view of {total} photos ...")
        async with aiohttp.ClientSession() as session, profiled(context, bot, LABEL):
            before_metrics = await bot.metrics(session)
            before = Readings.now(bot, context)
            per_view = [
                await _view(clinician, room_id, reference, photos_per_submission) for reference in references
            ]
            after = Readings.now(bot, context)
            after_metrics = await bot.metrics(session)
        spent = after.since(before)
        forward = histogram_delta(before_metrics, after_metrics, FORWARD)
        first = [arrivals[0] for arrivals in per_view]
        mean_each = [arrivals[-1] / len(arrivals) for arrivals in per_view]
        bot_ms = ms(spent.bot / total)
        synapse_ms = ms(spent.synapse / total)
        figures: dict[str, Any] = {
            "label": f"clinician-view-{total}",
            "backend": context.backend.name,
            "photos": total,
            "views": len(references),
            "photo_bytes": len(photo.data),
            "forward_p50_ms": ms(forward.quantile(0.50)) if forward else None,
            "forward_p95_ms": ms(forward.quantile(0.95)) if forward else None,
            "forward_mean_ms": ms(forward.mean) if forward else None,
            "forward_counted": int(forward.count) if forward else 0,
            "forward_share_within_60ms": _share(forward, FORWARD_TARGET),
            "client_first_image_p50_ms": ms(percentile(first, 0.5)),
            "client_mean_per_image_ms": ms(sum(mean_each) / len(mean_each)),
            "total_seconds": round(after.at - before.at, 3),
            "bot_cpu_per_photo_ms": bot_ms,
            "synapse_cpu_per_photo_ms": synapse_ms,
            "bot_to_synapse_cpu_ratio": ratio(bot_ms, synapse_ms),
            "bot_peak_rss_mb": round(bot.peak_rss_kib() * 1024 / 1e6, 1),
            "metrics_available": bool(after_metrics),
        }
        if context.profile_dir is not None:
            figures["profile"] = profile_summary(context.profile_dir / f"{context.phase_label(LABEL)}.txt")
        context.say(f"[clinician] {total} photos shown in {figures['total_seconds']:.1f} s")
        return figures
    finally:
        await close_patients(patients)
        await clinician.close()
        with contextlib.suppress(Exception):
            await bot.process.stop()
