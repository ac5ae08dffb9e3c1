"""`python -m bench --backend`: which engine sets a run compares, and how they are set side by side."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.backends import Backend, parse_backends
from bench.proc_stats import tree_cpu
from bench.table import backends_table, compare_backends


def test_backends_are_a_comma_list_of_known_names_each_once() -> None:
    assert parse_backends("sqlite") == ("sqlite",)
    assert parse_backends(" sqlite , postgres ") == ("sqlite", "postgres")
    for wrong in ("", "mysql", "sqlite,sqlite", "sqlite,,s3"):
        with pytest.raises(ValueError, match="comma-separated"):
            parse_backends(wrong)


def test_a_sqlite_bot_gets_no_extra_settings_and_no_server_cpu() -> None:
    sqlite = Backend("sqlite")
    assert sqlite.environment("photobot1") == {}
    assert sqlite.server_cpu().total == 0.0


def test_each_round_run_on_every_backend_is_compared_to_the_first() -> None:
    rounds = [
        {"label": "jpeg-50", "backend": "sqlite", "bot_cpu_per_photo_ms": 100.0, "bot_peak_rss_mb": 150.0},
        {"label": "jpeg-50", "backend": "postgres", "bot_cpu_per_photo_ms": 130.0, "bot_peak_rss_mb": 165.0},
        {"label": "heic-10", "backend": "sqlite", "bot_cpu_per_photo_ms": 300.0},  # not run on postgres
    ]

    comparison = compare_backends(rounds, ("sqlite", "postgres"))

    rows = {(row["round"], row["figure"]): row for row in comparison}
    assert {label for label, _ in rows} == {"jpeg-50"}
    assert rows["jpeg-50", "bot_cpu_per_photo_ms"]["ratios"] == {"postgres": 1.3}
    assert rows["jpeg-50", "bot_peak_rss_mb"]["ratios"] == {"postgres": 1.1}
    assert rows["jpeg-50", "servers_cpu_per_photo_ms"]["ratios"] == {"postgres": None}  # nothing to divide by
    assert "postgres/sqlite" in backends_table(comparison)
    assert compare_backends(rounds, ("sqlite",)) == []


BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.3:\n    pass\n"
PARENT = f"""
import os, subprocess, sys
burn = {BURN!r}
# A child in a session of its own (as PostgreSQL's backends are), still running; and one reaped already.
live = subprocess.Popen([sys.executable, "-c", "import os\\nos.setsid()\\n" + burn + "print('done', flush=True)\\nimport time\\ntime.sleep(60)"], stdout=subprocess.PIPE)
subprocess.run([sys.executable, "-c", burn], check=True)
live.stdout.readline()
print("ready", flush=True)
sys.stdin.readline()
live.kill()
"""


def test_a_servers_cpu_counts_its_children_in_other_sessions_and_those_already_reaped() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        assert tree_cpu(parent.pid).total >= 0.55  # two children's 0.3 s each, less a clock tick each
    finally:
        parent.communicate("\n", timeout=30)
