"""Staff commands: parsing, the one visible table of who may run what, and the dispatcher.

A command is a message starting with `!`. The table (`command_table`) maps each name to its handler, the
role allowed to run it and its usage line; `!help` prints the table for the room's role. A usage error gets
the usage line back. Authorisation uses the sender's Matrix user id against the practice configuration in
force at that moment (never display names or power levels), and only in a room configured for that role:
a revoked clinician's next command is refused, with no restart.

Each command returns an `Outcome`: the reply, the database changes to make (run inside the same transaction
as the handled-event mark and the queued reply, so a crash replays the command or finds it done), and what
to do after the commit (destroy vault files, post or retract images).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from bot.errors import UserFacingError
from bot.ids import EventID, RoomID, UserID
from storage.practice_config import PracticeConfig
from storage.sql import Connection

log = logging.getLogger(__name__)


class Role(Enum):
    CLINICIAN = "clinician"
    ADMIN = "admin"


class UsageError(UserFacingError):
    """The command's words do not fit its usage line; the text says what is wrong."""


@dataclass(frozen=True)
class Invocation:
    """One command as typed: `!keep GP-7KQ2-M4XD the lesion is changing` -> name 'keep', words, text."""

    name: str
    words: tuple[str, ...]
    body: str = field(repr=False)  # everything after the name, as typed
    sender: UserID
    room_id: RoomID
    event_id: EventID
    now: datetime
    config: PracticeConfig
    confirmed: bool = False  # the clinician confirmed it ("yes", or the same command again within a minute)

    @property
    def typed(self) -> str:
        """The command as typed (with the reference a thread supplied), to repeat or confirm."""
        return f"!{self.name} {' '.join(self.body.split())}".strip()

    def word(self, index: int, what: str) -> str:
        if index >= len(self.words):
            raise UsageError(f"{what} is missing.")
        return self.words[index]

    def rest(self, after: int, what: str) -> str:
        """The free text after the first `after` words (a reason, a description, a note)."""
        remainder = self.body
        for _ in range(after):
            remainder = remainder.lstrip()
            cut = len(remainder.split(maxsplit=1)[0]) if remainder.strip() else 0
            remainder = remainder[cut:]
        text = remainder.strip()
        if not text:
            raise UsageError(f"{what} is missing.")
        return text


Work = Callable[[Connection], Awaitable[None]]
After = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    reply: str
    work: Work | None = None
    after: After | None = None
    notify: tuple[tuple[RoomID, str], ...] = ()  # other rooms to tell (e.g. the patient: "deleted")
    plain: bool = False  # the reply quotes patient-supplied text: sent as plain text, never HTML or mentions
    confirm: str | None = None  # nothing was done yet: this command waits for the clinician's confirmation


Handler = Callable[[Invocation], Awaitable[Outcome]]


@dataclass(frozen=True)
class Command:
    name: str
    role: Role
    usage: str
    summary: str
    handler: Handler


def parse_command(body: str) -> tuple[str, tuple[str, ...], str] | None:
    """('keep', ('GP-7KQ2-M4XD', 'reason', ...), 'GP-7KQ2-M4XD reason ...') for a command, else None."""
    text = body.strip()
    if not text.startswith("!") or len(text) < 2:
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.strip().lower()
    if not name or not name.replace("-", "").isalnum():
        return None
    return name, tuple(rest.split()), rest


def help_text(table: dict[str, Command], role: Role) -> str:
    lines = [f"**Commands** ({role.value} room). REF is a reference like GP-7KQ2-M4XD."]
    lines += [f"- `{command.usage}`: {command.summary}" for command in table.values() if command.role is role]
    return "\n".join(lines)


def usage_reply(command: Command, problem: str) -> str:
    return f"{problem} Usage: `{command.usage}`"


def refused(sender: UserID, role: Role) -> str:
    who = "clinicians" if role is Role.CLINICIAN else "admins"
    return f"Sorry, {sender} is not on the practice's list of {who}, so I can't act on that. An admin can add you."


def unknown_command(name: str, table: dict[str, Command], role: Role) -> str:
    names = [command.name for command in table.values() if command.role is role]
    close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)  # a typo: "!vew", "!cliam"
    hint = f" Did you mean `!{close[0]}`?" if close else ""
    return f"I don't know the command `!{name[:30]}`.{hint} `!help` lists them."


def allowed(config: PracticeConfig, role: Role, sender: UserID) -> bool:
    return config.is_clinician(sender) if role is Role.CLINICIAN else config.is_admin(sender)


def format_rows(rows: Sequence[str]) -> str:
    return "\n".join(f"- {row}" for row in rows)
