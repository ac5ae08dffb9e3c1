"""The push-rule evaluator reads the homeserver's real default rules and judges decrypted events with them."""

from __future__ import annotations

from tests.e2e.conftest import PersonFactory
from tests.e2e.push_rules import would_notify


async def test_default_rules_silence_notices_and_ring_for_text(make_person: PersonFactory) -> None:
    """With Synapse's default push rules a decrypted m.notice does not notify and an m.text does."""
    sender = await make_person("pr-sender")
    reader = await make_person("pr-reader")
    room_id = await sender.create_encrypted_room("Push rules", [reader.user_id])
    await reader.wait_joined(room_id, reader.user_id)
    await sender.wait_joined(room_id, reader.user_id)
    await sender.send_content(room_id, {"msgtype": "m.notice", "body": "a notice"})
    await sender.send_content(room_id, {"msgtype": "m.text", "body": "a text", "m.mentions": {}})
    notice, text = await reader.wait_for(room_id, 2)
    verdicts = [
        await would_notify(
            reader.client, room_id, {"type": "m.room.message", "sender": seen.sender, "content": seen.content}
        )
        for seen in (notice, text)
    ]
    assert [(verdict.notify, verdict.rule_id) for verdict in verdicts] == [
        (False, ".m.rule.suppress_notices"),
        (True, ".m.rule.room_one_to_one"),
    ]
