"""Clinician and admin rooms: the command table, and the dispatcher that authorises, runs and commits commands.

Messages that are not commands are staff talking among themselves: the bot ignores them. A command is
honoured only from a user on the practice's list for that room's role, checked against the configuration
in force at that moment, and only from a device that user's cross-signing identity has signed (the trust
policy's rule for room keys, `bot.trust_policy`); the sending device is the one the encryption proves. The
reply, the handled-event mark, the command's changes and its audit entry are committed in one transaction;
then the command's follow-up runs (posting images, destroying files).

One reaction is a command: ✋ or 👀 on a submission's alert is `!claim` of that submission, with the same
checks. Claiming is reversible; nothing that destroys or shares data has a reaction. A reaction sent in clear
(Element Web's) proves no device, so it counts only while every device of the account is signed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.clock import Clock
from bot.errors import TransientError, UserFacingError
from bot.ids import EventID, RoomID
from bot.matrix.events import Incoming, ReactionMessage, TextMessage
from bot.matrix.message_content import TEXT_ONLY
from bot.metrics import BotMetrics
from bot.trust_policy import DeviceVerdict
from handlers.admin import AdminDesk
from handlers.clinician import ClinicianDesk
from handlers.commands import (
    Command,
    Handler,
    Invocation,
    Outcome,
    Role,
    UsageError,
    allowed,
    help_text,
    parse_command,
    refused,
    unknown_command,
    usage_reply,
)
from handlers.delivery import Delivery
from storage.alert_events import AlertEvents
from storage.confirmations import PendingConfirmations
from storage.handled_events import HandledEvents
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.rooms import RoomKind
from storage.sql import Database
from storage.submissions import normalise_reference

log = logging.getLogger(__name__)

YES = frozenset({"yes", "y", "confirm", "yes please"})
# Reactions on a submission's alert that claim it, as `!claim` would: the one reaction shortcut, because
# claiming is reversible (anyone may claim it after). Nothing that destroys or shares data has a reaction.
CLAIM_REACTIONS = frozenset({"\N{RAISED HAND}", "\N{EYES}"})
_EMOJI_VARIANTS = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")  # presentation selectors, skin tones
TYPED_REFERENCE = re.compile(r"GP[- ]?[A-Z0-9]{4}[- ]?[A-Z0-9]{4}", re.IGNORECASE)


def names_a_reference(word: str, thread_reference: str) -> bool:
    """Whether a command typed in a submission's thread names a reference itself (its own, or another written
    out with its GP prefix); otherwise the thread's reference is meant ('!keep changing mole')."""
    return normalise_reference(word) == thread_reference or TYPED_REFERENCE.fullmatch(word) is not None


def claims(key: str) -> bool:
    """Whether a reaction's key is one that claims a submission (✋ in any skin tone, or 👀)."""
    return _EMOJI_VARIANTS.sub("", key) in CLAIM_REACTIONS


def without_reply_fallback(body: str) -> str:
    """A reply's body without the quoted fallback some clients put first ('> <@bot:x> New request...')."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def command_table(
    clinic: ClinicianDesk, admin: AdminDesk, help_for: Callable[[Invocation], Awaitable[Outcome]]
) -> dict[str, Command]:
    """Every staff command: name -> (role, usage line, what it does, handler). `!help` prints this."""
    c = Role.CLINICIAN
    commands = [
        Command("help", c, "!help", "this list", help_for),
        Command("queue", c, "!queue [new|claimed|done|open|all] [page]", "list submissions, newest first", clinic.reading.queue),
        Command("claim", c, "!claim REF", "take a submission on", clinic.reading.claim),
        Command("view", c, "!view REF", "show its photos here, for the viewing window", clinic.reading.view),
        Command("keep", c, "!keep REF <risk-benefit reason>", "keep it for the record (reason required)", clinic.decisions.keep),
        Command("describe", c, "!describe REF <description>", "save a detailed description", clinic.decisions.describe),
        Command("crop", c, "!crop REF <photo> <left> <top> <width> <height>", "crop to a rectangle, in % of the photo", clinic.decisions.edit),
        Command("rotate", c, "!rotate REF <photo> <90|180|270>", "rotate clockwise", clinic.decisions.edit),
        Command("blur", c, "!blur REF <photo> <left> <top> <width> <height>", "blur a rectangle (in %) to hide a feature", clinic.decisions.edit),
        Command("export", c, "!export REF", "the record package: photos, description, decisions, FHIR", clinic.packages.export),
        Command("consent", c, "!consent REF <second-opinion|teaching>", "ask the patient's consent to share", clinic.requests.consent),
        Command("share", c, "!share REF <second-opinion|teaching>", "a package to share (needs the patient's consent)", clinic.packages.share),
        Command("delete", c, "!delete REF <reason>", "destroy it everywhere, with a receipt (asks you to confirm)", clinic.deletion.delete),
        Command("undo", c, "!undo REF", "keep the photos of a view-then-delete you just described", clinic.decisions.undo),
        Command("request", c, "!request @patient:server|link <area> [-- note]", "ask a patient for a photo (link: a web chat link for SMS or email)", clinic.requests.request),
        Command("audit", c, "!audit REF", "its audit trail", clinic.reading.audit_trail),
        *admin_commands(admin, help_for),
    ]  # fmt: skip
    return {command.name: command for command in commands}


def admin_commands(admin: AdminDesk, help_for: Handler) -> list[Command]:
    """The admin room's commands; `photobot admin` runs the same ones from the command line."""
    a = Role.ADMIN
    return [
        Command("help-admin", a, "!help", "this list", help_for),
        Command("config", a, "!config", "show the configuration in force", admin.show),
        Command("set", a, "!set <setting> <value>", "change a setting (see !config)", admin.set_value),
        Command("clinician", a, "!clinician add|remove @user:server", "change who the clinicians are", admin.change_people),
        Command("admin", a, "!admin add|remove @user:server", "change who the admins are", admin.change_people),
        Command("room", a, "!room clinician add|remove !room | !room admin !room", "the rooms the bot serves staff in", admin.change_rooms),
        Command("text", a, "!text <name> <wording>|reset", "change a text patients see", admin.change_text),
        Command("identity", a, "!identity accept @user:server", "trust a staff member's new cross-signing identity", admin.identity),
        Command("retention-resume", a, "!retention-resume", "after a reported clock jump: trust the clock again", admin.retention_resume),
    ]  # fmt: skip


_DEVICE_REFUSALS = {
    DeviceVerdict.UNSIGNED: (
        "Sorry, I only act on commands from devices you have verified, and this one isn't. Verify it from "
        "one of your other devices (in Element: Settings, Sessions), then send the command again."
    ),
    DeviceVerdict.NO_IDENTITY: (
        "Sorry, I only act on commands from a verified device, and your account has no cross-signing set "
        "up. Set it up in your Matrix app (in Element: Settings, Security & Privacy) and verify this device."
    ),
    DeviceVerdict.IDENTITY_CHANGED: (
        "Sorry, your account's verification identity has changed since I last saw it, so I can't act on "
        "your commands until an admin accepts the new one. The admins have been told."
    ),
    DeviceVerdict.UNKNOWN: (
        "Sorry, I can't yet tell which of your devices sent that, so I can't act on it. Please send it "
        "again in a moment."
    ),
}

# A reaction sent in clear (as Element Web sends them) does not say which device sent it: it counts only
# when every device of the account is verified.
_CLEAR_REACTION_REFUSAL = (
    "Sorry, I can't tell which of your devices sent that reaction, and not all of them are verified, so I "
    "didn't claim it. Type `!claim` in this thread instead, or verify your other devices."
)


def _role(kind: RoomKind) -> Role:
    return Role.ADMIN if kind is RoomKind.ADMIN else Role.CLINICIAN


@dataclass
class StaffRooms:
    database: Database
    handled: HandledEvents
    outbox: Outbox
    delivery: Delivery
    config: LiveConfig
    clock: Clock
    table: dict[str, Command]
    metrics: BotMetrics
    check_device: Callable[[Incoming], Awaitable[DeviceVerdict]]  # the sending device, by `TrustPolicy`
    alerts: AlertEvents | None = None  # alerts are thread roots: a command in one needs no reference
    confirmations: PendingConfirmations | None = None  # destructive commands waiting for "yes"
    # command -> (the thread to answer in, the event the answer replies to)
    _threads: dict[EventID, tuple[EventID, EventID]] = field(default_factory=dict)

    async def help(self, cmd: Invocation) -> Outcome:
        role = Role.ADMIN if cmd.config.admin_room == cmd.room_id else Role.CLINICIAN
        return Outcome(help_text(self.table, role))

    def handler(self, kind: RoomKind) -> Callable[[Incoming], Awaitable[None]]:
        async def handle(event: Incoming) -> None:
            await self.handle(kind, event)

        return handle

    async def handle(self, kind: RoomKind, event: Incoming) -> None:
        if isinstance(event, ReactionMessage):
            await self._reaction(kind, event)
            return
        if not isinstance(event, TextMessage):
            return
        now = self.clock.now()
        found = await self._command_in(event, now)
        if found is None:
            return
        (name, words, body), confirmed = found
        role = _role(kind)
        config = self.config.current
        if name == "help" and role is Role.ADMIN:
            name = "help-admin"
        command = self.table.get(name)
        thread = await self._thread_of(event)
        if thread is not None and command is not None and " REF" in command.usage:
            reference = thread[1]
            if not words or not names_a_reference(words[0], reference):
                words, body = (reference, *words), f"{reference} {body}"
        cmd = Invocation(
            name, words, body, event.sender, event.room_id, event.event_id, now, config, confirmed
        )
        if not confirmed and self.confirmations is not None:
            waiting = await self.confirmations.waiting(event.room_id, event.sender, now)
            if waiting is not None and waiting == cmd.typed:  # the same command again, within the minute
                cmd = replace(cmd, confirmed=True)
        root = thread[0] if thread is not None else event.thread_root
        if root is not None:
            self._threads[event.event_id] = (root, event.event_id)
        label = "unknown" if command is None else name  # a metric label: never what an unknown name said
        await self._run(cmd, role, command, label, event)

    async def _reaction(self, kind: RoomKind, event: ReactionMessage) -> None:
        """✋ or 👀 on a submission's alert claims it, exactly as `!claim` in the alert's thread would (same
        checks, answered in the thread). Any other reaction, or one on anything but an alert: ignored."""
        if kind is RoomKind.ADMIN or self.alerts is None or not claims(event.key):
            return
        reference = await self.alerts.reference_of(event.room_id, event.reacts_to)
        if reference is None:
            return
        cmd = Invocation(
            "claim", (reference,), reference, event.sender, event.room_id, event.event_id,
            self.clock.now(), self.config.current,
        )  # fmt: skip
        self._threads[event.event_id] = (event.reacts_to, event.reacts_to)  # a reply to the alert itself
        await self._run(cmd, Role.CLINICIAN, self.table.get("claim"), "claim", event)

    async def _run(
        self, cmd: Invocation, role: Role, command: Command | None, label: str, event: Incoming
    ) -> None:
        """Authorise the command (the sender's role, then the sending device), run it and commit its reply."""
        name, config = cmd.name, cmd.config
        if not allowed(config, role, event.sender):
            log.info("refused a command from a user not on the practice's list")
            await self._commit(cmd, Outcome(refused(event.sender, role)), counted=(label, "refused"))
            return
        verdict = await self.check_device(event)
        if verdict is not DeviceVerdict.SIGNED:
            log.info("refused a staff command from a device that is not trusted (%s)", verdict.value)
            refusal = _DEVICE_REFUSALS[verdict]
            if (
                isinstance(event, ReactionMessage)
                and not event.encrypted
                and verdict is DeviceVerdict.UNSIGNED
            ):
                refusal = _CLEAR_REACTION_REFUSAL
            await self._commit(cmd, Outcome(refusal), counted=(label, "untrusted_device"))
            return
        if command is None:
            await self._commit(
                cmd, Outcome(unknown_command(name, self.table, role)), counted=(label, "unknown")
            )
            return
        if command.role is not role:
            where = "a clinician room" if command.role is Role.CLINICIAN else "the admin room"
            await self._commit(cmd, Outcome(f"`!{name}` works in {where}."), counted=(label, "wrong_room"))
            return
        result = "ok"
        try:
            outcome = await command.handler(cmd)
        except UsageError as error:
            outcome, result = Outcome(usage_reply(command, error.text)), "usage_error"
        except UserFacingError as error:
            outcome, result = Outcome(error.text), "declined"
        except Exception as error:
            if not isinstance(error, TransientError):  # a transient failure is replayed, counted then
                self.metrics.commands_total.inc(command=label, outcome="error")
            raise
        await self._commit(cmd, outcome, counted=(label, result))

    async def _command_in(
        self, event: TextMessage, now: datetime
    ) -> tuple[tuple[str, tuple[str, ...], str], bool] | None:
        """The command a message gives, and whether it confirms one: a "yes" from the clinician asked to
        confirm a destructive command carries out that command. Anything else that is not a command: None."""
        text = without_reply_fallback(event.body)
        parsed = parse_command(text)
        if parsed is not None:
            return parsed, False
        if self.confirmations is None or text.strip().lower().rstrip(".!") not in YES:
            return None
        waiting = await self.confirmations.waiting(event.room_id, event.sender, now)
        parsed = parse_command(waiting) if waiting is not None else None
        return (parsed, True) if parsed is not None else None  # a "yes" that confirms nothing: staff talk

    async def _thread_of(self, event: TextMessage) -> tuple[EventID, str] | None:
        """(thread root, reference) when the command was sent in an alert's thread or as a reply to an alert."""
        if self.alerts is None:
            return None
        for anchor in (event.thread_root, event.reply_to):
            if anchor is not None:
                reference = await self.alerts.reference_of(event.room_id, anchor)
                if reference is not None:
                    return anchor, reference
        return None

    async def _commit(self, cmd: Invocation, outcome: Outcome, *, counted: tuple[str, str]) -> None:
        """Commit the command's changes and reply; `counted` is its (command, outcome) for the metrics. A
        command sent in a thread (or as a reply to an alert) is answered in that thread."""
        thread = self._threads.pop(cmd.event_id, None)
        async with self.database.transaction() as db:
            if outcome.work is not None:
                await outcome.work(db)
            await self.handled.mark(db, cmd.event_id, cmd.room_id)
            if self.confirmations is not None and cmd.confirmed:
                await self.confirmations.done(db, cmd.room_id, cmd.sender)
            if self.confirmations is not None and outcome.confirm is not None:
                await self.confirmations.ask(db, cmd.room_id, cmd.sender, outcome.confirm, cmd.now)
            reply: dict[str, object] = {"text": outcome.reply}
            if outcome.plain:
                reply[TEXT_ONLY] = True
            if thread is not None:
                reply |= {"thread_root": thread[0], "reply_to": thread[1]}
            await self.outbox.add(db, cmd.room_id, derive_txn_id(cmd.event_id, 0), "message", reply)
            for index, (room_id, text) in enumerate(outcome.notify, start=1):
                await self.outbox.add(
                    db, room_id, derive_txn_id(cmd.event_id, index), "message", {"text": text}
                )
        command, result = counted
        self.metrics.commands_total.inc(command=command, outcome=result)  # before the reply is sent
        log.info("command !%s: %s", command, result)  # the name (or "unknown") and outcome, never its words
        await self.delivery.flush(cmd.room_id)
        if outcome.after is not None:
            await outcome.after()
        for room_id in {room for room, _ in outcome.notify}:
            await self.delivery.flush(RoomID(room_id))

    async def failed(self, event: Incoming, reference: str) -> None:
        text = f"Sorry, something went wrong handling that (ref {reference}). Nothing was changed."
        async with self.database.transaction() as db:
            await self.handled.mark(db, event.event_id, event.room_id, outcome="failed")
            await self.outbox.add(
                db, event.room_id, derive_txn_id(event.event_id, 99), "message", {"text": text}
            )
