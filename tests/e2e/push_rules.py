"""Would this event notify? The account's push rules evaluated against a decrypted event, as Element does.

In an encrypted room the homeserver cannot read the message, so the client decides after decrypting: it
walks the account's rules (`GET /_matrix/client/v3/pushrules/`) in the order the Matrix specification
gives (override, content, room, sender, underride; each kind in the server's order), takes the first
enabled rule whose conditions all hold, and notifies when that rule's actions contain `notify`. An event
no rule matches does not notify. Conditions implemented (Matrix spec, "Push Rules"): `event_match` (glob,
case-insensitive, whole value; `content.body` by word), `event_property_is`, `event_property_contains`,
`contains_display_name`, `room_member_count`, `sender_notification_permission`. An unknown condition never
matches. The legacy mention rules are skipped for an event that carries `m.mentions` (intentional
mentions), and a person's own messages never notify them.

Test-side only: the bot never evaluates push rules, the tests use this to see what a clinician's phone does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nio.client.async_client import AsyncClient

KINDS = ("override", "content", "room", "sender", "underride")
# Deprecated mention rules not applied to an event that has `m.mentions` (spec: "Mentions", v1.7).
LEGACY_MENTION_RULES = frozenset(
    {".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"}
)
_WORD = "[A-Za-z0-9_]"


@dataclass(frozen=True)
class RoomContext:
    """What a client knows about the room and itself when it evaluates a rule."""

    user_id: str
    display_name: str | None = None
    member_count: int = 2
    sender_power: int = 0
    notifications: Mapping[str, int] = field(default_factory=dict)  # power levels' `notifications`


@dataclass(frozen=True)
class Verdict:
    notify: bool
    rule_id: str | None  # the rule that decided; None when nothing matched
    highlight: bool = False


def split_key(key: str) -> list[str]:
    """A dotted key split into property names: `\\.` is a literal dot, `\\\\` a literal backslash."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(key):
        char = key[index]
        if char == "\\" and index + 1 < len(key) and key[index + 1] in ".\\":
            current.append(key[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


_MISSING = object()


def lookup(event: Mapping[str, Any], key: str) -> Any:
    value: Any = event
    for part in split_key(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _glob(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def glob_matches(pattern: str, value: str, *, words: bool) -> bool:
    """Case-insensitive glob; whole value, or (for `content.body`) any run bounded by word boundaries."""
    regex = _glob(pattern)
    if words:
        return (
            re.search(f"(?:^|(?<!{_WORD})){regex}(?:$|(?!{_WORD}))", value, re.IGNORECASE | re.DOTALL)
            is not None
        )
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _member_count_holds(spec: str, count: int) -> bool:
    match = re.fullmatch(r"(==|<=|>=|<|>)?([0-9]+)", spec)
    if match is None:
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    return {
        "==": count == number,
        "<": count < number,
        ">": count > number,
        "<=": count <= number,
        ">=": count >= number,
    }[op]


def condition_holds(condition: Mapping[str, Any], event: Mapping[str, Any], room: RoomContext) -> bool:
    kind = condition.get("kind")
    if kind == "event_match":
        key, pattern = condition.get("key"), condition.get("pattern")
        value = lookup(event, str(key))
        if not isinstance(pattern, str) or not isinstance(value, str):
            return False
        return glob_matches(pattern, value, words=key == "content.body")
    if kind == "event_property_is":
        value = lookup(event, str(condition.get("key")))
        expected = condition.get("value")
        return value is not _MISSING and type(value) is type(expected) and value == expected
    if kind == "event_property_contains":
        value = lookup(event, str(condition.get("key")))
        expected = condition.get("value")
        return isinstance(value, list) and any(
            type(item) is type(expected) and item == expected for item in value
        )
    if kind == "contains_display_name":
        body = lookup(event, "content.body")
        name = room.display_name
        if not name or not isinstance(body, str):
            return False
        return re.search(f"(?<!{_WORD}){re.escape(name)}(?!{_WORD})", body, re.IGNORECASE) is not None
    if kind == "room_member_count":
        return _member_count_holds(str(condition.get("is", "")), room.member_count)
    if kind == "sender_notification_permission":
        needed = room.notifications.get(str(condition.get("key")), 50)
        return room.sender_power >= needed
    return False  # unknown conditions never match


def _rule_matches(kind: str, rule: Mapping[str, Any], event: Mapping[str, Any], room: RoomContext) -> bool:
    if kind == "content":
        body = lookup(event, "content.body")
        pattern = rule.get("pattern")
        return isinstance(body, str) and isinstance(pattern, str) and glob_matches(pattern, body, words=True)
    if kind == "room":
        return event.get("room_id") == rule.get("rule_id")
    if kind == "sender":
        return event.get("sender") == rule.get("rule_id")
    conditions: Sequence[Mapping[str, Any]] = rule.get("conditions", [])
    return all(condition_holds(condition, event, room) for condition in conditions)


def evaluate(rules: Mapping[str, Any], event: Mapping[str, Any], room: RoomContext) -> Verdict:
    """The first enabled matching rule decides; `rules` is the `global` ruleset."""
    if event.get("sender") == room.user_id:
        return Verdict(notify=False, rule_id=None)
    content = event.get("content")
    has_mentions = isinstance(content, Mapping) and "m.mentions" in content
    for kind in KINDS:
        for rule in rules.get(kind, []):
            if not rule.get("enabled", True):
                continue
            if has_mentions and rule.get("rule_id") in LEGACY_MENTION_RULES:
                continue
            if _rule_matches(kind, rule, event, room):
                actions = rule.get("actions", [])
                highlight = any(
                    isinstance(action, Mapping)
                    and action.get("set_tweak") == "highlight"
                    and action.get("value", True) is not False
                    for action in actions
                )
                return Verdict(
                    notify="notify" in actions, rule_id=str(rule.get("rule_id")), highlight=highlight
                )
    return Verdict(notify=False, rule_id=None)


async def fetch_rules(client: AsyncClient) -> dict[str, Any]:
    """The account's `global` push ruleset, as the homeserver serves it to the client."""
    response = await client.send(
        "GET",
        "/_matrix/client/v3/pushrules/",
        headers={"Authorization": f"Bearer {client.access_token}"},
    )
    body = await response.json()
    response.release()
    ruleset = body["global"]
    assert isinstance(ruleset, dict)
    return ruleset


def room_context(client: AsyncClient, room_id: str, sender: str) -> RoomContext:
    """The member count, the reader's display name and the sender's power as the reader's client sees them."""
    room = client.rooms[room_id]
    levels = room.power_levels
    return RoomContext(
        user_id=client.user_id,
        display_name=room.user_name(client.user_id),
        member_count=room.joined_count,
        sender_power=levels.get_user_level(sender),
        notifications=dict(levels.defaults.notifications),
    )


async def would_notify(client: AsyncClient, room_id: str, event: Mapping[str, Any]) -> Verdict:
    """Evaluate the reader's own push rules against a decrypted event (type, sender, room_id, content)."""
    rules = await fetch_rules(client)
    sender = str(event.get("sender", ""))
    return evaluate(rules, {"room_id": room_id, **event}, room_context(client, room_id, sender))
