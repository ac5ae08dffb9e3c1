"""The demo (`bash dev.sh demo`, `python -m devtools.demo`): the whole journey on a throwaway local homeserver, printed as a transcript.

It starts its own Synapse on 127.0.0.1 (from .venv-synapse) and the real bot as a process, then plays:
patient A (notice, NHS number, screening, "may be kept", two photos); the clinician (list, view, keep with
a reason, crop, describe, export, delete); patient B ("view then delete"), whose photo the clinician views
and describes so it is destroyed. It ends with what was deleted where, stops everything, and says where the
exported record package is.

Where things go
    Without --keep, everything lives in a temporary folder that is removed at the end, and the record
    package (synthetic data only) is copied to ./demo-output/, so the person who ran the demo can open it.
    With --keep DIR, everything stays in DIR (the homeserver's data, the bot's data and log), the package
    too; DIR must be new or empty.

Leaving nothing running
    Synapse and the bot run in process groups of their own, so a Ctrl-C in the terminal reaches only the
    demo, which then stops them in order (SIGTERM, then SIGKILL); the same happens on SIGTERM and on any
    error. Both also die with the demo if it is killed outright (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.demo.deletion_report import report_deletions
from devtools.demo.practice import open_practice
from devtools.demo.record_package_file import package_contents, save_package
from devtools.demo.scenes import (
    Stage,
    clinician_deletes,
    clinician_reviews_keeps_and_exports,
    clinician_views_and_describes,
    patient_keeps_photos,
    patient_views_then_deletes,
)
from devtools.demo.transcript import DemoError, Transcript
from devtools.local_homeserver import LocalHomeserver, default_synapse_python

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
OUTPUT_FOLDER: Final = Path("demo-output")
INTERRUPTED: Final = 130  # the shell's code for a program stopped by Ctrl-C
LOG_TAIL_LINES: Final = 25


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class SavedPackage:
    path: Path
    contents: list[str]


async def run_demo(keep: Path | None) -> int:
    """Play the demo; the exit code: 0 done, 1 failed, 2 unusable --keep folder, 130 interrupted."""
    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        _say(f"--keep needs a new or empty folder; {keep} is not. Choose another.")
        return 2
    started = time.monotonic()
    base = (keep or Path(tempfile.mkdtemp(prefix="photobot-demo-"))).absolute()
    base.mkdir(parents=True, exist_ok=True)
    package_folder = base if keep is not None else OUTPUT_FOLDER.absolute()
    transcript = Transcript(_say)
    where = "a temporary folder, removed at the end" if keep is None else "a folder kept at the end"
    transcript.note(f"working in {where}: {base}")

    loop = asyncio.get_running_loop()
    groups: list[int] = []  # the process groups of Synapse and the bot, to check they are gone
    async with contextlib.AsyncExitStack() as cleanup:
        play = asyncio.create_task(_play(base, package_folder, cleanup, groups, transcript))
        stopper = _Stopper(play, transcript)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopper, signum)
        try:
            await asyncio.wait({play})
        finally:
            stopper.stopping = True
            if not play.done():  # this coroutine itself was cancelled: stop the play before cleaning up
                play.cancel()
                await asyncio.wait({play})
        code, saved = _outcome(play, stopper.signalled, transcript, base)
        transcript.step("Stopping everything the demo started")
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
    _make_sure_stopped(groups, transcript)
    _finish(keep, base, saved, code, transcript)
    transcript.note(f"done in {time.monotonic() - started:.0f} s")
    return code


@dataclass
class _Stopper:
    """The demo's Ctrl-C and SIGTERM handler: the first signal cancels the play, which leads to clean-up."""

    play: asyncio.Task[SavedPackage]
    transcript: Transcript
    signalled: bool = False
    stopping: bool = False

    def __call__(self, signum: signal.Signals) -> None:
        if self.signalled or self.stopping:
            self.transcript.note("already stopping; the homeserver and the bot get a few seconds to end")
            return
        self.signalled = True
        self.transcript.step(f"Interrupted ({signum.name}): stopping")
        self.play.cancel()


def _outcome(
    play: asyncio.Task[SavedPackage], signalled: bool, transcript: Transcript, base: Path
) -> tuple[int, SavedPackage | None]:
    if play.cancelled():
        return (INTERRUPTED if signalled else 1), None
    error = play.exception()
    if error is None:
        return 0, play.result()
    if isinstance(error, RuntimeError | TimeoutError):  # DemoError, HomeserverError: they say what happened
        transcript.step(f"The demo failed: {error}")
    else:
        transcript.step("The demo failed unexpectedly:")
        for line in "".join(traceback.format_exception(error)).splitlines():
            transcript.note(line, wrap=False)
    log = base / "bot.log"
    # The bot's and Synapse's own start-up errors already carry the end of their logs.
    if log.exists() and (isinstance(error, DemoError) or not isinstance(error, RuntimeError)):
        transcript.note("the end of the bot's log:")
        for line in log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]:
            transcript.note(f"  {line}", wrap=False)
    return 1, None


def _make_sure_stopped(groups: list[int], transcript: Transcript) -> None:
    """Check that no process of Synapse's or the bot's group is left; kill any that is (it should not be)."""
    left = []
    for group in groups:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            continue
        left.append(group)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    if left:
        transcript.note(f"killed what was left of process group(s) {', '.join(map(str, left))}")
    transcript.note("nothing the demo started is still running")


def _finish(
    keep: Path | None, base: Path, saved: SavedPackage | None, code: int, transcript: Transcript
) -> None:
    if keep is None:
        shutil.rmtree(base, ignore_errors=True)
        transcript.note(f"removed the temporary folder {base} (homeserver, bot data, people's devices)")
        if code == 1:
            transcript.note("run `bash dev.sh demo --keep DIR` to keep every log for a look")
    else:
        transcript.note(f"kept in {base}: the homeserver's data, the bot's data and its log (bot.log)")
    if saved is None:
        return
    transcript.step("The record package the clinician exported (synthetic data only)")
    transcript.note(str(saved.path))
    for line in saved.contents:
        transcript.note(f"  {line}", wrap=False)
    transcript.note("This is what a practice saves into its clinical system; open it with any zip tool.")


async def _play(
    base: Path,
    package_folder: Path,
    cleanup: contextlib.AsyncExitStack,
    groups: list[int],
    transcript: Transcript,
) -> SavedPackage:
    homeserver = LocalHomeserver(
        base / "synapse", synapse_python=default_synapse_python(PROJECT_ROOT), log=transcript.note
    )
    cleanup.push_async_callback(homeserver.stop)
    transcript.step("Starting a throwaway Matrix homeserver (Synapse) on 127.0.0.1 ...")
    await homeserver.start()
    if homeserver.pid is not None:
        groups.append(homeserver.pid)
    transcript.note(f"Synapse is running (process {homeserver.pid})")
    practice = await open_practice(homeserver, base, cleanup, groups, transcript)
    stage = Stage(homeserver, practice, base, cleanup, transcript)
    room = stage.clinician_room()

    patient_a, reference_a = await patient_keeps_photos(stage)
    package, package_name = await clinician_reviews_keeps_and_exports(stage, room, reference_a)
    path = await asyncio.to_thread(save_package, package, package_name, package_folder)
    transcript.note(f"(the clinician's download of the package is saved at {path})")
    receipt = await clinician_deletes(stage, room, patient_a, reference_a)

    patient_b, reference_b = await patient_views_then_deletes(stage)
    await clinician_views_and_describes(stage, room, patient_b, reference_b)

    await report_deletions(
        transcript,
        patients=[patient_a, patient_b],
        room=room,
        receipt=receipt,
        viewed_then_deleted=reference_b,
        vault_dir=practice.data_dir / "vault",
    )
    return SavedPackage(path, await asyncio.to_thread(package_contents, package))
