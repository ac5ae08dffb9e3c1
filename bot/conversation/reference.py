"""Identifiers derived from others, so the same input always gives the same answer.

Reference code
    What the patient and the clinicians quote: "GP-" and eight characters in two groups of four, e.g.
    "GP-7KQ4-M2DX". The characters come from the first 40 bits of SHA-256 of the conversation id, five
    bits at a time, in an alphabet of 32 that leaves out 0, O, 1 and I, which are easy to confuse when read
    aloud or copied by hand. 40 bits keep an accidental clash unlikely (about 1 in 20,000 over 10,000
    requests); a reference is for people to quote, and a clash must still be checked where references
    are stored.

Conversation id of a restart
    When a patient replies START after a finished conversation, the new conversation's id is derived from
    the id of that START message, so handling the same message twice (after a crash) gives the same
    conversation.
"""

from __future__ import annotations

import hashlib

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_PREFIX = "GP"


def reference_code(conversation_id: str) -> str:
    """The patient-facing reference of a conversation: 'GP-XXXX-XXXX'."""
    digest = hashlib.sha256(b"gp-photo-bot/reference\x00" + conversation_id.encode()).digest()
    bits = int.from_bytes(digest[:5], "big")
    chars = "".join(REFERENCE_ALPHABET[(bits >> shift) & 0x1F] for shift in range(35, -1, -5))
    return f"{REFERENCE_PREFIX}-{chars[:4]}-{chars[4:]}"


def restart_conversation_id(event_id: str) -> str:
    """The id of the conversation a START message begins."""
    return "c" + hashlib.sha256(b"gp-photo-bot/restart\x00" + event_id.encode()).hexdigest()[:31]
