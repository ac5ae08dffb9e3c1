"""The installed wheel's `photobot`, not the source tree, checks a configured practice and serves a patient."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.test_observability import free_port, http_get
from tests.e2e.workspace import open_practice, submit
from tests.installed import installed_photobot

pytestmark = pytest.mark.e2e


async def test_the_installed_bot_passes_check_and_carries_a_patient_to_the_clinicians(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Installed from the wheel, `photobot check` passes and a patient's photo reaches the clinician room."""
    program = installed_photobot()
    port = free_port()
    practice = await open_practice(make_bot, make_person, program=program, status_port=str(port))
    assert practice.bot.process.program == program

    code, output = await practice.bot.process.command("check")
    assert code == 0, output

    patient = await make_person("patient")
    _, reference = await submit(patient, practice.bot)
    await practice.clinician.wait_for_text(practice.clinician_room, reference, timeout=60)

    health = await http_get(port, "/healthz")
    assert health.status == 200
    assert json.loads(health.body)["status"] == "ok"
