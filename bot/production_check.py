"""`photobot check`'s questions about what breaks in production, each answered with one line.

A problem is something that stops the bot doing its job safely now (exit status 1): an admin token the
homeserver refuses or that is not a server admin's, a configured room the bot is not in or that is not
encrypted, a clinician or admin on a server the bot does not allow. A warning is something an operator
should know but that does not stop the service: a password left in the environment after `init`, the
default contact sentence, run-time settings that differ from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.ids import RoomID, UserID, server_name
from bot.matrix.homeserver_audit import HomeserverAudit
from bot.settings import Settings
from bot.texts import Texts
from storage.practice_config import SETTINGS, PracticeConfig, show_value, stored_form


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def check_admin_token(
    audit: HomeserverAudit, admin_token: str, bot_token: str, found: Findings
) -> None:
    """The token is accepted, belongs to a server admin, and deleting an upload with it works."""
    if not admin_token:
        found.warnings.append(
            "No homeserver admin token is set: patients' encrypted uploads stay on the homeserver. Set one with "
            "`photobot admin set homeserver_admin_token` (it is read from standard input)."
        )
        return
    problem = await admin_token_problem(audit, admin_token)
    if problem is not None:
        found.problems.append(problem)
        return
    mxc = await audit.upload_throwaway(bot_token)
    if mxc is None:
        found.problems.append(
            f"The bot could not upload a test file to {audit.url}, so media deletion is untested."
        )
        return
    deleted = await audit.delete_media(admin_token, mxc)
    if deleted.status != 200:
        found.problems.append(
            f"The homeserver admin token could not delete a test upload from {audit.url} ({deleted.errcode}): "
            "patients' uploads would stay on the homeserver."
        )


async def admin_token_problem(audit: HomeserverAudit, admin_token: str) -> str | None:
    """None if `admin_token` is a server admin's on `audit.url`; otherwise the sentence saying what is wrong.
    Also used when the token is set (`photobot admin set homeserver_admin_token`)."""
    owner, answer = await audit.whoami(admin_token)
    if owner is None:
        return (
            f"The homeserver admin token is not accepted by {audit.url} ({answer.errcode}): it is mistyped, "
            "expired or logged out. Set a valid one with `photobot admin set homeserver_admin_token`."
        )
    if not await audit.is_server_admin(admin_token, owner):
        return (
            f"The homeserver admin token belongs to {owner}, who is not a server admin of {audit.url}: it "
            "cannot delete patients' uploads. Use a server admin's token."
        )
    return None


async def check_rooms(
    audit: HomeserverAudit, bot_token: str, config: PracticeConfig, found: Findings
) -> None:
    """The bot is joined to every configured room, and each is encrypted."""
    rooms: list[tuple[str, RoomID]] = [("clinician room", room) for room in sorted(config.clinician_rooms)]
    if config.admin_room is not None:
        rooms.append(("admin room", config.admin_room))
    if not config.clinician_rooms:
        found.problems.append("No clinician room is configured: nobody would be told about patients' photos.")
    if config.admin_room is None:
        found.warnings.append("No admin room is configured: problems are only in the log.")
    joined = await audit.joined_rooms(bot_token)
    for kind, room in rooms:
        if room not in joined:
            found.problems.append(
                f"The bot is not in the {kind} {room}: invite it there (or correct the room id)."
            )
        elif not await audit.encrypted(bot_token, room):
            found.problems.append(
                f"The {kind} {room} is not encrypted: turn on encryption in its settings (it cannot be turned off)."
            )


def check_people(settings: Settings, config: PracticeConfig, found: Findings) -> None:
    """Every clinician and admin is on a server the bot allows."""
    for kind, people in (("clinician", config.clinicians), ("admin", config.admins)):
        for person in sorted(people):
            if server_name(UserID(person)) not in settings.allowed_servers:
                found.problems.append(
                    f"The {kind} {person} is on {server_name(UserID(person))}, a server the bot does not allow "
                    f"(PHOTOBOT_ALLOWED_SERVERS: {', '.join(sorted(settings.allowed_servers))})."
                )


def check_leftovers(settings: Settings, config: PracticeConfig, found: Findings) -> None:
    """A password left in the environment, and the default contact sentence."""
    if settings.password:
        found.warnings.append(
            "PHOTOBOT_PASSWORD is still set: it is needed only for `photobot init`. Remove it from the "
            "environment and the settings file."
        )
    if config.patient_texts().how_to_contact == Texts().how_to_contact:
        found.warnings.append(
            'Patients are told the default contact sentence ("Please phone <practice>, or ask at reception."): '
            "give the practice's phone number with `!text how_to_contact ...`."
        )


def run_time_changes(
    defaults: PracticeConfig, current: PracticeConfig, stored: dict[str, object]
) -> list[str]:
    """One line per setting changed at run time (admin room or `photobot admin`) that differs from the
    environment; a secret shows only whether it is set."""
    lines = []
    for key in sorted(stored):
        attribute = SETTINGS[key].attribute if key in SETTINGS else key
        if not hasattr(defaults, attribute) or stored_form(defaults, key) == stored_form(current, key):
            continue
        name = key if key in SETTINGS else attribute
        value = getattr(current, attribute)
        if isinstance(value, Mapping):  # the texts patients see: their names, not their wording
            lines.append(f"{name}: {', '.join(sorted(value))} changed from the built-in wording")
            continue
        lines.append(
            f"{name}: {show_value(current, name)} (the environment says {show_value(defaults, name)})"
        )
    return lines
