"""A vault write cut short, by a kill or by an error, with real files: the earlier image survives, nothing
of the new one is left in clear, and start-up's clean-up removes what the kill left behind."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bot.keyring import Keyring, create_master_key_file, load_master_key_file
from storage.vault import TEMPORARY_PREFIX, Vault

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KILLED = 86

# Runs in a child process: put an image, and die abruptly (as SIGKILL would) once part of it is written.
_KILL_HALF_WAY = """
import os, sys
from pathlib import Path
from bot.keyring import Keyring, load_master_key_file
from storage.vault import Vault
vault = Vault(Path(sys.argv[1]), Keyring(load_master_key_file(Path(sys.argv[2]))))
vault.put(sys.argv[3], Path(sys.argv[4]).read_bytes(), part_written=lambda: os._exit(86))
"""


def _generated_png(seed: int) -> bytes:
    image = Image.new("RGB", (96, 72), (200 - seed, 150, 120 + seed))
    draw = ImageDraw.Draw(image)
    for step in range(0, 96, 6):
        draw.line((step, 0, 95 - step, 71), fill=(seed * 3 % 255, step * 2, 90), width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _windows(data: bytes, width: int = 16) -> set[bytes]:
    return {data[start : start + width] for start in range(len(data) - width + 1)}


def _temporary_files(vault: Vault) -> list[Path]:
    return sorted(path for path in vault.directory.iterdir() if path.name.startswith(TEMPORARY_PREFIX))


@pytest.fixture
def master_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.key"
    create_master_key_file(path)
    return path


@pytest.fixture
def vault(tmp_path: Path, master_key_file: Path) -> Vault:
    return Vault(tmp_path / "vault", Keyring(load_master_key_file(master_key_file)))


def _put_and_die_half_way(vault: Vault, master_key_file: Path, image_id: str, plaintext: Path) -> int:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILL_HALF_WAY,
            str(vault.directory),
            str(master_key_file),
            image_id,
            str(plaintext),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return child.returncode


def test_a_write_killed_half_way_leaves_the_earlier_image_and_a_torn_file_that_start_up_removes(
    vault: Vault, master_key_file: Path, tmp_path: Path
) -> None:
    """A process killed while writing a new version leaves the old version readable and a torn temporary
    file holding only ciphertext, which the start-up clean-up removes."""
    earlier, newer = _generated_png(1), _generated_png(2)
    stored = vault.put("IMG_a1", earlier)
    source = tmp_path / "newer.png"
    source.write_bytes(newer)

    assert _put_and_die_half_way(vault, master_key_file, "IMG_a1", source) == KILLED

    [torn] = _temporary_files(vault)
    complete_size = (vault.directory / "IMG_a1.enc").stat().st_size
    assert 0 < torn.stat().st_size < complete_size, "the kill came half way through the write"
    assert not _windows(newer) & _windows(torn.read_bytes()), "no run of the new image is in clear"
    assert vault.get("IMG_a1", stored.wrapped_key) == earlier

    assert vault.clean_temporary_files() == 1
    assert _temporary_files(vault) == []
    assert sorted(path.name for path in vault.directory.iterdir()) == ["IMG_a1.enc"]
    assert vault.get("IMG_a1", stored.wrapped_key) == earlier


def test_a_write_killed_before_its_first_rename_leaves_no_image_once_cleaned(
    vault: Vault, master_key_file: Path, tmp_path: Path
) -> None:
    """A first write of an image killed half way leaves no image file, and after clean-up nothing at all."""
    source = tmp_path / "photo.png"
    source.write_bytes(_generated_png(3))

    assert _put_and_die_half_way(vault, master_key_file, "IMG_b2", source) == KILLED

    assert not vault.exists("IMG_b2")
    assert len(_temporary_files(vault)) == 1
    assert vault.clean_temporary_files() == 1
    assert list(vault.directory.iterdir()) == []


def test_a_write_failing_half_way_removes_its_own_temporary_file(vault: Vault) -> None:
    """A disk error half way through a write is raised, its temporary file is removed at once, and the
    earlier image of that id still reads back."""
    earlier = _generated_png(4)
    stored = vault.put("IMG_c3", earlier)

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        vault.put("IMG_c3", _generated_png(5), part_written=disk_full)

    assert _temporary_files(vault) == []
    assert vault.get("IMG_c3", stored.wrapped_key) == earlier


def test_the_part_written_hook_runs_once_between_the_two_halves(vault: Vault) -> None:
    """The hook runs exactly once, when the temporary file holds part but not all of the image."""
    plaintext = _generated_png(6)
    sizes: list[int] = []

    def measure() -> None:
        [temporary] = _temporary_files(vault)
        sizes.append(temporary.stat().st_size)

    vault.put("IMG_d4", plaintext, part_written=measure)

    complete_size = (vault.directory / "IMG_d4.enc").stat().st_size
    assert len(sizes) == 1
    assert 0 < sizes[0] < complete_size
