"""The demo's transcript: who said what, in which room, in the order it happened.

`Transcript` only formats and prints. A `Chat` is one scripted person in one room: it sends what the
script says, waits for the bot's answer (a phrase the answer must contain, and how many images or files
come with it), then prints every new message. Photos and files are printed as one line each, described
from their decrypted bytes ("[photo: 1600x1200 JPEG, 95 KB; no location, camera or time in it]"); bytes,
keys and media URLs are never printed. When the bot removes one of the person's own messages from the
chat, the transcript says so.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Final

from bot.ids import EventID, RoomID, UserID
from devtools.demo.people import Person, Seen
from devtools.demo.photos import describe_photo, kilobytes, photo_dimensions

LINE_WIDTH: Final = 110
SPEAKER_WIDTH: Final = 10
REPLY_TIMEOUT_SECONDS: Final = 90.0
QUIET_SECONDS: Final = 0.6
_INDENT: Final = " " * (SPEAKER_WIDTH + 2)


class DemoError(RuntimeError):
    """The scripted conversation did not go as expected; the message says what was awaited."""


class Transcript:
    """Prints steps, notes and messages; a message in another room than the last one gets a room header."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._room: str | None = None
        self._after_message = False

    def step(self, text: str) -> None:
        self._room = None
        self._after_message = False
        self._write(f"\n== {text}")

    def note(self, text: str, *, wrap: bool = True) -> None:
        """A line from the narrator; a long one is wrapped, a list item's continuation indented under it."""
        if self._after_message:
            self._after_message = False
            self._write("")
        if not wrap:
            self._write(f"   {text}")
            return
        body = text.lstrip(" ")
        indent = "   " + " " * (len(text) - len(body))
        hanging = indent + ("  " if body.startswith("- ") else "")
        self._write(_fill(body, indent, hanging))

    def said(self, room: str, who: str, text: str) -> None:
        if room != self._room:
            self._write(f"\n   -- {room} --")
            self._room = room
        lines = text.replace("**", "").splitlines() or [""]
        self._after_message = True
        self._write("")
        for number, line in enumerate(lines):
            lead = f"{who:>{SPEAKER_WIDTH}}: " if number == 0 and who else _INDENT
            self._write(_fill(line, lead, _INDENT) if line.strip() else "")


class Chat:
    """One scripted person in one room, printing everything they see there as it arrives."""

    def __init__(
        self,
        transcript: Transcript,
        person: Person,
        room_id: RoomID,
        *,
        room: str,
        me: str,
        names: Mapping[UserID, str],
    ) -> None:
        self.transcript = transcript
        self.person = person
        self.room_id = room_id
        self.room = room
        self.me = me
        self.names = names
        self.shown = 0
        self.sent: dict[EventID, str] = {}  # what this person sent, as the transcript calls it
        self.downloads: dict[EventID, bytes] = {}  # images and files others sent, decrypted
        self.attachments: list[Seen] = []  # images and files others sent, in order
        self._removal_noted: set[EventID] = set()

    # ---- acting ---------------------------------------------------------------------------------------

    async def say(self, text: str, *, expect: str, attachments: int = 0) -> list[Seen]:
        """Send a text; wait for an answer containing `expect` (and `attachments` images or files)."""
        self.transcript.said(self.room, self.me, text)
        event_id = await self.person.say(self.room_id, text)
        self.sent[event_id] = f'the message "{_shortened(text)}"'
        return await self.replies(expect, attachments=attachments)

    async def send_photo(
        self,
        data: bytes,
        *,
        filename: str,
        mimetype: str,
        expect: str,
        as_file: bool = False,
        thumbnail: bytes | None = None,
    ) -> list[Seen]:
        """Send an encrypted photo (as an image, or as a file as iPhones often do), then wait as `say`."""
        how = "file" if as_file else "photo"
        preview = f"; sent with a {photo_dimensions(thumbnail)} thumbnail" if thumbnail else ""
        self.transcript.said(self.room, self.me, f"[{how} {filename}: {describe_photo(data)}{preview}]")
        event_id = await self.person.send_photo(
            self.room_id, data, filename=filename, mimetype=mimetype, as_file=as_file, thumbnail=thumbnail
        )
        self.sent[event_id] = f"the {how} {filename}"
        return await self.replies(expect)

    # ---- watching -------------------------------------------------------------------------------------

    async def replies(
        self, expect: str, *, attachments: int = 0, timeout: float = REPLY_TIMEOUT_SECONDS
    ) -> list[Seen]:
        """Wait for a new message containing `expect` and `attachments` new images or files, then until
        the room falls quiet; print every new message and return them."""

        def arrived() -> bool:
            new = self._unshown()
            return any(expect in seen.body for seen in new) and (
                sum(seen.kind in {"image", "file"} for seen in new) >= attachments
            )

        try:
            await self.person.wait_until(arrived, timeout)
        except TimeoutError:
            await self.show_new()
            raise DemoError(
                f"in {self.room}, waited {timeout:.0f} s for the bot to say {expect!r}"
                + (f" and send {attachments} image(s) or file(s)" if attachments else "")
            ) from None
        await self.person.settled(self.room_id, quiet=QUIET_SECONDS)
        return await self.show_new()

    async def show_new(self) -> list[Seen]:
        """Print every message not printed yet, and any of this person's messages the bot removed."""
        new = self._unshown()
        self.shown += len(new)
        for seen in new:
            self.transcript.said(self.room, self.names.get(seen.sender, seen.sender), await self._text(seen))
        for event_id, what in self.sent.items():
            if event_id in self.person.redacted and event_id not in self._removal_noted:
                self._removal_noted.add(event_id)
                self.transcript.said(self.room, "", f"(the bot removed {what} from the chat)")
        return new

    def removed(self) -> list[str]:
        """What of this person's own messages the bot has removed from the chat, in the order sent."""
        return [what for event_id, what in self.sent.items() if event_id in self.person.redacted]

    def _unshown(self) -> list[Seen]:
        return self.person.seen.get(self.room_id, [])[self.shown :]

    async def _text(self, seen: Seen) -> str:
        if seen.kind == "undecryptable":
            return "[a message this device could not decrypt]"
        if seen.kind not in {"image", "file"}:
            return seen.body
        data = await self.person.download_image(seen)
        self.downloads[seen.event_id] = data
        self.attachments.append(seen)
        if seen.kind == "file":
            return f"[file {seen.body}: {kilobytes(len(data))}]"
        return f"[photo: {seen.body}: {describe_photo(data)}]"


def _fill(text: str, first: str, rest: str) -> str:
    return textwrap.fill(
        text,
        LINE_WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,  # a reference like GP-7KQ2-M4XD stays on one line
        break_long_words=False,
    )


def _shortened(text: str, limit: int = 40) -> str:
    return textwrap.shorten(text, limit, placeholder="...")
