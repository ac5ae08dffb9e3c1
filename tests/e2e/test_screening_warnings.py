"""What the clinician is warned of before viewing (issue 12, items 5 and 7): a refusal undone by START,
and a note that contradicts the screening."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import NHS_NUMBER, answer, open_chat, send_photo
from tests.e2e.workspace import command, open_practice
from tests.unit.image_factory import make_jpeg

pytestmark = pytest.mark.e2e


async def test_a_refusal_undone_by_start_and_a_contradicting_note_reach_the_clinician_as_warnings(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """Refused (intimate, under 18), START, "not intimate", then "it IS on my genitals, bleeding": the alert
    and the !view header warn of the changed answers and the note, without the note's words."""
    practice = await open_practice(make_bot, make_person)
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    patient = await make_person("patient")
    chat = await open_chat(patient, bot)
    await answer(patient, chat, NHS_NUMBER, "999 765 4323")
    await answer(patient, chat, "1", "intimate area")
    await answer(patient, chat, "yes", "under 18")
    await answer(patient, chat, "yes", "can't accept intimate photos")

    await answer(patient, chat, "start", "NHS number")
    await answer(patient, chat, NHS_NUMBER, "999 765 4323")
    await answer(patient, chat, "1", "intimate area")
    await answer(patient, chat, "no", "DONE")
    await answer(patient, chat, "it IS on my genitals, bleeding", "added")
    await send_photo(
        patient, chat, make_jpeg(1600, 1200), "Photo 1 received", filename="p.jpg", mimetype="image/jpeg"
    )
    before = len(clinician.seen.get(room, []))
    done = await answer(patient, chat, "done", "reference")
    reference = done.split("reference is ")[1].split(".")[0].strip("*")

    alert = (await clinician.wait_for_text(room, reference, after=before, timeout=60)).body
    assert "changed after a refusal" in alert
    assert "intimate area" in alert and "urgent" in alert and "bleeding" in alert
    assert "genitals" not in alert and "9997654323" not in alert.replace(" ", "")

    view = await command(clinician, room, f"!view {reference}", "Showing 1 photo")
    assert view.index("changed after a refusal") < view.index("Showing 1 photo")
    assert "A note suggests an intimate area" in view
