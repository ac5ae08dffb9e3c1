"""Split a JPEG into its marker segments without decoding it (ITU-T T.81, annex B).

A segment is the marker, its length-prefixed payload and, for a start-of-scan, the entropy-coded data
that follows (restart markers and stuffed bytes included). Progressive files simply have several scans.
Anything after the end-of-image marker is not part of the image and is not returned.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bot.images.model import PhotoRejected, RejectReason

SOI = 0xD8
EOI = 0xD9
SOS = 0xDA
DHT = 0xC4
JPG = 0xC8
DAC = 0xCC
TEM = 0x01
RST0, RST7 = 0xD0, 0xD7
APP0, APP15 = 0xE0, 0xEF
COM = 0xFE
# Start-of-frame markers: C0-CF except DHT, JPG and DAC.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {DHT, JPG, DAC}

# The end of entropy-coded data: an 0xFF followed by anything but a stuffed zero, a restart marker or
# another fill byte. One regex search in C, instead of a Python loop over every 0xFF (about 1 in 256 bytes).
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_FILL_BYTES = re.compile(rb"\xff+")
# Real photos have tens of segments (a progressive scan script, ICC chunks); a file made of millions of
# tiny segments would only keep a worker busy.
MAX_SEGMENTS = 10_000
# A progressive photo has about ten scans. Each scan makes the decoder walk every block of the image
# again, so thousands of tiny scans over a large frame would cost minutes of CPU.
MAX_SCANS = 100


@dataclass(frozen=True)
class Segment:
    """One marker segment: `marker` is the byte after 0xFF; `payload` excludes marker and length."""

    marker: int
    payload: bytes
    scan_data: bytes = b""


def read_jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the frame header, reading only the segments before it."""
    for segment in iter_segments(data):
        if segment.marker in SOF_MARKERS:
            return frame_size(segment)
        if segment.marker == SOS:
            break
    raise PhotoRejected(RejectReason.CORRUPT)


def frame_size(sof: Segment) -> tuple[int, int]:
    """(width, height) of a start-of-frame segment; zero (a height given later by DNL) is refused."""
    if len(sof.payload) < 6:
        raise PhotoRejected(RejectReason.CORRUPT)
    height = int.from_bytes(sof.payload[1:3], "big")
    width = int.from_bytes(sof.payload[3:5], "big")
    if width == 0 or height == 0:
        raise PhotoRejected(RejectReason.CORRUPT)
    return width, height


def split_jpeg(data: bytes) -> list[Segment]:
    """Every segment between SOI and EOI, in order; TRUNCATED if EOI is never reached."""
    segments = list(iter_segments(data))
    frames = [i for i, segment in enumerate(segments) if segment.marker in SOF_MARKERS]
    scans = [i for i, segment in enumerate(segments) if segment.marker == SOS]
    # Exactly one frame header, before the first scan: with two, a decoder could disagree with our size
    # check about which one counts.
    if len(frames) != 1 or not scans or scans[0] < frames[0] or len(scans) > MAX_SCANS:
        raise PhotoRejected(RejectReason.CORRUPT)
    return segments


def iter_segments(data: bytes) -> Iterator[Segment]:
    """Segments after SOI, lazily, stopping at EOI; TRUNCATED if the data ends first."""
    if not data.startswith(b"\xff\xd8"):
        raise PhotoRejected(RejectReason.CORRUPT)
    pos = 2
    size = len(data)
    for _ in range(MAX_SEGMENTS):
        pos = _skip_fill_bytes(data, pos)
        marker = data[pos + 1]
        if marker == EOI:
            return
        if marker in (SOI, TEM, 0x00) or RST0 <= marker <= RST7:
            raise PhotoRejected(RejectReason.CORRUPT)
        if pos + 4 > size:
            raise PhotoRejected(RejectReason.TRUNCATED)
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            raise PhotoRejected(RejectReason.CORRUPT)
        payload_end = pos + 2 + length
        if payload_end > size:
            raise PhotoRejected(RejectReason.TRUNCATED)
        payload = data[pos + 4 : payload_end]
        if marker != SOS:
            yield Segment(marker, payload)
            pos = payload_end
            continue
        scan_end = _END_OF_SCAN.search(data, payload_end)
        if scan_end is None:
            raise PhotoRejected(RejectReason.TRUNCATED)
        pos = scan_end.start()
        yield Segment(marker, payload, data[payload_end:pos])
    raise PhotoRejected(RejectReason.CORRUPT)


def _skip_fill_bytes(data: bytes, pos: int) -> int:
    """Position of the 0xFF that introduces the next marker, after any 0xFF fill bytes."""
    fill = _FILL_BYTES.match(data, pos)
    if fill is None:
        raise PhotoRejected(RejectReason.TRUNCATED if pos >= len(data) else RejectReason.CORRUPT)
    if fill.end() >= len(data):
        raise PhotoRejected(RejectReason.TRUNCATED)
    return fill.end() - 1
