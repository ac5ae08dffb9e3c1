"""Hostile input: mutated JPEG, PNG, WebP and HEIC bytes never make the pipeline raise or hang."""

import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.images import CleanPhoto, Limits, Rejected, process_photo
from tests.unit.image_factory import make_heic, make_jpeg, make_png, make_webp

LIMITS = Limits()
KEEP_SIGNATURE = 16  # mutations start after the magic bytes, which the sniffing tests cover
SEED_MAKERS: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: make_jpeg(96, 64, gps=True, xmp=True, comment=True, orientation=6),
    "progressive-jpeg": lambda: make_jpeg(96, 64, progressive=True, restart_marker_blocks=2),
    "png": lambda: make_png(96, 64, text=True, gps=True),
    "webp": lambda: make_webp(96, 64, gps=True, xmp=True),
    "webp-lossless": lambda: make_webp(96, 64, lossless=True),
    "heic": lambda: make_heic(96, 64, gps=True, thumbnail=True),
}


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    """Small valid photos to mutate, generated once for this module."""
    return {kind: make() for kind, make in SEED_MAKERS.items()}


def refresh_png_crcs(data: bytes) -> bytes:
    """`data` with every complete PNG chunk's CRC recomputed, so the damage reaches the decoder."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 12 + length
        if end > len(out):
            break
        out[end - 4 : end] = struct.pack(">I", zlib.crc32(out[pos + 4 : end - 4]))
        pos = end
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with bytes flipped, inserted, deleted or duplicated, or cut short, after its signature."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "flip", "cut", "insert", "delete", "duplicate"]))
        at = draw(st.integers(KEEP_SIGNATURE, max(KEEP_SIGNATURE, len(data) - 1)))
        if operation == "flip":
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
        elif operation == "cut":
            del data[at:]
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def _check(photo: bytes) -> None:
    result = process_photo(photo, LIMITS)
    assert isinstance(result, (CleanPhoto, Rejected))
    event("clean" if isinstance(result, CleanPhoto) else result.reason.value)
    if isinstance(result, CleanPhoto):
        assert result.width * result.height <= LIMITS.max_pixels
        assert result.data[:3] in (b"\xff\xd8\xff", b"\x89PN", b"RIF")


@pytest.mark.parametrize("kind", list(SEED_MAKERS))
@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_photos_never_raise(seeds: dict[str, bytes], kind: str, data: st.DataObject) -> None:
    """Whatever the damage, the pipeline answers with a clean photo or a reason, quickly."""
    _check(data.draw(mutated(seeds[kind])))


@settings(max_examples=150, deadline=2000)
@given(data=st.data())
def test_damaged_png_with_valid_crcs_never_raises(seeds: dict[str, bytes], data: st.DataObject) -> None:
    """A PNG damaged inside chunks whose CRCs were fixed up reaches the decoder and still never raises."""
    _check(refresh_png_crcs(data.draw(mutated(seeds["png"]))))


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    """Any bytes at all get an answer, never an exception."""
    assert isinstance(process_photo(data, LIMITS), (CleanPhoto, Rejected))


@settings(max_examples=200, deadline=1000)
@given(
    prefix=st.sampled_from(
        [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x01\x00\x00WEBP", b"\x00\x00\x00\x18ftypheic"]
    ),
    rest=st.binary(max_size=512),
)
def test_right_magic_with_garbage_after_never_raises(prefix: bytes, rest: bytes) -> None:
    """A file that starts like a photo but is garbage after its signature is refused, not raised."""
    assert isinstance(process_photo(prefix + rest, LIMITS), Rejected)
