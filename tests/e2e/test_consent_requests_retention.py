"""Consent, photo requests, the audit log's verification and the retention job, against a real homeserver."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pytest

from bot.exit_codes import ExitCode
from bot.ids import RoomID
from devtools.demo.people import Person
from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, send_photo, vault_files
from tests.e2e.workspace import command, images, open_practice, submit, write_clock_offset
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.timeout(300)
DAY = timedelta(days=1).total_seconds()


async def test_consent_is_asked_in_the_patients_chat_recorded_and_required_for_sharing(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Sharing is refused without consent; the patient answers in their chat; the answer is recorded with
    who gave it and when; then sharing works."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    patient_room, reference = await submit(patient, bot)
    await command(clinician, room, f"!share {reference} second-opinion", "Sharing refused")

    await command(clinician, room, f"!consent {reference} second-opinion", "I've asked the patient")
    await patient.wait_for_text(patient_room, "second opinion")
    await answer(patient, patient_room, "yes", "Who is answering")
    await answer(patient, patient_room, "2", "you agree")
    recorded = await clinician.wait_for_text(room, "Consent to second-opinion")
    assert "legal authority" in recorded.body
    assert "UTC" not in recorded.body and "(Europe/London)" in recorded.body  # the practice's time zone
    rows = bot.query("SELECT purpose, answer, given_by, answered_at IS NOT NULL FROM consents")
    assert rows == [("second-opinion", "yes", "legal-authority", 1)]

    before = len(clinician.seen[room])
    await command(clinician, room, f"!share {reference} second-opinion", "second-opinion package")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    await command(clinician, room, f"!share {reference} teaching", "Sharing refused")
    trail = await command(clinician, room, f"!audit {reference}", "Audit trail")
    assert "consent_asked" in trail and "patient: consent_answered" in trail and ": share" in trail


async def _journey_in(patient_room: RoomID, patient: Person) -> None:
    await answer(patient, patient_room, NHS_NUMBER, "999 765 4323")
    await answer(patient, patient_room, "1", "intimate area")
    await answer(patient, patient_room, "no", "DONE")


async def test_a_photo_request_opens_a_chat_says_who_asked_and_links_the_submission(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """The patient is invited by the bot, sees who asked and for which area, and their submission answers
    the request."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    await clinician.client.set_displayname("Dr Ada Patel")
    patient = await make_person("patient")
    await command(
        clinician, room, f"!request {patient.user_id} the rash on your left forearm -- with a coin", "opened"
    )
    patient_room = await patient.wait_for_invite_or_room()
    intro = await patient.wait_for_text(patient_room, "asked you for a photo of")
    assert "Dr Ada Patel" in intro.body and "left forearm" in intro.body
    await _journey_in(patient_room, patient)
    await send_photo(
        patient,
        patient_room,
        make_jpeg(1400, 1000),
        "Photo 1 received",
        filename="a.jpg",
        mimetype="image/jpeg",
    )
    await answer(patient, patient_room, "done", "reference")
    linked = bot.query(
        "SELECT r.status FROM submissions s JOIN photo_requests r ON r.request_id = s.request_id"
    )
    assert linked == [("answered",)]
    listing = await command(clinician, room, "!queue", "1 open")
    assert "answers a photo request" in listing


async def test_an_expired_photo_request_is_refused_politely(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Answered after its expiry, a request is refused kindly and nothing is stored."""
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    write_clock_offset(clock_file, 0)
    practice = await open_practice(make_bot, make_person, test_clock_file=str(clock_file))
    patient = await make_person("patient")
    await command(
        practice.clinician, practice.clinician_room, f"!request {patient.user_id} left knee", "opened"
    )
    patient_room = await patient.wait_for_invite_or_room()
    await patient.wait_for_text(patient_room, "left knee")
    write_clock_offset(clock_file, 4 * DAY)  # requests expire after 3 days
    refusal = await answer(patient, patient_room, NHS_NUMBER, "expired")
    assert "Nothing was sent to the practice" in refusal
    assert practice.bot.query("SELECT COUNT(*) FROM submissions") == [(0,)]


async def test_audit_verify_passes_on_an_honest_log_and_fails_on_any_tampering(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """`photobot admin` changes the configuration with an audited entry; `photobot audit verify` passes, then
    fails when an entry is altered, removed or reordered in the database file directly."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    await command(clinician, room, f"!claim {reference}", "claimed")
    await command(clinician, room, f"!keep {reference} needed for comparison", "kept")
    await command(clinician, room, f"!describe {reference} 1 cm papule", "Description saved")
    await bot.process.stop()
    code, output = await bot.process.command("admin", "clinician", "add", "@locum:localhost")
    assert code == 0, output
    assert "@locum:localhost is added to clinicians" in output
    code, output = await bot.process.command("admin", "config")
    assert "@locum:localhost" in output
    code, output = await bot.process.command("admin", "clinician", "promote", "@locum:localhost")
    assert code == ExitCode.USAGE
    assert "Usage" in output
    code, output = await bot.process.command("audit", "verify")
    assert code == 0, output
    assert "intact: 4 entries" in output
    assert str(bot.query("SELECT actor FROM audit_log WHERE seq = 4")[0][0]).startswith("cli:")

    database = bot.data_dir / "photobot.sqlite3"
    honest = bot.data_dir / "honest.sqlite3"
    shutil.copyfile(database, honest)
    tamperings = {
        "altered": "UPDATE audit_log SET actor = '@someone:else' WHERE seq = 2",
        "removed": "DELETE FROM audit_log WHERE seq = 2",
        "removed last": "DELETE FROM audit_log WHERE seq = 4",
        "reordered": "UPDATE audit_log SET seq = seq + 10; UPDATE audit_log SET seq = 1 WHERE seq = 12;"
        " UPDATE audit_log SET seq = 2 WHERE seq = 11; UPDATE audit_log SET seq = 3 WHERE seq = 13",
    }
    for name, sql in tamperings.items():
        shutil.copyfile(honest, database)
        connection = sqlite3.connect(database)
        connection.executescript(
            "DROP TRIGGER audit_log_append_only_update; DROP TRIGGER audit_log_append_only_delete;" + sql
        )
        connection.commit()
        connection.close()
        code, output = await bot.process.command("audit", "verify")
        assert code == 1, f"{name}: {output}"
        assert "altered" in output


async def test_retention_warns_then_destroys_and_refuses_after_a_clock_jump(
    make_bot: BotFactory, make_person: PersonFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the bot's clock moved on: unreviewed submissions are warned about, then destroyed; a jump of a
    year destroys nothing and is reported."""
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    write_clock_offset(clock_file, 0)
    practice = await open_practice(
        make_bot, make_person, test_clock_file=str(clock_file), test_conversation_timeout_seconds="20"
    )
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    _, reference = await submit(patient, bot)
    assert len(vault_files(bot)) == 1
    await clinician.settled(room, quiet=6)  # one retention run at the real time

    write_clock_offset(clock_file, 24 * DAY)  # retention 30 days, warning 7 days before
    warning = await clinician.wait_for_text(room, "Retention warning", timeout=60)
    assert reference in warning.body
    assert len(vault_files(bot)) == 1
    write_clock_offset(clock_file, 31 * DAY)
    destroyed = await clinician.wait_for_text(room, "Retention: destroyed", timeout=60)
    assert reference in destroyed.body
    assert vault_files(bot) == []

    second = await make_person("patient")
    await submit(second, bot)
    write_clock_offset(clock_file, (31 + 365) * DAY)
    refused = await clinician.wait_for_text(room, "did not run", timeout=60)
    assert "jumped forward" in refused.body
    await clinician.settled(room, quiet=6)
    assert len(vault_files(bot)) == 1
    actions = [row[0] for row in bot.query("SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["retention_warning", "retention_destroy", "retention_refused"]
