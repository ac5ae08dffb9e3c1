"""Log hygiene with the real bot: the paths that write to the log (an unexpected error with its traceback, a
full disk, a refused file, a finished submission, the operator's commands) never write an NHS number, a media
URL, an attachment key or the repr of a nio event. Every bot of every end-to-end test is also checked when it
is torn down (tests/e2e/conftest.py); this test makes sure those paths are taken.

It runs at the production level, INFO: at DEBUG, aiosqlite logs every SQL statement with its parameters (the
bot's public device key, room ids, sealed blobs), which this check reports until `aiosqlite` joins the
loggers `bot.logs` holds at ERROR."""

from __future__ import annotations

import pytest

from bot.leak_scan import scan_log_text
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import answer, reach_photos, send_photo
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e


async def test_a_journey_through_errors_logs_what_happened_and_nothing_of_the_patient(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """An I/O error mid-photo (logged with its traceback), a full disk, a refused PDF, a submission (one line
    with its reference), two operator commands, the start-up banner and the shutdown line all reach the log,
    and not one line carries patient data or a key."""
    bot = await make_bot()
    patient = await make_person("patient")
    room_id = await reach_photos(patient, bot)
    photo = make_jpeg(1400, 1050, gps=True, device=True)

    await bot.process.stop()
    await bot.process.start(extra_env={"PHOTOBOT_FAULT_POINTS": "before_vault_write=EIO"})
    await send_photo(patient, room_id, photo, "something went wrong", filename="a.jpg", mimetype="image/jpeg")

    await bot.process.stop()
    await bot.process.start(extra_env={"PHOTOBOT_FAULT_POINTS": "before_vault_write=ENOSPC"})
    await send_photo(
        patient, room_id, photo, "couldn't save your photo", filename="b.jpg", mimetype="image/jpeg"
    )
    await bot.process.stop()
    await bot.process.start()
    await patient.wait_for_text(room_id, "Photo 1 received", timeout=60)

    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    await send_photo(
        patient, room_id, pdf, "PDF", filename="scan.pdf", mimetype="application/pdf", as_file=True
    )
    done = await answer(patient, room_id, "done", "reference")
    reference = done.split("reference is ")[1].split(".")[0].strip("*")
    await bot.process.stop()
    for command in (("admin", "config"), ("audit", "verify")):
        code, _ = await bot.process.command(*command)
        assert code == 0

    log = bot.process.log_text()
    for happened in (
        "handling an event failed (ref",
        "disk is full",
        "---- photobot admin",
        "---- photobot audit",
        f"starting as {bot.user_id}",  # the start-up banner
        "homeserver admin token present",
        f"submission {reference} recorded: 1 photo(s)",
        "the bot stopped",
    ):
        assert happened in log, f"the journey did not reach the log line {happened!r}"
    assert "Traceback" in log
    assert scan_log_text(log, bot.process.log_path) == []
