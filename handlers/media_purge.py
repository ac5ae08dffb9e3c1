"""Deleting patients' uploads from the homeserver, only where the homeserver says they are the patient's.

A media link proves nothing (matrix-notes #20): any message may point at any upload, such as another user's
avatar in a sticker, someone else's encrypted photo, or a relative's photo forwarded from a family chat.
Before deleting, the
bot asks the homeserver's admin API who uploaded it and when (`MatrixGateway.media_info`) and deletes it only
when all of these hold:
- it is on the bot's own homeserver (an upload elsewhere cannot be deleted by this practice; the ledger
  never lists one as waiting);
- the homeserver names the patient who sent the message as its uploader;
- it was uploaded for that message: no later than the message, and at most `UPLOAD_WINDOW` before it
  (a forwarded photo keeps its original, older upload).
Anything else is settled as "not the patient's upload" and left where it is.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.errors import TransientError
from bot.ids import UserID
from bot.matrix.mxc import is_local
from bot.matrix.port import MatrixError, MediaInfo, MediaPort, PurgeOutcome
from storage.media_ledger import NOT_OWNED, REMOTE, MediaEntry, MediaLedger

log = logging.getLogger(__name__)

# How long before its message an upload may have been made and still count as made for it. Apps upload
# when the patient presses send; an hour leaves room for a slow connection.
UPLOAD_WINDOW = timedelta(hours=1)
# The upload and the message are timed by the same homeserver's clock; this only absorbs rounding.
_CLOCK_SLACK_MS = 5_000


def uploaded_for_message(info: MediaInfo, owner: UserID | None, sent_at_ms: int | None) -> bool:
    """Whether the homeserver's record shows the message's sender uploaded this for that message."""
    if owner is None or info.uploader != owner:
        return False
    if sent_at_ms is None:
        return False
    window_ms = int(UPLOAD_WINDOW.total_seconds() * 1000)
    return sent_at_ms - window_ms <= info.created_ms <= sent_at_ms + _CLOCK_SLACK_MS


async def purge_pending_media(media: MediaLedger, gateway: MediaPort) -> None:
    """Delete every due upload the homeserver confirms is the patient's; a refusal stays pending and is
    retried with backoff; one that is not theirs is settled and never deleted."""
    if not gateway.can_purge_media:
        return
    refused = settled = not_theirs = 0
    for entry in await media.due():
        status = await _purge_one(entry, gateway)
        if status is None:
            await media.failed(entry.id)
            refused += 1
            continue
        not_theirs += status == NOT_OWNED
        settled += status not in {NOT_OWNED, REMOTE}
        await media.settle(entry.id, status)
    if settled:
        log.info("purge: %d upload(s) of patients' photos deleted from the homeserver", settled)
    if not_theirs:
        log.info("left %d upload(s) that patients' messages pointed at but they did not upload", not_theirs)
    if refused:
        log.warning(
            "the homeserver refused to delete %d upload(s) of patients' photos; they stay in the ledger and"
            " are retried with backoff. Check the homeserver-admin credential (homeserver_admin_token).",
            refused,
        )


async def _purge_one(entry: MediaEntry, gateway: MediaPort) -> str | None:
    """The ledger status the entry ends in, or None if the homeserver refused (it stays pending)."""
    if not is_local(entry.url, gateway.server_name):
        return REMOTE
    try:
        info = await gateway.media_info(entry.url)
    except MatrixError as error:
        if isinstance(error, TransientError):
            raise
        return None  # a refused credential, typically: retried with backoff, the operator told
    if info is None:
        return PurgeOutcome.ALREADY_GONE.value
    if not uploaded_for_message(info, entry.owner, entry.sent_at_ms):
        return NOT_OWNED
    outcome = await gateway.purge_media(entry.url)
    return None if outcome is PurgeOutcome.FAILED else outcome.value
