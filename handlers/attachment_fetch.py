"""Fetching a patient's attachment, with a specific reason when it can never be fetched.

A failure that waiting will not cure must not pass for a passing fault (the event replayed for ever, the
patient told "nothing you sent has been lost"): a link that is not a Matrix upload, an upload already
deleted from the homeserver, or one on another server that could not be fetched from. Each becomes a
`PhotoRejected` reason, so the patient gets a specific reply and the message is removed. Only a passing
fault of the bot's own homeserver is left to the router's retry.
"""

from __future__ import annotations

from bot.matrix.events import EncryptedFile
from bot.matrix.mxc import parse_mxc
from bot.matrix.port import MatrixError, MediaGoneError, MediaPort


class AttachmentUnavailable(Exception):  # noqa: N818 (a verdict, not an error: it carries the reason)
    """The attachment can never be fetched; `reason` is a `PhotoRejected` reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def fetch_attachment(gateway: MediaPort, file: EncryptedFile) -> bytes:
    """The attachment's ciphertext; raises AttachmentUnavailable for a permanent failure."""
    link = parse_mxc(file.url)
    if link is None:
        raise AttachmentUnavailable("not_matrix")
    remote = link.server != gateway.server_name
    try:
        return await gateway.download_encrypted(file)
    except MediaGoneError:
        raise AttachmentUnavailable("remote" if remote else "gone") from None
    except MatrixError:
        if remote:
            # Our homeserver could not get it from the other server. Replaying the event would hold up
            # everything after it in this chat; the patient can send it again.
            raise AttachmentUnavailable("remote") from None
        raise  # our own homeserver: a passing fault is retried, anything else meets the error boundary
