"""The test-side push-rule evaluator decides notify / don't notify as the Matrix specification says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.e2e.push_rules import RoomContext, evaluate, glob_matches, split_key

ME = "@gp:example.org"
BOT = "@bot:example.org"
ROOM = "!clinicians:example.org"

# The relevant part of Synapse's default ruleset, in Synapse's order.
DEFAULTS: dict[str, Any] = {
    "override": [
        {"rule_id": ".m.rule.master", "default": True, "enabled": False, "conditions": [], "actions": []},
        {
            "rule_id": ".m.rule.suppress_notices",
            "default": True,
            "enabled": True,
            "conditions": [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}],
            "actions": [],
        },
        {
            "rule_id": ".m.rule.is_user_mention",
            "default": True,
            "enabled": True,
            "conditions": [
                {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": ME}
            ],
            "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}],
        },
        {
            "rule_id": ".m.rule.contains_display_name",
            "default": True,
            "enabled": True,
            "conditions": [{"kind": "contains_display_name"}],
            "actions": ["notify", {"set_tweak": "highlight"}],
        },
        {
            "rule_id": ".m.rule.is_room_mention",
            "default": True,
            "enabled": True,
            "conditions": [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            "actions": ["notify", {"set_tweak": "highlight"}],
        },
        {
            "rule_id": ".m.rule.roomnotif",
            "default": True,
            "enabled": True,
            "conditions": [
                {"kind": "sender_notification_permission", "key": "room"},
                {"kind": "event_match", "key": "content.body", "pattern": "@room"},
            ],
            "actions": ["notify", {"set_tweak": "highlight"}],
        },
        {
            "rule_id": ".m.rule.suppress_edits",
            "default": True,
            "enabled": True,
            "conditions": [
                {"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}
            ],
            "actions": [],
        },
    ],
    "content": [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": "gp",
            "actions": ["notify", {"set_tweak": "highlight"}],
        }
    ],
    "room": [],
    "sender": [],
    "underride": [
        {
            "rule_id": ".m.rule.room_one_to_one",
            "default": True,
            "enabled": True,
            "conditions": [
                {"kind": "room_member_count", "is": "2"},
                {"kind": "event_match", "key": "type", "pattern": "m.room.message"},
            ],
            "actions": ["notify", {"set_tweak": "sound", "value": "default"}],
        },
        {
            "rule_id": ".m.rule.message",
            "default": True,
            "enabled": True,
            "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
            "actions": ["notify"],
        },
    ],
}

GROUP = RoomContext(user_id=ME, display_name="Dr Gray", member_count=3, sender_power=0)


def message(body: str, msgtype: str = "m.text", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": BOT,
        "room_id": ROOM,
        "content": {"msgtype": msgtype, "body": body, **(extra or {})},
    }


def test_a_notice_does_not_notify() -> None:
    """A bot's m.notice is silenced by the default override rule, even in an "all messages" room."""
    verdict = evaluate(DEFAULTS, message("Kept.", "m.notice"), GROUP)
    assert (verdict.notify, verdict.rule_id) == (False, ".m.rule.suppress_notices")


def test_a_text_message_notifies() -> None:
    """An m.text message in a group room notifies through the default underride rule."""
    verdict = evaluate(DEFAULTS, message("New request"), GROUP)
    assert (verdict.notify, verdict.rule_id, verdict.highlight) == (True, ".m.rule.message", False)


def test_a_user_mention_highlights() -> None:
    """A text naming the reader in m.mentions notifies and highlights."""
    verdict = evaluate(DEFAULTS, message("New request", extra={"m.mentions": {"user_ids": [ME]}}), GROUP)
    assert (verdict.notify, verdict.rule_id, verdict.highlight) == (True, ".m.rule.is_user_mention", True)


def test_empty_mentions_turn_off_the_legacy_body_rules() -> None:
    """With m.mentions present, '@room' or a display name in the body highlights nobody."""
    plain = message("@room Dr Gray gp", extra={"m.mentions": {}})
    verdict = evaluate(DEFAULTS, plain, replace(GROUP, sender_power=100))
    assert (verdict.rule_id, verdict.highlight) == (".m.rule.message", False)
    legacy = evaluate(DEFAULTS, message("hello Dr Gray"), GROUP)
    assert (legacy.rule_id, legacy.highlight) == (".m.rule.contains_display_name", True)


def test_room_mention_needs_the_senders_power() -> None:
    """An @room mention highlights only when the sender has the room's notification power."""
    event = message("look", extra={"m.mentions": {"room": True}})
    assert evaluate(DEFAULTS, event, GROUP).rule_id == ".m.rule.message"
    powerful = RoomContext(user_id=ME, member_count=3, sender_power=50)
    assert evaluate(DEFAULTS, event, powerful).rule_id == ".m.rule.is_room_mention"


def test_edits_do_not_notify() -> None:
    """An m.replace edit is silenced by the default suppress_edits rule."""
    event = message("* Claimed", extra={"m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}})
    assert evaluate(DEFAULTS, event, GROUP).notify is False


def test_one_to_one_and_own_messages() -> None:
    """A 1:1 room uses the one-to-one rule; the reader's own message never notifies them."""
    assert (
        evaluate(DEFAULTS, message("hi"), RoomContext(user_id=ME, member_count=2)).rule_id
        == ".m.rule.room_one_to_one"
    )
    own = {**message("hi"), "sender": ME}
    assert evaluate(DEFAULTS, own, GROUP).notify is False


def test_content_room_and_sender_rules_and_disabled_rules() -> None:
    """A user's room rule muting the room wins over underride; a disabled override is skipped."""
    muted = {**DEFAULTS, "room": [{"rule_id": ROOM, "enabled": True, "actions": []}]}
    assert evaluate(DEFAULTS | muted, message("New request"), GROUP).rule_id == ROOM
    loud = {**DEFAULTS, "sender": [{"rule_id": BOT, "enabled": True, "actions": ["notify"]}]}
    assert evaluate(loud, message("x", "m.notice"), GROUP).rule_id == ".m.rule.suppress_notices"
    assert evaluate(loud, message("x"), GROUP).rule_id == BOT
    assert evaluate(DEFAULTS, message("ask the GP now"), GROUP).rule_id == ".m.rule.contains_user_name"
    assert evaluate(DEFAULTS, message("gpx"), GROUP).rule_id == ".m.rule.message"


def test_unknown_conditions_and_no_rules() -> None:
    """An unknown condition never matches, and an event no rule matches does not notify."""
    rules = {
        "override": [
            {"rule_id": "x", "enabled": True, "conditions": [{"kind": "future"}], "actions": ["notify"]}
        ]
    }
    verdict = evaluate(rules, message("hi"), GROUP)
    assert (verdict.notify, verdict.rule_id) == (False, None)


def test_glob_and_dotted_keys() -> None:
    """Globs match the whole value case-insensitively, bodies by word, and escaped dots stay in a name."""
    assert glob_matches("m.*", "M.NOTICE", words=False)
    assert not glob_matches("m.notice", "m.notice2", words=False)
    assert glob_matches("ca?", "the cat sat", words=True)
    assert not glob_matches("cat", "concatenate", words=True)
    assert split_key("content.m\\.mentions.user_ids") == ["content", "m.mentions", "user_ids"]
    assert split_key("a\\\\.b") == ["a\\", "b"]
