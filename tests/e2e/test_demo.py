"""The demo as a newcomer runs it (`bash dev.sh demo`, which runs `python -m devtools.demo` from the checkout): the whole journey in the transcript, the record package where it
says, and nothing left running afterwards, also after a Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.installed import SOURCE_ROOT

pytestmark = pytest.mark.timeout(900)

DEMO_TIMEOUT_SECONDS = 600
INTERRUPT_TIMEOUT_SECONDS = 120

# What the transcript must show, in this order: every step of issue 7's demo.
JOURNEY = [
    "Privacy notice",  # the notice, before anything is asked
    "Patient A: 999 765 4323",  # the NHS number...
    "read the NHS number as 999 765 4323",  # ...read back
    "Whose number is it",  # the read-back asks whose number it is
    "Patient A: 1",
    "intimate area",  # screening
    "may be kept in your medical record",  # the record, said where the choice is made
    "Patient A: [photo IMG_2041.jpg: 1600x1200 JPEG",  # two photos, one an iPhone HEIC sent as a file
    "Photo 1 received",
    "Patient A: [file IMG_2042.HEIC: 1600x1200 HEIC",
    "Photo 2 received",
    "Your reference is",
    "Clinician: !queue",
    "Clinician: !view",
    "Bot: [photo: GP-",
    "Clinician: !keep",
    "kept for the record",
    "Clinician: !crop",
    "is now 1280x960",
    "Clinician: !export",
    "Bot: [file record-GP-",
    "Clinician: !delete",
    "Clinician: yes",
    "Receipt:",
    "have been deleted by the practice",
    "Patient B: 999 234 5675",
    "Patient B: 2",  # view then delete
    "Patient B: [photo IMG_0311.jpg",
    "view then delete",
    "Clinician: !describe",
    "Clinician: yes",
    "its photos are destroyed at",
    "have now been deleted",  # patient B is told
    "What was deleted, where",
    "the bot's encrypted photo vault: 0 files left",
]


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "devtools.demo", *args]


def _clean_env() -> dict[str, str]:
    """No PHOTOBOT_ settings; the checkout on the path, as `bash dev.sh demo` has it (run from the checkout),
    while the demo itself runs in the test's own folder."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PHOTOBOT_")}
    return clean | {"PYTHONPATH": str(SOURCE_ROOT)}


def _run_demo(cwd: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        _demo(*args),
        cwd=cwd,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout.decode(errors="replace")


def _assert_in_order(output: str, needles: list[str]) -> None:
    """Each needle after the previous one; line wrapping and indentation do not matter."""
    flat = " ".join(output.split())
    position = 0
    for needle in needles:
        found = flat.find(needle, position)
        assert found >= 0, f"{needle!r} is missing from the transcript after position {position}"
        position = found + len(needle)


def _pids(output: str) -> dict[str, int]:
    """The processes the demo said it started: 'Synapse is running (process N)', 'the bot is serving ...'."""
    found = {
        "synapse": re.search(r"Synapse is running \(process (\d+)\)", output),
        "bot": re.search(r"the bot is serving \(process (\d+)\)", output),
    }
    return {name: int(match.group(1)) for name, match in found.items() if match}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile, or another user's process
        return b""


def _still_running(pids: dict[str, int], folder: Path) -> list[str]:
    """Processes the demo started that are alive: by the pid it printed, or by its folder in the command
    line or environment (Synapse's -c path, the bot's data directory)."""
    alive = []
    for name, pid in pids.items():
        command_line = _read(Path(f"/proc/{pid}/cmdline"))
        marker = b"synapse" if name == "synapse" else b"bot"
        if marker in command_line:
            alive.append(f"{name} (process {pid})")
    needle = str(folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if needle in _read(entry / "cmdline") or needle in _read(entry / "environ"):
            alive.append(f"process {entry.name}: {_read(entry / 'cmdline')[:120]!r}")
    return alive


def _printed_folder(output: str) -> Path:
    match = re.search(r"working in [^:]*: (\S+)", output)
    assert match, "the demo did not say where it works"
    return Path(match.group(1))


def _printed_package(output: str) -> Path:
    match = re.search(r"The record package the clinician exported.*\n\s+(/\S+\.zip)\n", output)
    assert match, "the demo did not say where the record package is"
    return Path(match.group(1))


def test_the_demo_plays_every_step_and_keeps_the_package_and_its_files_in_the_folder_given(
    tmp_path: Path,
) -> None:
    """With --keep DIR the demo plays patient, clinician and view-then-delete patient in order, shows photos
    as one-line descriptions, saves the exported package in DIR, and leaves no process running."""
    kept = tmp_path / "kept"
    code, output = _run_demo(tmp_path, "--keep", str(kept))

    assert code == 0, output[-6000:]
    _assert_in_order(output, JOURNEY)
    assert "mxc://" not in output  # no media URL
    assert all(line.isprintable() for line in output.splitlines())  # no bytes
    package = _printed_package(output)
    assert package.parent == kept.absolute()
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == [
            "decisions.json",
            "description.txt",
            "fhir-bundle.json",
            "photo-1.jpg",
            "photo-2.jpg",
        ]
        assert "2 cm oval erythematous patch" in archive.read("description.txt").decode()
        with Image.open(io.BytesIO(archive.read("photo-1.jpg"))) as cropped:
            assert cropped.size == (1280, 960)
    bot_log = (kept / "bot.log").read_text()
    assert "9997654323" not in bot_log.replace(" ", "")
    assert not (tmp_path / "demo-output").exists()
    assert "the bot stopped" in output
    assert "Synapse stopped" in output
    assert _still_running(_pids(output), kept.absolute()) == []


def test_the_demo_without_keep_removes_its_folder_and_copies_the_package_to_demo_output(
    tmp_path: Path,
) -> None:
    """Without --keep the demo removes its temporary folder and leaves only the record package, in
    ./demo-output of the folder it was run from, and no process running."""
    code, output = _run_demo(tmp_path)

    assert code == 0, output[-6000:]
    folder = _printed_folder(output)
    assert not folder.exists()
    package = _printed_package(output)
    assert package.parent == tmp_path / "demo-output"
    assert zipfile.is_zipfile(package)
    assert _still_running(_pids(output), folder) == []


def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path: Path) -> None:
    """A Ctrl-C in the middle of the patient's conversation stops the demo with code 130, stops Synapse and
    the bot, and removes its temporary folder."""
    lines: list[str] = []
    with subprocess.Popen(
        _demo(), cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as demo:
        assert demo.stdout is not None
        try:
            for raw in demo.stdout:
                lines.append(raw.decode(errors="replace"))
                if "Patient A: " in lines[-1]:
                    break
            demo.send_signal(signal.SIGINT)  # what the terminal sends the foreground program on Ctrl-C
            started = time.monotonic()
            lines += [raw.decode(errors="replace") for raw in demo.stdout]
            code = demo.wait(timeout=INTERRUPT_TIMEOUT_SECONDS)
        finally:
            if demo.poll() is None:
                demo.kill()
    output = "".join(lines)

    assert code == 130, output[-4000:]
    assert time.monotonic() - started < 60
    assert "Interrupted (SIGINT)" in output
    assert "the bot stopped" in output
    assert "Synapse stopped" in output
    assert set(_pids(output)) == {"synapse", "bot"}
    folder = _printed_folder(output)
    assert not folder.exists()
    assert _still_running(_pids(output), folder) == []
