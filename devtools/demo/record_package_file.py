"""The record package the demo's clinician exported, saved where the person running the demo can open it.

The package holds only synthetic data (generated photos, a made-up NHS number), so it may be kept after
the demo: it is what a practice would save into its clinical system.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from devtools.demo.photos import kilobytes, photo_dimensions

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}\.zip")
FALLBACK_NAME = "record-package.zip"


def save_package(data: bytes, name: str, folder: Path) -> Path:
    """Write the package into `folder` (made if missing) under the bot's file name, if it is a plain one."""
    folder.mkdir(parents=True, exist_ok=True)
    file_name = name if _SAFE_NAME.fullmatch(name) else FALLBACK_NAME
    path = folder / file_name
    path.write_bytes(data)
    return path.absolute()


def package_contents(data: bytes) -> list[str]:
    """One line per file in the package: its name, its size, and for a photo what it shows."""
    lines = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            line = f"{info.filename:<18} {kilobytes(info.file_size):>7}"
            if info.filename.startswith("photo-"):
                line += f"  {photo_dimensions(archive.read(info))}"
            lines.append(line)
    return lines
