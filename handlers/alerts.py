"""Messages that need a clinician: sent so they notify with Element's default notification settings.

An ordinary reply is an `m.notice`, which the default override rule `.m.rule.suppress_notices` silences. An
alert (a new request, a patient's consent answer, a submission destroyed without a description, a retention
warning, a reminder) is an `m.text` whose `m.mentions` names the practice's clinicians: the default rules
notify for it (`.m.rule.message`) and highlight it for each clinician named (`.m.rule.is_user_mention`).
Naming a clinician who is not in the room does nothing. No alert carries an NHS number or an image.
"""

from __future__ import annotations

from typing import Any

from storage.practice_config import PracticeConfig


def alert(text: str, config: PracticeConfig) -> dict[str, Any]:
    """The outbox payload of an alert for the practice's clinicians."""
    return {"text": text, "msgtype": "m.text", "mention_users": sorted(config.clinicians)}
