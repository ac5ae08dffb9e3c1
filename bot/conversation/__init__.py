"""The patient conversation: a pure state machine (see `steps`), its data, inputs and effects.

conversation, effects = step(conversation, Text(event_id, body, now), policy)
"""

from bot.conversation.effects import (
    NHS_NUMBER_SHOWN,
    DestroyPhotos,
    Effect,
    NotifyClinicians,
    PurgeMedia,
    RecordConsent,
    Redact,
    RedactOwn,
    Reply,
    Submit,
)
from bot.conversation.inputs import (
    REJECT_REASONS,
    AskConsent,
    Begin,
    Edit,
    Expire,
    Input,
    PhotoNotExpected,
    PhotoRejected,
    PhotoStored,
    Reaction,
    RoomUnsafe,
    Text,
    Undecryptable,
    Unsupported,
)
from bot.conversation.model import FINISHED_STATES, Conversation, PendingConsent, Policy, State
from bot.conversation.photos import Admit, Refuse, photo_admission
from bot.conversation.reference import reference_code, restart_conversation_id
from bot.conversation.steps import NoConversationError, step
from bot.conversation.transitions import TRANSITIONS, Transition

__all__ = [
    "FINISHED_STATES",
    "NHS_NUMBER_SHOWN",
    "REJECT_REASONS",
    "TRANSITIONS",
    "Admit",
    "AskConsent",
    "Begin",
    "Conversation",
    "DestroyPhotos",
    "Edit",
    "Effect",
    "Expire",
    "Input",
    "NoConversationError",
    "NotifyClinicians",
    "PendingConsent",
    "PhotoNotExpected",
    "PhotoRejected",
    "PhotoStored",
    "Policy",
    "PurgeMedia",
    "Reaction",
    "RecordConsent",
    "Redact",
    "RedactOwn",
    "Refuse",
    "Reply",
    "RoomUnsafe",
    "State",
    "Submit",
    "Text",
    "Transition",
    "Undecryptable",
    "Unsupported",
    "photo_admission",
    "reference_code",
    "restart_conversation_id",
    "step",
]
