"""Clinician and admin rooms: the command table, and the dispatcher that authorises, runs and commits commands.

Messages that are not commands are staff talking among themselves: the bot ignores them. A command is
honoured only from a user on the practice's list for that room's role, checked against the configuration
in force at that moment, and only from a device that user's cross-signing identity has signed (the trust
policy's rule for room keys, `bot.trust_policy`); the sending device is the one the encryption proves. The reply, the handled-event mark, the command's changes and its audit entry are
committed in one transaction; then the command's follow-up runs (posting images, destroying files).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.clock import Clock
from bot.errors import TransientError, UserFacingError
from bot.ids import RoomID
from bot.matrix.events import Incoming, TextMessage
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
from storage.database import Database
from storage.handled_events import HandledEvents
from storage.outbox import Outbox, derive_txn_id
from storage.practice_config import LiveConfig
from storage.rooms import RoomKind

log = logging.getLogger(__name__)


def command_table(
    clinic: ClinicianDesk, admin: AdminDesk, help_for: Callable[[Invocation], Awaitable[Outcome]]
) -> dict[str, Command]:
    """Every staff command: name -> (role, usage line, what it does, handler). `!help` prints this."""
    c = Role.CLINICIAN
    commands = [
        Command("help", c, "!help", "this list", help_for),
        Command("queue", c, "!queue [new|claimed|done|open|all] [page]", "list submissions, newest first", clinic.queue),
        Command("claim", c, "!claim REF", "take a submission on", clinic.claim),
        Command("view", c, "!view REF", "show its photos here, for the viewing window", clinic.view),
        Command("keep", c, "!keep REF <risk-benefit reason>", "keep it for the record (reason required)", clinic.keep),
        Command("describe", c, "!describe REF <description>", "save a detailed description", clinic.describe),
        Command("crop", c, "!crop REF <photo> <left> <top> <width> <height>", "crop to a rectangle, in % of the photo", clinic.edit),
        Command("rotate", c, "!rotate REF <photo> <90|180|270>", "rotate clockwise", clinic.edit),
        Command("blur", c, "!blur REF <photo> <left> <top> <width> <height>", "blur a rectangle (in %) to hide a feature", clinic.edit),
        Command("export", c, "!export REF", "the record package: photos, description, decisions, FHIR", clinic.export),
        Command("consent", c, "!consent REF <second-opinion|teaching>", "ask the patient's consent to share", clinic.consent),
        Command("share", c, "!share REF <second-opinion|teaching>", "a package to share (needs the patient's consent)", clinic.share),
        Command("delete", c, "!delete REF <reason>", "destroy it everywhere, with a receipt", clinic.delete),
        Command("request", c, "!request @patient:server <area> [-- note]", "ask a patient for a photo", clinic.request),
        Command("audit", c, "!audit REF", "its audit trail", clinic.audit_trail),
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

    async def help(self, cmd: Invocation) -> Outcome:
        role = Role.ADMIN if cmd.config.admin_room == cmd.room_id else Role.CLINICIAN
        return Outcome(help_text(self.table, role))

    def handler(self, kind: RoomKind) -> Callable[[Incoming], Awaitable[None]]:
        async def handle(event: Incoming) -> None:
            await self.handle(kind, event)

        return handle

    async def handle(self, kind: RoomKind, event: Incoming) -> None:
        if not isinstance(event, TextMessage):
            return
        parsed = parse_command(event.body)
        if parsed is None:
            return
        name, words, body = parsed
        role = _role(kind)
        config = self.config.current
        if name == "help" and role is Role.ADMIN:
            name = "help-admin"
        cmd = Invocation(
            name, words, body, event.sender, event.room_id, event.event_id, self.clock.now(), config
        )
        command = self.table.get(name)
        label = "unknown" if command is None else name  # a metric label: never what an unknown name said
        if not allowed(config, role, event.sender):
            log.info("refused a command from a user not on the practice's list")
            await self._commit(cmd, Outcome(refused(event.sender, role)), counted=(label, "refused"))
            return
        verdict = await self.check_device(event)
        if verdict is not DeviceVerdict.SIGNED:
            log.info("refused a staff command from a device that is not trusted (%s)", verdict.value)
            await self._commit(cmd, Outcome(_DEVICE_REFUSALS[verdict]), counted=(label, "untrusted_device"))
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

    async def _commit(self, cmd: Invocation, outcome: Outcome, *, counted: tuple[str, str]) -> None:
        """Commit the command's changes and reply; `counted` is its (command, outcome) for the metrics."""
        async with self.database.transaction() as db:
            if outcome.work is not None:
                await outcome.work(db)
            await self.handled.mark(db, cmd.event_id, cmd.room_id)
            await self.outbox.add(
                db, cmd.room_id, derive_txn_id(cmd.event_id, 0), "message", {"text": outcome.reply}
            )
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
