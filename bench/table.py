"""The printed summary: one line of figures per round, then each target with its verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.targets import Verdict

ROUND_COLUMNS: tuple[tuple[str, str], ...] = (
    ("round", "label"),
    ("photos", "photos_confirmed"),
    ("total s", "total_seconds"),
    ("bot CPU/photo ms", "bot_cpu_per_photo_ms"),
    ("Synapse CPU/photo ms", "synapse_cpu_per_photo_ms"),
    ("bot/Synapse", "bot_to_synapse_cpu_ratio"),
    ("pipeline CPU ms", "pipeline_cpu_per_photo_ms"),
    ("floor ms", "floor_cpu_ms"),
    ("pipeline/floor", "pipeline_to_floor_ratio"),
    ("send-to-stored p50 ms", "send_to_stored_p50_ms"),
    ("p95 ms", "send_to_stored_p95_ms"),
    ("lag p50 ms", "loop_lag_p50_ms"),
    ("lag p99 ms", "loop_lag_p99_ms"),
    ("peak RSS MB", "bot_peak_rss_mb"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    lines = [" | ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * width for width in widths))
    lines += [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def rounds_table(rounds: Sequence[Mapping[str, Any]]) -> str:
    headers = [header for header, _ in ROUND_COLUMNS]
    rows = [[_cell(figures.get(key)) for _, key in ROUND_COLUMNS] for figures in rounds]
    return render_table(headers, rows)


def clinician_table(clinician: Mapping[str, Any]) -> str:
    keys = (
        "photos",
        "total_seconds",
        "forward_p50_ms",
        "forward_p95_ms",
        "client_first_image_p50_ms",
        "client_mean_per_image_ms",
        "bot_cpu_per_photo_ms",
        "synapse_cpu_per_photo_ms",
        "bot_peak_rss_mb",
    )
    return render_table(list(keys), [[_cell(clinician.get(key)) for key in keys]])


def verdicts_table(verdicts: Sequence[Verdict]) -> str:
    return render_table(["target", "this run", "verdict"], [[v.target, v.figure, v.status] for v in verdicts])
