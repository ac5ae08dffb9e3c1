"""Decrypting a downloaded attachment apart from its download (so a crash point can sit between the two)."""

from __future__ import annotations

import pytest

from bot.matrix.attachments import AttachmentError, encrypt_attachment
from bot.matrix.events import EncryptedFile
from bot.matrix.gateway import decrypt_file
from tests.unit.image_factory import make_jpeg


def test_a_downloaded_photo_decrypts_to_what_the_patient_sent() -> None:
    """The ciphertext an event points at decrypts, with that event's key, to the photo as sent."""
    photo = make_jpeg(320, 240)
    upload = encrypt_attachment(photo)
    file = EncryptedFile(url="mxc://localhost/abc", key=upload.key, iv=upload.iv, sha256=upload.sha256)

    assert decrypt_file(upload.ciphertext, file) == photo


def test_a_download_that_does_not_match_its_event_is_refused() -> None:
    """A ciphertext altered on the way, or another upload's, is refused rather than decrypted."""
    upload = encrypt_attachment(make_jpeg(320, 240))
    other = encrypt_attachment(make_jpeg(336, 240))
    file = EncryptedFile(url="mxc://localhost/abc", key=upload.key, iv=upload.iv, sha256=upload.sha256)
    altered = bytes([upload.ciphertext[0] ^ 1]) + upload.ciphertext[1:]

    with pytest.raises(AttachmentError):
        decrypt_file(altered, file)
    with pytest.raises(AttachmentError):
        decrypt_file(other.ciphertext, file)
