"""What the figures were measured on: cores, CPU model, memory, load, and the versions that matter."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _memory_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def synapse_version(synapse_python: Path) -> str:
    """Synapse's version, asked of its own interpreter (it is not importable from the bot's)."""
    result = subprocess.run(  # noqa: S603 (our own interpreter path, fixed arguments)
        [str(synapse_python), "-c", "import synapse; print(synapse.__version__)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.stdout.strip().split()[0] if result.returncode == 0 and result.stdout.strip() else "unknown"


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def describe(synapse_python: Path) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "synapse": synapse_version(synapse_python),
        "matrix_nio": metadata.version("matrix-nio"),
        "pillow": metadata.version("pillow"),
        "pillow_heif": metadata.version("pillow-heif"),
        "cryptography": metadata.version("cryptography"),
        "load_average_at_start": load_average(),
    }
