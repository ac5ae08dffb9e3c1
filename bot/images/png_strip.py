"""Remove every metadata chunk from a PNG by rewriting its chunk list; the pixels are untouched.

Kept: the image (IHDR, PLTE, IDAT, IEND), transparency (tRNS), colour (iCCP, sRGB, gAMA, cHRM, cICP)
and pixel aspect (pHYs). Dropped: text (tEXt, zTXt, iTXt), Exif (eXIf), time (tIME), animation
(acTL, fcTL, fdAT: the default image stays, extra frames go), every other chunk, and anything after IEND.
Every chunk's CRC is checked, so damage anywhere is found before decoding.
"""

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from bot.images.model import Cleaned, ImageFormat, PhotoRejected, RejectReason
from bot.images.sniff import PNG_SIGNATURE

KEPT_CHUNKS = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"pHYs"}
)
_IHDR_LENGTH = 13
_MAX_CHUNK_LENGTH = 2**31 - 1  # PNG spec: lengths above this are invalid
# Encoders write IDAT in chunks of 8 KiB or more; a file of millions of tiny chunks is an attack on time.
MAX_CHUNKS = 100_000


@dataclass(frozen=True)
class Chunk:
    """One PNG chunk as stored: `raw` is length, type, data and CRC together."""

    type: bytes
    raw: bytes


def read_png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first."""
    if len(data) < len(PNG_SIGNATURE) + 8 + _IHDR_LENGTH:
        raise PhotoRejected(RejectReason.TRUNCATED)
    length = int.from_bytes(data[8:12], "big")
    if data[12:16] != b"IHDR" or length != _IHDR_LENGTH:
        raise PhotoRejected(RejectReason.CORRUPT)
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    if not (0 < width <= _MAX_CHUNK_LENGTH and 0 < height <= _MAX_CHUNK_LENGTH):
        raise PhotoRejected(RejectReason.CORRUPT)
    return width, height


def strip_png(data: bytes) -> Cleaned:
    """The PNG with only the chunks in `KEPT_CHUNKS`, ending at IEND."""
    width, height = read_png_size(data)
    kept = [chunk.raw for chunk in iter_chunks(data) if chunk.type in KEPT_CHUNKS]
    return Cleaned(PNG_SIGNATURE + b"".join(kept), ImageFormat.PNG, width, height, converted=False)


def iter_chunks(data: bytes) -> Iterator[Chunk]:
    """Every chunk up to and including IEND, CRC-checked; TRUNCATED if IEND is never reached."""
    pos = len(PNG_SIGNATURE)
    size = len(data)
    view = memoryview(data)
    for _ in range(MAX_CHUNKS):
        if pos + 12 > size:
            raise PhotoRejected(RejectReason.TRUNCATED)
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length > _MAX_CHUNK_LENGTH:
            raise PhotoRejected(RejectReason.CORRUPT)
        end = pos + 12 + length
        if end > size:
            raise PhotoRejected(RejectReason.TRUNCATED)
        chunk_type = data[pos + 4 : pos + 8]
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise PhotoRejected(RejectReason.CORRUPT)
        yield Chunk(chunk_type, data[pos:end])
        if chunk_type == b"IEND":
            return
        pos = end
    raise PhotoRejected(RejectReason.CORRUPT)
