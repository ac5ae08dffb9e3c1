"""The end of the demo: what was deleted where, in the bot's own words and as checked from outside it.

The bot's receipt says what it destroyed. The demo then looks for itself, as the people involved could:
which of each patient's messages are gone from their chat, whether the homeserver still serves each upload
(HTTP 404 once deleted), whether the images the bot posted in the clinician room were taken back, and how
many files are left in the bot's encrypted vault.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

from bot.ids import EventID
from devtools.demo.people import Person
from devtools.demo.transcript import Chat, Transcript

GONE: Final = 404
SETTLE_TIMEOUT_SECONDS: Final = 20.0


async def _wait_for_redactions(chat: Chat, event_ids: set[EventID]) -> None:
    """Redactions reach the person's app a moment after the bot's answer: give them time to arrive."""
    with contextlib.suppress(TimeoutError):
        await chat.person.wait_until(lambda: event_ids <= chat.person.redacted, SETTLE_TIMEOUT_SECONDS)


async def _gone(person: Person, urls: list[str]) -> int:
    statuses = await asyncio.gather(*(person.media_status(url) for url in urls))
    return sum(status == GONE for status in statuses)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


async def report_deletions(
    transcript: Transcript,
    *,
    patients: list[Chat],
    room: Chat,
    receipt: str,
    viewed_then_deleted: str,
    vault_dir: Path,
) -> None:
    """`receipt`: the bot's reply to `!delete`; `viewed_then_deleted`: the view-then-delete reference."""
    transcript.step("What was deleted, where")
    lines = receipt.replace("**", "").splitlines()
    transcript.note(f"The bot's reply to !delete: {lines[0] if lines else '(none)'}")
    for line in lines[1:]:
        transcript.note(f"  {line}")
    transcript.note(
        f"{viewed_then_deleted} (view then delete): its photo was destroyed when the clinician saved the "
        "description, and taken back from the clinician room."
    )
    transcript.note("Checked by the demo from outside the bot, now:")
    for chat in patients:
        await _wait_for_redactions(chat, set(chat.person.uploads))  # the photos they sent
        removed = chat.removed()
        transcript.note(
            f"- {chat.me}'s chat: the bot removed {_count(len(removed), 'message')} of theirs"
            + (f": {', '.join(removed)}" if removed else "")
        )
        urls = [url for event_urls in chat.person.uploads.values() for url in event_urls]
        transcript.note(
            f"- {chat.me}'s uploads (photos and thumbnails): {await _gone(chat.person, urls)} of {len(urls)} "
            "deleted from the homeserver (downloading one now gets HTTP 404)"
        )
    posted = room.attachments
    await _wait_for_redactions(room, {seen.event_id for seen in posted})
    taken_back = sum(seen.event_id in room.person.redacted for seen in posted)
    urls = [str(seen.content["file"]["url"]) for seen in posted]
    transcript.note(
        f"- {room.room}: {taken_back} of {len(posted)} images and files the bot posted there (for both "
        "patients) were removed "
        f"from the room; {await _gone(room.person, urls)} of {len(urls)} of their uploads deleted from "
        "the homeserver"
    )
    left = sorted(vault_dir.iterdir()) if vault_dir.is_dir() else []
    transcript.note(f"- the bot's encrypted photo vault: {_count(len(left), 'file')} left")
    transcript.note(
        "Copies on people's own devices (a camera roll, a cloud backup, a clinician's downloads) are beyond "
        "the bot's reach; the bot tells the patient so."
    )
