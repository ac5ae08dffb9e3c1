"""The bot's own photo pipeline, step by step, on the same buffer as the floor: where its CPU goes.

The bot's metric says how much CPU a photo's pipeline took in total; this measures each step the bot
runs (the same functions, in this process, one thread, median of several runs), so the gap between the
pipeline and the floor can be attributed: decrypting the attachment, reading and stripping the JPEG,
decoding it completely into the preview (the proof it is intact, and the quality check's input), the
quality measures, and sealing it into the vault (AES-GCM, the keyed digest, write, fsync, rename).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.floor import REPEATS, Cost, measure
from bot.images.decode_check import decode_preview
from bot.images.jpeg_strip import strip_jpeg
from bot.images.model import Limits
from bot.images.pipeline import process_photo
from bot.images.quality import assess_quality
from bot.keyring import Keyring, MasterKey
from bot.matrix.attachments import decrypt_attachment, encrypt_attachment
from storage.vault import Vault


@dataclass(frozen=True)
class PipelineSteps:
    attachment_decrypt: Cost
    process_photo: Cost  # all of the checks and the cleaning: the next three and the small steps between
    metadata_strip: Cost
    decode_preview: Cost
    quality: Cost
    vault_put: Cost

    @property
    def cpu(self) -> float:
        """What one photo's pipeline costs on one quiet thread: decrypt + process + store."""
        return self.attachment_decrypt.cpu + self.process_photo.cpu + self.vault_put.cpu


def measure_pipeline_steps(jpeg: bytes, scratch: Path, repeats: int = REPEATS) -> PipelineSteps:
    upload = encrypt_attachment(jpeg)
    limits = Limits()
    cleaned = strip_jpeg(jpeg)
    preview = decode_preview(cleaned)
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        vault = Vault(Path(directory), Keyring(MasterKey.generate()))
        vault_put = measure(lambda: vault.put("benchimage", cleaned.data), repeats)
    return PipelineSteps(
        attachment_decrypt=measure(
            lambda: decrypt_attachment(upload.ciphertext, key=upload.key, iv=upload.iv, sha256=upload.sha256),
            repeats,
        ),
        process_photo=measure(lambda: process_photo(jpeg, limits), repeats),
        metadata_strip=measure(lambda: strip_jpeg(jpeg), repeats),
        decode_preview=measure(lambda: decode_preview(cleaned), repeats),
        quality=measure(lambda: assess_quality(preview, cleaned.width, cleaned.height, limits), repeats),
        vault_put=vault_put,
    )
