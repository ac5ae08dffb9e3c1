"""The printed summary: one line of figures per round, then each target with its verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.targets import Verdict

ROUND_COLUMNS: tuple[tuple[str, str], ...] = (
    ("round", "label"),
    ("backend", "backend"),
    ("photos", "photos_confirmed"),
    ("total s", "total_seconds"),
    ("bot CPU/photo ms", "bot_cpu_per_photo_ms"),
    ("Synapse CPU/photo ms", "synapse_cpu_per_photo_ms"),
    ("bot/Synapse", "bot_to_synapse_cpu_ratio"),
    ("DB+S3 CPU/photo ms", "servers_cpu_per_photo_ms"),
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


# What the backends are compared on: (printed name, figure of a round).
COMPARED: tuple[tuple[str, str], ...] = (
    ("bot CPU/photo ms", "bot_cpu_per_photo_ms"),
    ("DB+S3 servers CPU/photo ms", "servers_cpu_per_photo_ms"),
    ("  of which PostgreSQL", "database_cpu_per_photo_ms"),
    ("  of which object store", "object_store_cpu_per_photo_ms"),
    ("bot + servers CPU/photo ms", "bot_and_servers_cpu_per_photo_ms"),
    ("send-to-stored p50 ms", "send_to_stored_p50_ms"),
    ("send-to-stored p95 ms", "send_to_stored_p95_ms"),
    ("bot peak RSS MB", "bot_peak_rss_mb"),
    ("Synapse CPU/photo ms", "synapse_cpu_per_photo_ms"),
)


def _ratio(value: Any, base: Any) -> float | None:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or base == 0:
        return None
    return round(value / base, 2)


def compare_backends(rounds: Sequence[Mapping[str, Any]], backends: Sequence[str]) -> list[dict[str, Any]]:
    """For each round run on every backend: each compared figure per backend, and its ratio to the first."""
    comparison: list[dict[str, Any]] = []
    if len(backends) < 2:
        return comparison
    for label in dict.fromkeys(r["label"] for r in rounds):
        by_backend = {r["backend"]: r for r in rounds if r["label"] == label}
        if set(by_backend) != set(backends):
            continue
        base = by_backend[backends[0]]
        comparison += [
            {
                "round": label,
                "figure": key,
                "name": name,
                **{backend: by_backend[backend].get(key) for backend in backends},
                "ratios": {b: _ratio(by_backend[b].get(key), base.get(key)) for b in backends[1:]},
            }
            for name, key in COMPARED
        ]
    return comparison


def backends_table(comparison: Sequence[Mapping[str, Any]]) -> str:
    if not comparison:
        return "(no round ran on every backend)"
    backends = [key for key in comparison[0] if key not in {"round", "figure", "name", "ratios"}]
    others = list(comparison[0]["ratios"])
    headers = ["round", "figure", *backends, *(f"{b}/{backends[0]}" for b in others)]
    rows = [
        [
            row["round"],
            row["name"],
            *(_cell(row[b]) for b in backends),
            *(_cell(row["ratios"][b]) for b in others),
        ]
        for row in comparison
    ]
    return render_table(headers, rows)
