"""The physical floor: the least CPU any bot must spend on one photo, measured here on the same buffer.

An accepted JPEG has to be (1) checked against its hash and decrypted from the Matrix attachment
(AES-256-CTR + SHA-256), (2) stripped of its metadata without re-encoding (a segment rewrite), (3)
encrypted at rest (AES-256-GCM), and (4) written, synced and renamed into place. The floor is the sum of
those four, each the median CPU time (`time.thread_time`) of several runs on this machine, in this run.
A memory copy and a bare SHA-256 are measured too, as units to compare against; and nio's own attachment
decryption (pycryptodome), which the bot does not use, to show what that choice saves.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nio.crypto import attachments as nio_attachments

from bot.images.jpeg_strip import strip_jpeg
from bot.matrix.attachments import decrypt_attachment, encrypt_attachment

REPEATS = 15


@dataclass(frozen=True)
class Cost:
    """Median CPU and wall-clock seconds of one operation on the whole buffer."""

    cpu: float
    wall: float


@dataclass(frozen=True)
class Floor:
    size: int
    memcpy: Cost
    sha256: Cost
    aes_gcm_encrypt: Cost
    attachment_decrypt: Cost  # SHA-256 check + AES-CTR in one pass with `cryptography`, as the bot does
    attachment_decrypt_nio: Cost  # the same with nio.crypto.attachments (pycryptodome)
    metadata_strip: Cost  # lossless JPEG segment rewrite (bot.images.jpeg_strip)
    write_fsync: Cost  # write a temporary file, fsync, rename, fsync the directory (as the vault does)

    @property
    def cpu(self) -> float:
        """The floor: decrypt + strip + encrypt at rest + write and sync, in CPU seconds."""
        return (
            self.attachment_decrypt.cpu
            + self.metadata_strip.cpu
            + self.aes_gcm_encrypt.cpu
            + self.write_fsync.cpu
        )


def measure(operation: Callable[[], object], repeats: int) -> Cost:
    operation()  # warm caches and lazy imports
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        operation()
        cpu.append(time.thread_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return Cost(statistics.median(cpu), statistics.median(wall))


def _write_and_sync(directory: Path, data: bytes) -> None:
    temporary = directory / f".tmp-{secrets.token_hex(8)}"
    final = directory / "image.enc"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    temporary.replace(final)
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def measure_floor(jpeg: bytes, scratch: Path, repeats: int = REPEATS) -> Floor:
    """The floor for `jpeg`; `scratch` is a directory on the disk the bot writes its vault to."""
    upload = encrypt_attachment(jpeg)
    key, iv, digest = upload.key, upload.iv, upload.sha256
    gcm = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = secrets.token_bytes(12)
    sealed = gcm.encrypt(nonce, jpeg, b"photobot/image/v1:bench")
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        write_fsync = measure(lambda: _write_and_sync(Path(directory), sealed), repeats)
    return Floor(
        size=len(jpeg),
        memcpy=measure(lambda: bytearray(jpeg), repeats),
        sha256=measure(lambda: hashlib.sha256(jpeg).digest(), repeats),
        aes_gcm_encrypt=measure(lambda: gcm.encrypt(nonce, jpeg, b"photobot/image/v1:bench"), repeats),
        attachment_decrypt=measure(
            lambda: decrypt_attachment(upload.ciphertext, key=key, iv=iv, sha256=digest), repeats
        ),
        attachment_decrypt_nio=measure(
            lambda: nio_attachments.decrypt_attachment(upload.ciphertext, key, digest, iv), repeats
        ),
        metadata_strip=measure(lambda: strip_jpeg(jpeg), repeats),
        write_fsync=write_fsync,
    )
