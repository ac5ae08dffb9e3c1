"""Destroying needs a confirmation, and a described view-then-delete can be taken back for a short while.
Real homeserver, real encrypted clients."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import BotFactory, PersonFactory
from tests.e2e.journey import vault_files
from tests.e2e.workspace import command, images, open_practice, submit

pytestmark = pytest.mark.timeout(240)


async def test_delete_waits_for_yes_and_undo_keeps_a_described_view_then_delete(
    make_bot: BotFactory, make_person: PersonFactory
) -> None:
    """`!delete` destroys nothing until the clinician replies yes; `!describe` of a view-then-delete needs the
    same command again, and `!undo` within the window keeps the photos; described again and left, they are
    gone (vault empty, media 404)."""
    practice = await open_practice(
        make_bot, make_person, undo_window="10s", test_conversation_timeout_seconds="8"
    )
    bot, clinician, room = practice.bot, practice.clinician, practice.clinician_room
    first, second = await make_person("patient"), await make_person("patient")
    _, doomed = await submit(first, bot)
    _, described = await submit(second, bot, keep=False)
    assert len(vault_files(bot)) == 2

    await command(clinician, room, f"!delete {doomed} sent to the wrong practice", "Reply yes")
    await clinician.settled(room, quiet=3)
    assert len(vault_files(bot)) == 2  # nothing destroyed yet
    await command(clinician, room, "yes", "Receipt")
    assert len(vault_files(bot)) == 1

    before = len(clinician.seen[room])
    await command(clinician, room, f"!view {described}", "view then delete")
    await clinician.wait_until(lambda: len(images(clinician, room, before)) == 1)
    [posted] = images(clinician, room, before)
    describe = f"!describe {described} 1 cm papule, left forearm"
    await command(clinician, room, describe, "Reply yes")
    await command(clinician, room, describe, "destroyed at")
    await command(clinician, room, f"!undo {described}", "are kept")
    await asyncio.sleep(15)  # past the 10 s undo window, with housekeeping every 2 s
    assert len(vault_files(bot)) == 1, "undone: the photos stay"

    await command(clinician, room, describe, "Reply yes")
    await command(clinician, room, "yes", "destroyed at")
    await clinician.wait_until(lambda: vault_files(bot) == [], timeout=60)
    await clinician.wait_until(lambda: posted.event_id in clinician.redacted, timeout=30)
    for _ in range(20):
        if await clinician.media_status(str(posted.content["file"]["url"])) == 404:
            break
        await asyncio.sleep(0.5)
    assert await clinician.media_status(str(posted.content["file"]["url"])) == 404
