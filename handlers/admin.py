"""Practice administration: the admin room's commands, also run by `photobot admin ...` on the command line.

Every change is validated against the settings table (`storage.practice_config.SETTINGS`), stored in the
database in the same transaction as its audit entry, and in force from the next event (the live
configuration is refreshed after the commit). A secret (the homeserver-admin token) is stored sealed, never
echoed, and the admin's message carrying it is removed from the room.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.ids import RoomID, UserID
from bot.texts import Texts
from handlers.commands import Invocation, Outcome, UsageError
from storage.audit import AuditAction, AuditLog
from storage.practice_config import (
    ID_SETS,
    SETTINGS,
    ConfigError,
    LiveConfig,
    parse_room_id,
    parse_user_id,
    show_value,
    stored_form,
)
from storage.sql import Connection
from storage.staff_identities import StaffIdentities

_LISTS = {"clinician": "clinicians", "admin": "admins"}


@dataclass
class AdminDesk:
    config: LiveConfig
    audit: AuditLog
    redact_command: Callable[[Invocation], Awaitable[None]]
    resume_retention: Callable[[Connection], Awaitable[None]]
    identities: StaffIdentities

    async def show(self, cmd: Invocation) -> Outcome:
        config = cmd.config
        names = ["practice_name", "clinicians", "admins", "clinician_rooms", "admin_room", *sorted(SETTINGS)]
        lines = [f"- {name}: {show_value(config, name)}" for name in dict.fromkeys(names)]
        overridden = sorted(config.texts)
        lines.append(f"- texts changed: {', '.join(overridden) or 'none'}")
        return Outcome("**Configuration in force**\n" + "\n".join(lines))

    async def set_value(self, cmd: Invocation) -> Outcome:
        name = cmd.word(0, "The setting's name").lower()
        setting = SETTINGS.get(name)
        if setting is None:
            raise UsageError(f"There is no setting {name[:30]!r}. Settings: {', '.join(sorted(SETTINGS))}.")
        raw = cmd.rest(1, "The new value")
        try:
            value = setting.parse(raw)
        except ConfigError as error:
            raise UsageError(f"{name}: {error}") from None
        updated = replace(cmd.config, **{setting.attribute: value})
        stored = stored_form(updated, name)

        async def work(db: Connection) -> None:
            await self.config.repository.put(db, name, stored, by=cmd.sender, sealed=setting.secret)
            shown = "(secret)" if setting.secret else show_value(updated, name)
            await self._audit(db, cmd, name, {"set": shown})

        if setting.secret:
            await self.redact_command(cmd)
            return Outcome(
                f"{name} is updated and stored encrypted. I've removed your message.", work, self._refresh
            )
        return Outcome(f"{name} is now {show_value(updated, name)}.", work, self._refresh)

    async def change_people(self, cmd: Invocation) -> Outcome:
        """`!clinician add @user:server`, `!admin remove @user:server`."""
        key = _LISTS[cmd.name]
        action = cmd.word(0, "add or remove").lower()
        if action not in {"add", "remove"}:
            raise UsageError("Say add or remove.")
        return await self._change_set(cmd, key, action, cmd.word(1, "The Matrix id"))

    async def change_rooms(self, cmd: Invocation) -> Outcome:
        """`!room clinician add !room`, `!room clinician remove !room`, `!room admin !room`."""
        kind = cmd.word(0, "clinician or admin").lower()
        if kind == "admin":
            room = RoomID(_parse(parse_room_id, cmd.word(1, "The room id")))
            updated = replace(cmd.config, admin_room=room)

            async def work(db: Connection) -> None:
                await self.config.repository.put(db, "admin_room", room, by=cmd.sender)
                await self._audit(db, cmd, "admin_room", {"set": room})

            return Outcome(
                f"The admin room is now {updated.admin_room}. Invite me there.", work, self._refresh
            )
        if kind != "clinician":
            raise UsageError("Say clinician or admin.")
        action = cmd.word(1, "add or remove").lower()
        if action not in {"add", "remove"}:
            raise UsageError("Say add or remove.")
        return await self._change_set(cmd, "clinician_rooms", action, cmd.word(2, "The room id"))

    async def _change_set(self, cmd: Invocation, key: str, action: str, raw: str) -> Outcome:
        item = _parse(ID_SETS[key], raw)
        current: frozenset[Any] = getattr(cmd.config, key)
        if action == "add" and item in current:
            return Outcome(f"{item} is already in {key}.")
        if action == "remove" and item not in current:
            return Outcome(f"{item} is not in {key}.")
        if key == "admins" and action == "remove" and current == {item}:
            raise UsageError("That would leave no admin. Add another admin first.")
        updated_set = current | {item} if action == "add" else current - {item}
        changes: dict[str, Any] = {key: updated_set}
        updated = replace(cmd.config, **changes)

        async def work(db: Connection) -> None:
            await self.config.repository.put(db, key, stored_form(updated, key), by=cmd.sender)
            await self._audit(db, cmd, key, {action: item})

        done = "added to" if action == "add" else "removed from"
        effect = " It takes effect now." if key != "clinician_rooms" else " Invite me to the room."
        return Outcome(f"{item} is {done} {key}.{effect}", work, self._refresh)

    async def change_text(self, cmd: Invocation) -> Outcome:
        """`!text how_to_contact Please phone 01234 567890.` or `!text how_to_contact reset`."""
        name = cmd.word(0, "The text's name")
        known = {field for field in vars(Texts()) if not field.startswith("_")}
        if name not in known:
            raise UsageError(f"There is no text {name[:40]!r}. Examples: how_to_contact, privacy_notice.")
        template = cmd.rest(1, "The new wording (or reset)")
        texts = dict(cmd.config.texts)
        if template.lower() == "reset":
            texts.pop(name, None)
        else:
            texts[name] = template
        try:
            replace(Texts(), **texts)
        except (TypeError, ValueError) as error:
            raise UsageError(str(error)) from None

        async def work(db: Connection) -> None:
            await self.config.repository.put(db, "texts", texts, by=cmd.sender)
            await self._audit(
                db, cmd, f"texts.{name}", {"reset" if name not in texts else "set": len(template)}
            )

        return Outcome(
            f"The text {name} is {'reset' if name not in texts else 'updated'}.", work, self._refresh
        )

    async def retention_resume(self, cmd: Invocation) -> Outcome:
        """After a reported clock jump: an admin confirms the clock is right; the job acts again."""

        async def work(db: Connection) -> None:
            await self.resume_retention(db)
            await self._audit(db, cmd, "retention", {"resumed": "clock confirmed"})

        return Outcome("The retention job will run again from now, trusting the present clock.", work)

    async def identity(self, cmd: Invocation) -> Outcome:
        """`!identity accept @user:server`: trust a staff member's new cross-signing identity."""
        if cmd.word(0, "accept").lower() != "accept":
            raise UsageError("Say accept.")
        user_id = UserID(_parse(parse_user_id, cmd.word(1, "The Matrix id")))
        pinned = await self.identities.get(user_id)
        if pinned is None or pinned.changed_key is None:
            return Outcome(f"{user_id} has no new identity waiting to be accepted.")
        new_key = pinned.changed_key

        async def work(db: Connection) -> None:
            await self.identities.accept(db, user_id, new_key)
            await self._audit(db, cmd, "identity", {"accepted": user_id})

        return Outcome(
            f"{user_id}'s new identity is accepted: the devices it has signed are trusted from now on.", work
        )

    async def _refresh(self) -> None:
        await self.config.refresh()

    async def _audit(self, db: Connection, cmd: Invocation, subject: str, details: dict[str, object]) -> None:
        await self.audit.append(
            db, actor=cmd.sender, action=AuditAction.CONFIG, subject=subject, details=details
        )


def _parse(parse: Callable[[str], str], raw: str) -> str:
    try:
        return parse(raw)
    except ConfigError as error:
        raise UsageError(str(error)) from None
