"""View-then-delete submissions are destroyed once viewed and described, or when their viewing window ends.

Run by housekeeping under the workspace lock, like the clinicians' commands. The patient is told; if the
window ended before a clinician saved a description, the clinician rooms are told that too (rule 6).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.clock import Clock
from bot.ids import RoomID
from handlers.alerts import alert
from handlers.destruction import Destruction, patient_text
from storage.audit import AuditAction
from storage.practice_config import LiveConfig
from storage.submissions import SubmissionRepository


@dataclass
class ViewingWindows:
    submissions: SubmissionRepository
    destruction: Destruction
    config: LiveConfig
    clock: Clock
    lock: asyncio.Lock  # the workspace lock: commands and jobs change submissions one at a time

    async def end_due(self) -> int:
        """View-then-delete submissions whose viewing window has ended: destroyed, patient told."""
        now = self.clock.now()
        config = self.config.current
        window = config.viewing_window
        finished = 0
        async with self.lock:
            for submission in await self.submissions.due_for_destruction(now):
                told: list[tuple[RoomID, dict[str, object]]] = [
                    (
                        submission.room_id,
                        {"text": patient_text(config, "photos_viewed_and_deleted", submission)},
                    )
                ]
                await self.destruction.destroy_images(
                    submission, now, AuditAction.IMAGES_DESTROYED, {"why": "viewed and described"}, told
                )
                finished += 1
            for submission in await self.submissions.viewed_view_then_delete():
                viewed = submission.first_viewed_at
                if viewed is None or viewed + window > now:
                    continue
                notes: list[tuple[RoomID, dict[str, object]]] = [
                    (
                        submission.room_id,
                        {"text": patient_text(config, "photos_viewed_and_deleted", submission)},
                    )
                ]
                if submission.description is None:
                    text = (
                        f"**{submission.reference}** (view then delete) was destroyed at the end of its viewing "
                        "window **without a description**."
                    )
                    notes += [(room, alert(text, config)) for room in sorted(config.clinician_rooms)]
                await self.destruction.destroy_images(
                    submission, now, AuditAction.IMAGES_DESTROYED, {"why": "viewing window ended"}, notes
                )
                finished += 1
        if finished:
            await self.destruction.retract_due()
        return finished
