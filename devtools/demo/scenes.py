"""What the demo's people say and do, scene by scene, in the order the transcript shows it.

Each scene waits for the bot's real answer (a phrase from the practice's default texts) before the next
line, so the demo is also a check that the whole journey works.

The data is synthetic: generated photos, and NHS numbers from the block the NHS reserves for testing (999
...): valid check digits, never issued to anyone, accepted only by a bot in test mode, as the demo's is. A
number from an issued block could belong to a real person; 943 476 5919, the NHS's own example, is refused
as not issued (9xx outside the 999 block).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot.conversation.reference import REFERENCE_ALPHABET, REFERENCE_PREFIX
from bot.ids import UserID
from devtools.demo.people import Person, Seen
from devtools.demo.photos import camera_heic, camera_jpeg, thumbnail_jpeg
from devtools.demo.practice import DemoPractice
from devtools.demo.transcript import Chat, DemoError, Transcript
from devtools.local_homeserver import LocalHomeserver

NHS_NUMBER_A: Final = "999 765 4323"
NHS_NUMBER_B: Final = "999 234 5675"
_REFERENCE = re.compile(rf"{REFERENCE_PREFIX}-[{REFERENCE_ALPHABET}]{{4}}-[{REFERENCE_ALPHABET}]{{4}}")


@dataclass(frozen=True)
class Stage:
    """Everything the scenes act on."""

    homeserver: LocalHomeserver
    practice: DemoPractice
    base: Path
    cleanup: contextlib.AsyncExitStack
    transcript: Transcript

    def names(self) -> dict[UserID, str]:
        return {self.practice.bot_user: "Bot", self.practice.clinician.user_id: "Clinician"}

    def clinician_room(self) -> Chat:
        practice = self.practice
        return Chat(
            self.transcript,
            practice.clinician,
            practice.clinician_room,
            room="the clinician room",
            me="Clinician",
            names=self.names(),
        )

    async def patient(self, localpart: str, name: str) -> Chat:
        """A patient on their phone opens an encrypted direct chat with the bot (Element's "Start chat")."""
        person = await Person.sign_up(self.homeserver, localpart, self.base / "people" / localpart)
        self.cleanup.push_async_callback(person.close)
        room_id = await person.open_direct_chat(self.practice.bot_user)
        names = self.names() | {person.user_id: name}
        return Chat(
            self.transcript, person, room_id, room=f"{name}'s chat with the bot", me=name, names=names
        )


def reference_in(messages: list[Seen]) -> str:
    """The patient's reference, from the bot's last answer."""
    for seen in messages:
        found = _REFERENCE.search(seen.body)
        if found is not None:
            return found.group()
    raise DemoError("the bot's answer gave no reference")


def containing(messages: list[Seen], phrase: str) -> str:
    return next((seen.body for seen in messages if phrase in seen.body), "")


async def patient_keeps_photos(stage: Stage) -> tuple[Chat, str]:
    """Notice, NHS number, screening, 'may be kept', two photos (a JPEG and an iPhone HEIC), done."""
    stage.transcript.step("Patient A opens an encrypted chat with the bot from their phone")
    chat = await stage.patient("patient.a", "Patient A")
    await chat.replies("NHS number")
    await chat.say("My name is Alex Example and I was born on 02/03/1961", expect="only need your NHS number")
    await chat.say(NHS_NUMBER_A, expect=NHS_NUMBER_A)
    await chat.say("1", expect="intimate area")
    await chat.say("no", expect="DONE")
    overview = camera_jpeg(seed=3)
    await chat.send_photo(
        overview,
        filename="IMG_2041.jpg",
        mimetype="image/jpeg",
        thumbnail=thumbnail_jpeg(overview),
        expect="Photo 1 received",
    )
    await chat.send_photo(
        camera_heic(seed=4),
        filename="IMG_2042.HEIC",
        mimetype="image/heic",
        as_file=True,
        expect="Photo 2 received",
    )
    await chat.say("It's on my left forearm, for about a week", expect="added your message")
    done = await chat.say("done", expect="reference is")
    return chat, reference_in(done)


async def clinician_reviews_keeps_and_exports(stage: Stage, room: Chat, reference: str) -> tuple[bytes, str]:
    """List, view, keep with a reason, crop, describe, export: (the record package, its file name)."""
    stage.transcript.step(
        "The clinician reviews it in the clinician room: the bot posted no image, no NHS number"
    )
    await room.replies(reference)
    await room.say("!queue", expect=reference)
    await room.say(f"!view {reference}", expect="Showing 2 photo", attachments=2)
    await room.say(
        f"!keep {reference} Changing lesion: the record needs a baseline to compare at review. Forearm "
        "only, nothing identifying: low distress if ever disclosed.",
        expect="kept for the record",
    )
    await room.say(f"!crop {reference} 1 10 10 80 80", expect="record version")
    await room.say(
        f"!describe {reference} 2 cm oval erythematous patch, left forearm, well defined, no scaling.",
        expect="Description saved",
    )
    before = len(room.attachments)
    await room.say(f"!export {reference}", expect="record package", attachments=1)
    package = next((seen for seen in room.attachments[before:] if seen.kind == "file"), None)
    if package is None:
        raise DemoError("the bot posted no record package")
    return room.downloads[package.event_id], package.body


async def clinician_deletes(stage: Stage, room: Chat, patient: Chat, reference: str) -> str:
    """Delete with a reason; the patient is told. The bot's receipt of what it destroyed where."""
    stage.transcript.step("Saved into the clinical record, the clinician deletes the submission from the bot")
    await room.say(
        f"!delete {reference} Saved to the clinical record; no other copy is needed.", expect="Reply yes"
    )
    receipt = await room.say("yes", expect="Receipt")
    await patient.replies("deleted by the practice")
    return containing(receipt, "Receipt")


async def patient_views_then_deletes(stage: Stage) -> tuple[Chat, str]:
    """A second patient chooses 'view then delete' and sends one photo."""
    stage.transcript.step("Patient B wants their photo looked at, then deleted: 'view then delete'")
    chat = await stage.patient("patient.b", "Patient B")
    await chat.replies("NHS number")
    await chat.say(NHS_NUMBER_B, expect=NHS_NUMBER_B)
    await chat.say("1", expect="intimate area")
    await chat.say("no", expect="DONE")
    await chat.say("delete", expect="What should happen")
    await chat.say("2", expect="DONE")
    await chat.send_photo(
        camera_jpeg(1600, 1200, seed=5),
        filename="IMG_0311.jpg",
        mimetype="image/jpeg",
        expect="Photo 1 received",
    )
    done = await chat.say("done", expect="reference is")
    return chat, reference_in(done)


async def clinician_views_and_describes(stage: Stage, room: Chat, patient: Chat, reference: str) -> None:
    """View, describe: the photo is destroyed at once, and the patient is told."""
    stage.transcript.step("The clinician views it and writes a description: the photo is destroyed")
    await room.replies(reference)
    await room.say(f"!view {reference}", expect="view then delete", attachments=1)
    await room.say(
        f"!describe {reference} Single 1 cm raised red papule, left forearm, no surrounding change.",
        expect="Reply yes",
    )
    await room.say("yes", expect="destroyed at")
    await patient.replies("have now been deleted")
