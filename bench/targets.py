"""Issue 6's targets, judged from one run's figures: each HELD, MISSED, or NOT MEASURED (and why)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HELD, MISSED, NOT_MEASURED = "HELD", "MISSED", "NOT MEASURED"

CPU_RATIO_LIMIT = 0.4
FLOOR_RATIO_LIMIT = 1.5
JPEG_LAG_P99_MS = 10.0
PEAK_RSS_MB = 200.0
HEIC_LAG_P99_MS = 50.0
FORWARD_P50_MS = 60.0
# Memory bounded by photos in flight: each of the 40 extra patients between N = 10 and N = 50 may add at
# most this much to the peak (a fifth of one 5 MB photo). Were every photo held at once, each would add
# several megabytes (the download, the decrypted copy, the cleaned copy).
RSS_PER_EXTRA_PATIENT_MB = 1.0

Figures = Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    target: str
    figure: str
    status: str


def _status(value: float | None, limit: float) -> str:
    if value is None:
        return NOT_MEASURED
    return HELD if value <= limit else MISSED


def _round(rounds: Sequence[Figures], patients: int, form: str = "JPEG") -> Figures | None:
    return next((r for r in rounds if r["patients"] == patients and r["format"] == form), None)


def _lag_status(figures: Figures) -> str:
    """Exact when the target is a bucket bound: p99 <= target iff >= 99% of samples are within it."""
    share = figures.get("loop_lag_share_within_target")
    if share is None:
        return _status(figures.get("loop_lag_p99_ms"), float(figures.get("loop_lag_target_ms") or 0))
    return HELD if share >= 0.99 else MISSED


def judge(rounds: Sequence[Figures], heic: Figures | None, clinician: Figures | None) -> list[Verdict]:
    """One verdict per target of issue 6, in the issue's order."""
    big = _round(rounds, 50)
    return [
        *_big_round_verdicts(big),
        _heic_verdict(heic if heic is not None and heic["patients"] == 10 else None),
        _forward_verdict(clinician),
        _memory_verdict(_round(rounds, 10), big),
    ]


def _big_round_verdicts(big: Figures | None) -> list[Verdict]:
    names = (
        f"N=50 bot CPU/photo <= {CPU_RATIO_LIMIT} x Synapse CPU/photo",
        f"N=50 pipeline CPU/photo <= {FLOOR_RATIO_LIMIT} x floor",
        f"N=50 event-loop lag p99 <= {JPEG_LAG_P99_MS:g} ms",
        f"N=50 bot peak RSS <= {PEAK_RSS_MB:g} MB",
    )
    if big is None:
        return [Verdict(name, "N=50 JPEG was not run", NOT_MEASURED) for name in names]
    cpu_ratio, floor_ratio = big["bot_to_synapse_cpu_ratio"], big["pipeline_to_floor_ratio"]
    return [
        Verdict(
            names[0],
            f"{big['bot_cpu_per_photo_ms']} ms vs {big['synapse_cpu_per_photo_ms']} ms = {cpu_ratio} x",
            _status(cpu_ratio, CPU_RATIO_LIMIT),
        ),
        Verdict(
            names[1],
            f"{big['pipeline_cpu_per_photo_ms']} ms vs floor {big['floor_cpu_ms']} ms = {floor_ratio} x",
            _status(floor_ratio, FLOOR_RATIO_LIMIT),
        ),
        Verdict(
            names[2],
            f"p99 {big['loop_lag_p99_ms']} ms ({big['loop_lag_samples']} samples)",
            _lag_status(big) if big["loop_lag_samples"] else NOT_MEASURED,
        ),
        Verdict(names[3], f"{big['bot_peak_rss_mb']} MB", _status(big["bot_peak_rss_mb"], PEAK_RSS_MB)),
    ]


def _heic_verdict(heic: Figures | None) -> Verdict:
    name = f"HEIC N=10 event-loop lag p99 <= {HEIC_LAG_P99_MS:g} ms"
    if heic is None or not heic["loop_lag_samples"]:
        return Verdict(name, "HEIC N=10 was not run" if heic is None else "no lag samples", NOT_MEASURED)
    return Verdict(
        name, f"p99 {heic['loop_lag_p99_ms']} ms ({heic['loop_lag_samples']} samples)", _lag_status(heic)
    )


def _forward_verdict(clinician: Figures | None) -> Verdict:
    name = f"clinician forward p50 <= {FORWARD_P50_MS:g} ms"
    if clinician is None:
        return Verdict(name, "not run", NOT_MEASURED)
    p50 = clinician["forward_p50_ms"]
    if p50 is None:
        client = clinician["client_mean_per_image_ms"]
        return Verdict(name, f"bot histogram missing; clinician-side mean {client} ms/image", NOT_MEASURED)
    share = clinician.get("forward_share_within_60ms")
    status = _status(p50, FORWARD_P50_MS) if share is None else (HELD if share >= 0.5 else MISSED)
    return Verdict(name, f"p50 {p50} ms, p95 {clinician['forward_p95_ms']} ms", status)


def _memory_verdict(ten: Figures | None, fifty: Figures | None) -> Verdict:
    name = "memory bounded by photos in flight, not patients (peak RSS N=10 vs N=50)"
    if ten is None or fifty is None:
        return Verdict(name, "needs both N=10 and N=50", NOT_MEASURED)
    growth = (fifty["bot_peak_rss_mb"] - ten["bot_peak_rss_mb"]) / 40
    figure = (
        f"{ten['bot_peak_rss_mb']} MB -> {fifty['bot_peak_rss_mb']} MB: {growth:.2f} MB per extra patient"
        f" (limit {RSS_PER_EXTRA_PATIENT_MB:g})"
    )
    return Verdict(name, figure, _status(growth, RSS_PER_EXTRA_PATIENT_MB))
