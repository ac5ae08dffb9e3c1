"""Which chats may hold the journey, decided from the room's own state (never nio's power levels)."""

from __future__ import annotations

from typing import Any

from bot.ids import UserID
from bot.room_safety import Unsafe, assess, newcomers, room_facts

BOT = UserID("@bot:hs")
PATIENT = UserID("@patient:hs")
OTHER = UserID("@other:hs")


def member(user: str, membership: str = "join") -> dict[str, Any]:
    return {"type": "m.room.member", "state_key": user, "content": {"membership": membership}}


def state(
    *,
    version: str = "12",
    creator: str = PATIENT,
    additional: tuple[str, ...] = (),
    users: dict[str, int] | None = None,
    encrypted: bool = True,
    members: tuple[dict[str, Any], ...] = (),
) -> list[dict[str, Any]]:
    events = [
        {
            "type": "m.room.create",
            "sender": creator,
            "content": {"room_version": version, "additional_creators": list(additional)},
        },
        {
            "type": "m.room.power_levels",
            "content": {"users": users or {}, "events": {"m.room.encryption": 100}, "redact": 50},
        },
        member(PATIENT),
        member(BOT),
        *members,
    ]
    if encrypted:
        events.append({"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
    return events


def test_a_v12_trusted_private_chat_is_safe_because_the_bot_is_a_creator() -> None:
    """Invited as an additional creator (power 0 in the power levels, unlimited by the room version): safe."""
    assert assess(room_facts(state(additional=(BOT,))), BOT, PATIENT) is None


def test_creators_are_unlimited_only_from_room_version_12() -> None:
    """In a room version 11 chat, being listed as a creator gives no power: the bot cannot remove messages."""
    assert assess(room_facts(state(version="11", additional=(BOT,))), BOT, PATIENT) is Unsafe.CANNOT_REMOVE


def test_a_third_member_joined_or_invited_makes_the_chat_not_private() -> None:
    """Anyone besides the bot and the patient, joined or only invited, makes the chat not private."""
    for membership in ("join", "invite"):
        facts = room_facts(state(additional=(BOT,), members=(member(OTHER, membership),)))
        assert assess(facts, BOT, PATIENT) is Unsafe.NOT_PRIVATE
    left = room_facts(state(additional=(BOT,), members=(member(OTHER, "leave"),)))
    assert assess(left, BOT, PATIENT) is None


def test_a_bot_at_power_zero_cannot_remove_messages() -> None:
    """A private chat (not trusted) gives the invited bot power 0, below the redact level."""
    assert assess(room_facts(state()), BOT, PATIENT) is Unsafe.CANNOT_REMOVE
    assert assess(room_facts(state(users={BOT: 50})), BOT, PATIENT) is None


def test_an_unencrypted_chat_the_bot_may_not_encrypt_is_refused() -> None:
    """Not encrypted, and the encryption event needs 100: the bot at 50 cannot make the chat safe."""
    facts = room_facts(state(users={BOT: 50}, encrypted=False))
    assert assess(facts, BOT, PATIENT) is Unsafe.NOT_ENCRYPTED
    assert assess(room_facts(state(users={BOT: 100}, encrypted=False)), BOT, PATIENT) is None


def test_someone_who_came_and_went_within_one_batch_still_counts() -> None:
    """A stranger who joined and left again inside one sync batch is a newcomer, though gone now."""
    changes = [(OTHER, "join"), (OTHER, "leave")]
    assert newcomers(PATIENT, BOT, {PATIENT, BOT}, changes) == {OTHER}
    assert newcomers(PATIENT, BOT, {PATIENT, BOT}, [(PATIENT, "join"), (BOT, "invite")]) == frozenset()
