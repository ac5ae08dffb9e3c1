"""The benchmark harness works end to end: a tiny run (one patient, small photos) writes a complete results file.

It checks the harness, not the figures: the real run is `python -m bench` (docs/performance.md). The run is on
both backends (SQLite + local vault, and PostgreSQL + S3 on the bench's own servers), side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.run import Plan, report, run_bench

pytestmark = pytest.mark.e2e

ROUND_FIELDS = {
    "label",
    "backend",
    "format",
    "patients",
    "photo_bytes",
    "photo_megapixels",
    "photos_confirmed",
    "photos_failed",
    "setup_seconds",
    "total_seconds",
    "bot_cpu_per_photo_ms",
    "synapse_cpu_per_photo_ms",
    "bot_to_synapse_cpu_ratio",
    "servers_cpu_per_photo_ms",
    "bot_and_servers_cpu_per_photo_ms",
    "database_cpu_per_photo_ms",
    "object_store_cpu_per_photo_ms",
    "bench_cpu_per_photo_ms",
    "idle_cpu_share",
    "pipeline_cpu_per_photo_ms",
    "pipeline_photos_counted",
    "floor",
    "floor_cpu_ms",
    "pipeline_to_floor_ratio",
    "pipeline_steps",
    "pipeline_steps_cpu_ms",
    "send_to_stored_p50_ms",
    "send_to_stored_p95_ms",
    "event_to_stored_p50_ms",
    "event_to_stored_p95_ms",
    "upload_and_send_p50_ms",
    "loop_lag_p50_ms",
    "loop_lag_p99_ms",
    "loop_lag_samples",
    "bot_rss_before_mb",
    "bot_peak_rss_mb",
    "metrics_available",
}
# Measured in every JPEG round whatever the machine's load: none of these may be missing.
JPEG_MEASURED = (
    "bot_cpu_per_photo_ms",
    "synapse_cpu_per_photo_ms",
    "pipeline_cpu_per_photo_ms",
    "floor_cpu_ms",
    "pipeline_steps_cpu_ms",
    "send_to_stored_p50_ms",
    "loop_lag_p99_ms",
    "bot_peak_rss_mb",
)
FLOOR_PARTS = {
    "memcpy",
    "sha256",
    "aes_gcm_encrypt",
    "attachment_decrypt",
    "attachment_decrypt_nio",
    "metadata_strip",
    "write_fsync",
}
CLINICIAN_FIELDS = {
    "photos",
    "forward_p50_ms",
    "forward_p95_ms",
    "forward_share_within_60ms",
    "client_first_image_p50_ms",
    "client_mean_per_image_ms",
    "bot_cpu_per_photo_ms",
    "synapse_cpu_per_photo_ms",
    "bot_peak_rss_mb",
}


@pytest.mark.timeout(300)
async def test_a_one_patient_run_writes_every_figure_and_a_verdict_for_every_target(tmp_path: Path) -> None:
    """A one-patient run with small photos on both backends stores each photo and writes every figure, the
    backends side by side, with a verdict per target."""
    plan = Plan(
        jpeg_sizes=(1,),
        heic=1,
        clinician=(1, 2),
        small=True,
        results_dir=tmp_path / "results",
        backends=("sqlite", "postgres"),
    )

    results, path = await run_bench(plan, ["--smoke"])

    written = json.loads(path.read_text())
    assert written == results
    jpeg, jpeg_postgres, heic, heic_postgres = written["rounds"]
    for figures in (jpeg, jpeg_postgres, heic, heic_postgres):
        assert set(figures) >= ROUND_FIELDS, ROUND_FIELDS - set(figures)
        assert figures["photos_confirmed"] == 1 and figures["photos_failed"] == 0
        assert figures["metrics_available"] is True
    assert [r["backend"] for r in written["rounds"]] == ["sqlite", "postgres", "sqlite", "postgres"]
    assert (jpeg["format"], heic["format"]) == ("JPEG", "HEIC")
    for figures in (jpeg, jpeg_postgres):
        assert [key for key in JPEG_MEASURED if figures[key] is None] == []
    assert set(jpeg["floor"]) == FLOOR_PARTS | {"bytes"}
    # With SQLite the database and vault work is in the bot; on PostgreSQL + S3 the servers did some.
    assert jpeg["servers_cpu_per_photo_ms"] is None
    assert jpeg_postgres["servers_cpu_per_photo_ms"] is not None
    assert jpeg_postgres["bot_and_servers_cpu_per_photo_ms"] >= jpeg_postgres["bot_cpu_per_photo_ms"]
    compared = {(row["round"], row["figure"]): row for row in written["backend_comparison"]}
    peak = compared["jpeg-1", "bot_peak_rss_mb"]
    assert peak["sqlite"] == jpeg["bot_peak_rss_mb"] and peak["postgres"] == jpeg_postgres["bot_peak_rss_mb"]
    assert peak["ratios"]["postgres"] is not None
    assert written["targets_judged_on"] == "sqlite" and written["clinician"]["backend"] == "sqlite"
    assert "Backends side by side" in report(written)
    clinician = written["clinician"]
    assert set(clinician) >= CLINICIAN_FIELDS, CLINICIAN_FIELDS - set(clinician)
    assert clinician["photos"] == 2 and clinician["forward_p50_ms"] is not None
    assert {verdict["status"] for verdict in written["targets"]} <= {"HELD", "MISSED", "NOT MEASURED"}
    assert len(written["targets"]) == 7
    assert "Targets (issue 6)" in report(written)
