"""Keeps the patient journey in private chats the bot can make safe (see `bot.room_safety`).

- On joining a patient's chat (an invitation, or a chat joined before a restart), the room's state is read
  from the homeserver: a chat with anyone else in it (joined or invited), where the bot may not remove
  messages, or that is not encrypted and may not be, is refused: the patient is told why, plainly, and the
  bot leaves. No question is asked, so nothing is sent there.
- Before any event of a sync batch in a patient chat is handled, its membership is checked (nio's view
  after this sync, and every join or invite in the batch, in case someone came and went): a chat that
  gained a member is closed at once, before a photo or an NHS number of the same batch is accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.ids import RoomID, UserID
from bot.matrix.events import Incoming, MembershipChange
from bot.matrix.port import RoomPort
from bot.room_safety import assess, newcomers, room_facts
from handlers.patient import PatientHandler
from storage.rooms import Room

log = logging.getLogger(__name__)


@dataclass
class RoomGuard:
    gateway: RoomPort
    patient: PatientHandler

    async def admit(self, room_id: RoomID, patient: UserID) -> bool:
        """True if the journey may start in this just-joined chat; otherwise it is refused and left."""
        facts = room_facts(await self.gateway.room_state(room_id))
        problem = assess(facts, self.gateway.user_id, patient)
        if problem is None:
            return True
        log.info("refusing a chat that cannot be made safe for the journey (%s)", problem.value)
        await self.patient.refuse_room(room_id, patient, problem, encrypted=facts.encrypted)
        return False

    async def still_private(self, room: Room, events: list[Incoming]) -> bool:
        """True if only the bot and the patient are in the chat; otherwise the chat is closed now. In a chat
        already closed (the bot has not left yet), whatever the patient still sent is removed unread."""
        if room.member is None:
            return True
        if room.closed:
            await self.patient.remove_from_closed_room(room.room_id, room.member, events)
            return False
        changes = [
            (event.member, event.membership) for event in events if isinstance(event, MembershipChange)
        ]
        others = newcomers(
            room.member, self.gateway.user_id, self.gateway.room_members(room.room_id), changes
        )
        if not others:
            return True
        await self.patient.close_room(room.room_id, room.member, events)
        return False
