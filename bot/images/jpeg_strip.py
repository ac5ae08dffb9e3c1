"""Remove every metadata block from a JPEG by rewriting its segments, never re-encoding it.

The entropy-coded data is copied byte for byte, so the stripped file decodes to exactly the same pixels.
What is kept, and why:
- the coding segments (DQT, SOF, DHT, DAC, DRI, DNL, DHP, EXP, SOS with its scan data): the image itself;
- a JFIF APP0, rebuilt without its thumbnail: it tells decoders the colour space is YCbCr;
- the orientation, as a new APP1 Exif holding that single tag, and only when it is not upright;
- ICC profile APP2 chunks: the colours as the camera meant them;
- an Adobe APP14: its colour-transform flag changes how a decoder reads the channels (CMYK, RGB JPEGs).
Everything else goes: other Exif (GPS, device, times, maker notes, the IFD1 thumbnail), JFXX
thumbnails, XMP, MPF, Photoshop/IPTC APP13, other APPn, comments, and anything after EOI (MPF secondary
images, motion-photo videos, appended files).
"""

from collections.abc import Iterable, Iterator

from bot.images.exif_orientation import orientation_only_exif, read_orientation
from bot.images.jpeg_segments import SOF_MARKERS, SOS, Segment, frame_size, split_jpeg
from bot.images.model import Cleaned, ImageFormat

APP0, APP1, APP2, APP14 = 0xE0, 0xE1, 0xE2, 0xEE
DQT, DNL, DRI, DHP, EXP = 0xDB, 0xDC, 0xDD, 0xDE, 0xDF
DHT, DAC = 0xC4, 0xCC
CODING_MARKERS = SOF_MARKERS | {DHT, DAC, DQT, DNL, DRI, DHP, EXP, SOS}

JFIF_ID = b"JFIF\x00"
_JFIF_FIXED_LENGTH = 12  # identifier, version, units, x and y density; the thumbnail size follows
EXIF_ID = b"Exif\x00"
ICC_ID = b"ICC_PROFILE\x00"
ADOBE_ID = b"Adobe"


def strip_jpeg(data: bytes) -> Cleaned:
    """The JPEG with only image data, JFIF, orientation, ICC and Adobe segments, and nothing after EOI."""
    segments = split_jpeg(data)
    sof = next(segment for segment in segments if segment.marker in SOF_MARKERS)
    width, height = frame_size(sof)
    return Cleaned(join_segments(clean_segments(segments)), ImageFormat.JPEG, width, height, converted=False)


def clean_segments(segments: list[Segment]) -> list[Segment]:
    """The segments worth keeping, in their original order (see the module docstring)."""
    return list(_kept(segments, _orientation(segments)))


def join_segments(segments: Iterable[Segment]) -> bytes:
    """A complete JPEG (SOI ... EOI) made of `segments`."""
    parts = [b"\xff\xd8"]
    for segment in segments:
        parts.append(bytes((0xFF, segment.marker)))
        parts.append((len(segment.payload) + 2).to_bytes(2, "big"))
        parts.append(segment.payload)
        parts.append(segment.scan_data)
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def _orientation(segments: list[Segment]) -> int:
    exif = next((s for s in segments if s.marker == APP1 and s.payload.startswith(EXIF_ID)), None)
    return 1 if exif is None else read_orientation(exif.payload)


def _kept(segments: list[Segment], orientation: int) -> Iterator[Segment]:
    seen_jfif = seen_exif = False
    for segment in segments:
        marker, payload = segment.marker, segment.payload
        if marker in CODING_MARKERS or _is_colour_segment(marker, payload):
            yield segment
        elif marker == APP0 and not seen_jfif and _is_jfif(payload):
            seen_jfif = True
            yield Segment(APP0, payload[:_JFIF_FIXED_LENGTH] + b"\x00\x00")
        elif marker == APP1 and not seen_exif and payload.startswith(EXIF_ID):
            seen_exif = True
            if orientation != 1:
                yield Segment(APP1, orientation_only_exif(orientation))


def _is_jfif(payload: bytes) -> bool:
    return payload.startswith(JFIF_ID) and len(payload) >= _JFIF_FIXED_LENGTH + 2


def _is_colour_segment(marker: int, payload: bytes) -> bool:
    """An ICC profile chunk (APP2) or an Adobe colour-transform segment (APP14)."""
    return (marker == APP2 and payload.startswith(ICC_ID)) or (
        marker == APP14 and payload.startswith(ADOBE_ID)
    )
