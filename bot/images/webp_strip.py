"""Remove metadata from a WebP by rewriting its RIFF chunks; the compressed image is untouched.

Kept: VP8X (with its Exif and XMP flags cleared), ICCP, ALPH, VP8 and VP8L. Dropped: EXIF, XMP, every
unknown chunk, and anything after the RIFF end. Animated WebPs are refused: frames are not photos.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from bot.images.model import Cleaned, ImageFormat, PhotoRejected, RejectReason

KEPT_CHUNKS = frozenset({b"VP8X", b"ICCP", b"ALPH", b"VP8 ", b"VP8L"})
ANIMATION_CHUNKS = frozenset({b"ANIM", b"ANMF"})
ANIMATED_LABEL = "animated WebP"

# VP8X flag bits (https://developers.google.com/speed/webp/docs/riff_container#extended_file_format).
FLAG_ANIMATION = 0x02
FLAG_XMP = 0x04
FLAG_EXIF = 0x08
_HEADER_LENGTH = 12  # "RIFF", size, "WEBP"
MAX_CHUNKS = 1_000  # a still WebP has at most five kinds of chunk


@dataclass(frozen=True)
class RiffChunk:
    """One chunk: its four-character code and payload (without the pad byte)."""

    fourcc: bytes
    payload: bytes

    def to_bytes(self) -> bytes:
        pad = b"\x00" if len(self.payload) % 2 else b""
        return self.fourcc + len(self.payload).to_bytes(4, "little") + self.payload + pad


def read_webp_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first chunk: the VP8X canvas, or the VP8/VP8L bitstream header."""
    first = next(iter_chunks(data), None)
    if first is None:
        raise PhotoRejected(RejectReason.CORRUPT)
    payload = first.payload
    if first.fourcc == b"VP8X" and len(payload) >= 10:
        return _uint24(payload[4:7]) + 1, _uint24(payload[7:10]) + 1
    if first.fourcc == b"VP8 " and len(payload) >= 10 and payload[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(payload[6:8], "little") & 0x3FFF
        height = int.from_bytes(payload[8:10], "little") & 0x3FFF
        if width and height:
            return width, height
    if first.fourcc == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:
        bits = int.from_bytes(payload[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise PhotoRejected(RejectReason.CORRUPT)


def strip_webp(data: bytes) -> Cleaned:
    """The WebP with only the chunks in `KEPT_CHUNKS`, and VP8X flags that match them."""
    width, height = read_webp_size(data)
    kept: list[bytes] = []
    for chunk in iter_chunks(data):
        if chunk.fourcc in ANIMATION_CHUNKS or (chunk.fourcc == b"VP8X" and _flags(chunk) & FLAG_ANIMATION):
            raise PhotoRejected(RejectReason.UNSUPPORTED_TYPE, ANIMATED_LABEL)
        if chunk.fourcc == b"VP8X":
            kept.append(_without_metadata_flags(chunk).to_bytes())
        elif chunk.fourcc in KEPT_CHUNKS:
            kept.append(chunk.to_bytes())
    body = b"WEBP" + b"".join(kept)
    riff = b"RIFF" + len(body).to_bytes(4, "little") + body
    return Cleaned(riff, ImageFormat.WEBP, width, height, converted=False)


def iter_chunks(data: bytes) -> Iterator[RiffChunk]:
    """The chunks inside the RIFF container; TRUNCATED if the container claims more than there is."""
    if len(data) < _HEADER_LENGTH or data[0:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise PhotoRejected(RejectReason.CORRUPT)
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        raise PhotoRejected(RejectReason.TRUNCATED)
    pos = _HEADER_LENGTH
    count = 0
    while pos + 8 <= riff_end:
        count += 1
        if count > MAX_CHUNKS:
            raise PhotoRejected(RejectReason.CORRUPT)
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + size
        if end > riff_end:
            raise PhotoRejected(RejectReason.TRUNCATED)
        yield RiffChunk(data[pos : pos + 4], data[pos + 8 : end])
        pos = end + size % 2
    if pos < riff_end - 1:  # a stray byte is tolerated as a missing pad; more is a broken chunk header
        raise PhotoRejected(RejectReason.CORRUPT)


def _without_metadata_flags(vp8x: RiffChunk) -> RiffChunk:
    """The VP8X header with its "has Exif" and "has XMP" flags cleared."""
    return RiffChunk(b"VP8X", bytes((_flags(vp8x) & ~(FLAG_EXIF | FLAG_XMP),)) + vp8x.payload[1:])


def _flags(vp8x: RiffChunk) -> int:
    return vp8x.payload[0] if vp8x.payload else 0


def _uint24(raw: bytes) -> int:
    return int.from_bytes(raw, "little")
