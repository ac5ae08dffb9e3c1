"""The figures of one photo round, as a JSON-ready mapping, from what the round recorded.

CPU figures are per photo (the phase's utime + stime delta divided by the photos sent); histogram figures
are deltas between two scrapes of the bot's /metrics; the floor and the pipeline's steps were measured in
the bench process on the same photo just before the phase.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bench.floor import Floor
from bench.patients import PhotoTiming
from bench.photos import GeneratedPhoto
from bench.pipeline_steps import PipelineSteps
from bench.prometheus import HistogramDelta, Samples, histogram_delta
from bench.stats import ms, percentile, ratio

LAG = "photobot_event_loop_lag_seconds"
PIPELINE_CPU = "photobot_photo_pipeline_cpu_seconds"
PROCESSING = "photobot_photo_processing_seconds"


@dataclass(frozen=True)
class CpuDeltas:
    bot: float
    synapse: float
    bench: float
    # The database and object-store servers (none with SQLite and a file vault: that work is in the bot).
    database: float = 0.0
    store: float = 0.0

    @property
    def servers(self) -> float:
        return self.database + self.store


def _lag_figures(lag: HistogramDelta | None, target: float) -> dict[str, Any]:
    within = lag.fraction_at_most(target) if lag is not None and target in lag.bounds else None
    return {
        "loop_lag_p50_ms": ms(lag.quantile(0.50)) if lag is not None else None,
        "loop_lag_p99_ms": ms(lag.quantile(0.99)) if lag is not None else None,
        "loop_lag_max_bucket_ms": ms(_highest_bound_used(lag)) if lag is not None else None,
        "loop_lag_samples": int(lag.count) if lag is not None else 0,
        "loop_lag_share_within_target": None if within is None else round(within, 4),
        "loop_lag_target_ms": ms(target),
    }


def _highest_bound_used(lag: HistogramDelta) -> float | None:
    """The upper bound of the highest bucket that counted anything; None for +Inf (or nothing counted)."""
    bound = next((b for b, c in zip(lag.bounds, lag.cumulative, strict=True) if c >= lag.count), None)
    return None if bound is None or bound == float("inf") else bound


def _costs(measured: Floor | PipelineSteps) -> dict[str, dict[str, float | None]]:
    return {
        name: {"cpu_ms": ms(cost["cpu"]), "wall_ms": ms(cost["wall"])}
        for name, cost in asdict(measured).items()
        if isinstance(cost, dict)
    }


def _floor_figures(floor: Floor | None, steps: PipelineSteps | None) -> dict[str, Any]:
    if floor is None or steps is None:
        return {"floor": None, "floor_cpu_ms": None, "pipeline_steps": None, "pipeline_steps_cpu_ms": None}
    return {
        "floor": {"bytes": floor.size, **_costs(floor)},
        "floor_cpu_ms": ms(floor.cpu),
        "pipeline_steps": _costs(steps),
        "pipeline_steps_cpu_ms": ms(steps.cpu),
    }


def _timing_figures(timings: list[PhotoTiming]) -> dict[str, Any]:
    to_stored = [timing.send_to_stored for timing in timings]
    from_event = [timing.event_to_stored for timing in timings]
    return {
        "send_to_stored_p50_ms": ms(percentile(to_stored, 0.50)),
        "send_to_stored_p95_ms": ms(percentile(to_stored, 0.95)),
        "send_to_stored_max_ms": ms(max(to_stored, default=None)),
        "event_to_stored_p50_ms": ms(percentile(from_event, 0.50)),
        "event_to_stored_p95_ms": ms(percentile(from_event, 0.95)),
        "upload_and_send_p50_ms": ms(percentile([t.sent - t.tapped for t in timings], 0.50)),
    }


def _per_photo(seconds: float, photos: int) -> float | None:
    return ms(seconds / photos) if photos else None


def round_figures(
    *,
    label: str,
    backend: str,
    photo: GeneratedPhoto,
    count: int,
    timings: list[PhotoTiming],
    failures: int,
    setup_seconds: float,
    started: float,
    finished: float,
    spent: CpuDeltas,
    spent_to_last: CpuDeltas,
    idle: CpuDeltas,
    quiet_seconds: float,
    floor: Floor | None,
    steps: PipelineSteps | None,
    before: Samples,
    at_last: Samples,
    after: Samples,
    rss_before_kib: int,
    peak_rss_kib: int,
    lag_target: float,
) -> dict[str, Any]:
    pipeline = histogram_delta(before, after, PIPELINE_CPU)
    processing = histogram_delta(before, after, PROCESSING)
    pipeline_ms = ms(pipeline.mean) if pipeline is not None else None
    bot_ms = _per_photo(spent.bot, count)
    synapse_ms = _per_photo(spent.synapse, count)
    # With SQLite there are no servers: their work is inside the bot's figure ("-", not 0).
    servers = backend != "sqlite"
    servers_ms = _per_photo(spent.servers, count) if servers else None
    return {
        "label": label,
        "backend": backend,
        "format": "HEIC" if photo.mimetype == "image/heic" else "JPEG",
        "patients": count,
        "photo_bytes": len(photo.data),
        "photo_megapixels": round(photo.width * photo.height / 1e6, 2),
        "photos_confirmed": len(timings),
        "photos_failed": failures,
        "confirmations_asking_retake": sum(1 for timing in timings if timing.confirmation == "retake"),
        "setup_seconds": round(setup_seconds, 1),
        "total_seconds": round(finished - started, 3),
        "quiet_after_seconds": round(quiet_seconds, 2),
        "bot_cpu_per_photo_ms": bot_ms,
        "synapse_cpu_per_photo_ms": synapse_ms,
        "bot_to_synapse_cpu_ratio": ratio(bot_ms, synapse_ms),
        "servers_cpu_per_photo_ms": servers_ms,
        "database_cpu_per_photo_ms": _per_photo(spent.database, count) if servers else None,
        "object_store_cpu_per_photo_ms": _per_photo(spent.store, count) if servers else None,
        "bot_and_servers_cpu_per_photo_ms": _per_photo(spent.bot + spent.servers, count),
        "bot_cpu_per_photo_to_last_confirmation_ms": _per_photo(spent_to_last.bot, count),
        "synapse_cpu_per_photo_to_last_confirmation_ms": _per_photo(spent_to_last.synapse, count),
        "bench_cpu_per_photo_ms": _per_photo(spent.bench, count),
        "idle_cpu_share": {
            "bot": round(idle.bot, 4),
            "synapse": round(idle.synapse, 4),
            "bench": round(idle.bench, 4),
            "database": round(idle.database, 4),
            "object_store": round(idle.store, 4),
        },
        "pipeline_cpu_per_photo_ms": pipeline_ms,
        "pipeline_photos_counted": int(pipeline.count) if pipeline is not None else 0,
        **_floor_figures(floor, steps),
        "pipeline_to_floor_ratio": ratio(pipeline_ms, ms(floor.cpu) if floor is not None else None),
        "photo_processing_p50_ms": ms(processing.quantile(0.5)) if processing is not None else None,
        **_timing_figures(timings),
        **_lag_figures(histogram_delta(before, at_last, LAG), lag_target),
        "bot_rss_before_mb": round(rss_before_kib * 1024 / 1e6, 1),
        "bot_peak_rss_mb": round(peak_rss_kib * 1024 / 1e6, 1),
        "metrics_available": bool(after),
    }
