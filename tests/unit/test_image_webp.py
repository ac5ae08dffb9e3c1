"""Step 3 for WebP: RIFF chunks are rewritten without EXIF and XMP; animations are refused."""

import io
import struct
from collections.abc import Callable

import pytest
from PIL import Image

from bot.images.model import PhotoRejected, RejectReason
from bot.images.webp_strip import FLAG_EXIF, FLAG_XMP, read_webp_size, strip_webp
from tests.unit.image_factory import (
    GPS_MARKER,
    MAKE_MARKER,
    XMP_MARKER,
    make_animated_webp,
    make_webp,
    same_pixels,
    srgb_icc_profile,
)


def _fourccs(data: bytes) -> list[bytes]:
    """Chunk codes in order, read independently of the code under test."""
    codes, pos = [], 12
    while pos + 8 <= len(data):
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        codes.append(data[pos : pos + 4])
        pos += 8 + size + size % 2
    return codes


def _reason(data: bytes) -> RejectReason:
    with pytest.raises(PhotoRejected) as refused:
        strip_webp(data)
    return refused.value.reason


def test_exif_and_xmp_are_removed() -> None:
    """The EXIF (with GPS and device) and XMP chunks are gone, and their contents with them."""
    original = make_webp(gps=True, xmp=True)
    stripped = strip_webp(original).data
    assert {b"EXIF", b"XMP "} <= set(_fourccs(original))
    assert not {b"EXIF", b"XMP "} & set(_fourccs(stripped))
    for marker in (GPS_MARKER, MAKE_MARKER, XMP_MARKER):
        assert marker not in stripped


def test_vp8x_flags_and_riff_size_match_what_is_left() -> None:
    """The extended header no longer claims Exif or XMP, and the RIFF size is the real size."""
    stripped = strip_webp(make_webp(gps=True, xmp=True, icc=True)).data
    assert _fourccs(stripped)[0] == b"VP8X"
    assert stripped[20] & (FLAG_EXIF | FLAG_XMP) == 0
    assert struct.unpack("<I", stripped[4:8])[0] == len(stripped) - 8


def test_icc_profile_is_kept() -> None:
    """The colour profile (ICCP) survives."""
    with Image.open(io.BytesIO(strip_webp(make_webp(gps=True, icc=True)).data)) as image:
        assert image.info["icc_profile"] == srgb_icc_profile()


@pytest.mark.parametrize(
    ("lossless", "mode"), [(False, "RGB"), (True, "RGB"), (False, "RGBA"), (True, "RGBA")]
)
def test_stripped_webp_has_identical_pixels(lossless: bool, mode: str) -> None:
    """The compressed image is copied as is, so it decodes to exactly the same pixels."""
    original = make_webp(320, 240, gps=True, xmp=True, lossless=lossless, mode=mode)
    assert same_pixels(original, strip_webp(original).data)


def test_animated_webp_is_refused() -> None:
    """An animated WebP is refused as unsupported and named as such."""
    with pytest.raises(PhotoRejected) as refused:
        strip_webp(make_animated_webp())
    assert (refused.value.reason, refused.value.detected) == (RejectReason.UNSUPPORTED_TYPE, "animated WebP")


def test_trailing_bytes_after_the_riff_container_are_dropped() -> None:
    """Anything appended after the RIFF container is not kept."""
    original = make_webp(64, 48)
    assert strip_webp(original + b"appended secret").data == original


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_webp(640, 480),
        lambda: make_webp(640, 480, lossless=True),
        lambda: make_webp(640, 480, gps=True),
    ],
    ids=["vp8", "vp8l", "vp8x"],
)
def test_size_is_read_from_the_first_chunk(make: Callable[[], bytes]) -> None:
    """Lossy, lossless and extended WebPs all report their size from the header."""
    assert read_webp_size(make()) == (640, 480)


def test_riff_size_beyond_the_data_is_truncated() -> None:
    """A WebP cut short of the size its RIFF header promises is truncated."""
    original = make_webp()
    assert _reason(original[: len(original) // 2]) is RejectReason.TRUNCATED


def test_not_a_webp_container_is_corrupt() -> None:
    """A RIFF file that is not WEBP cannot be stripped as one."""
    assert _reason(b"RIFF\x04\x00\x00\x00WAVE") is RejectReason.CORRUPT
