"""Step 3 for PNG: chunks are rewritten keeping the image and colour chunks; every CRC is checked."""

import io
import struct

import pytest
from PIL import Image

from bot.images.model import PhotoRejected, RejectReason
from bot.images.png_strip import iter_chunks, read_png_size, strip_png
from tests.unit.image_factory import (
    GPS_MARKER,
    TEXT_MARKER,
    TRAILING_MARKER,
    make_png,
    png_chunk,
    png_claiming_size,
    same_pixels,
    srgb_icc_profile,
)


def _chunk_types(data: bytes) -> list[bytes]:
    """Chunk types in order, read independently of the code under test."""
    types, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def _reason(data: bytes) -> RejectReason:
    with pytest.raises(PhotoRejected) as refused:
        strip_png(data)
    return refused.value.reason


def _with_chunk_before_iend(png: bytes, chunk: bytes) -> bytes:
    return png[:-12] + chunk + png[-12:]


def test_text_exif_and_time_chunks_are_removed() -> None:
    """tEXt, zTXt, iTXt, eXIf (with GPS) and tIME chunks are gone, and their contents with them."""
    original = make_png(text=True, gps=True, time=True)
    stripped = strip_png(original).data
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"} <= set(_chunk_types(original))
    assert not {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"} & set(_chunk_types(stripped))
    assert TEXT_MARKER not in stripped
    assert GPS_MARKER not in stripped


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_stripped_png_has_identical_pixels(mode: str) -> None:
    """Stripping is lossless for colour, transparent, greyscale, palette and 16-bit images."""
    original = make_png(320, 240, text=True, gps=True, mode=mode)
    assert same_pixels(original, strip_png(original).data)


def test_palette_transparency_is_kept() -> None:
    """A palette image keeps its PLTE and tRNS chunks, so transparent areas stay transparent."""
    image = Image.new("P", (64, 64), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=1)
    assert _chunk_types(strip_png(out.getvalue()).data) == [b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"]


def test_icc_profile_is_kept() -> None:
    """The colour profile (iCCP) survives."""
    with Image.open(io.BytesIO(strip_png(make_png(icc=True, text=True)).data)) as image:
        assert image.info["icc_profile"] == srgb_icc_profile()


def test_anything_after_iend_is_dropped() -> None:
    """Bytes appended after the end of the image are not kept."""
    stripped = strip_png(make_png(trailing=TRAILING_MARKER * 20)).data
    assert stripped.endswith(png_chunk(b"IEND", b""))
    assert TRAILING_MARKER not in stripped


def test_unknown_private_chunks_are_dropped() -> None:
    """A private chunk an app may have added is not kept."""
    original = _with_chunk_before_iend(make_png(64, 48), png_chunk(b"prVt", b"device id 1234"))
    assert b"prVt" not in _chunk_types(strip_png(original).data)


def test_bad_crc_is_corrupt() -> None:
    """A chunk whose CRC does not match its contents makes the file corrupt."""
    original = bytearray(make_png(64, 48))
    original[60] ^= 0xFF  # inside the first IDAT
    assert _reason(bytes(original)) is RejectReason.CORRUPT


def test_missing_iend_is_truncated() -> None:
    """A PNG that stops after its image data, without IEND, is truncated."""
    assert _reason(make_png(64, 48)[:-12]) is RejectReason.TRUNCATED


def test_chunk_running_past_the_end_is_truncated() -> None:
    """A PNG cut in the middle of its image data is truncated."""
    original = make_png()
    assert _reason(original[: len(original) // 2]) is RejectReason.TRUNCATED


def test_size_is_read_from_ihdr_without_decoding() -> None:
    """The IHDR size is read even when it claims 50,000 x 50,000 pixels over a tiny file."""
    assert read_png_size(png_claiming_size(50_000, 50_000)) == (50_000, 50_000)


def test_ihdr_must_come_first() -> None:
    """A PNG whose first chunk is not IHDR is corrupt."""
    original = make_png(64, 48)
    assert _reason(original[:8] + png_chunk(b"tEXt", b"a\x00b") + original[8:]) is RejectReason.CORRUPT


def test_chunks_are_checked_up_to_iend() -> None:
    """Chunk iteration stops at IEND and yields every chunk with its type."""
    types = [chunk.type for chunk in iter_chunks(make_png(64, 48, trailing=b"junk"))]
    assert types[0] == b"IHDR"
    assert types[-1] == b"IEND"


def test_animated_png_keeps_only_its_default_image() -> None:
    """An animated PNG loses its animation chunks and extra frames; its first frame remains."""
    first, second = Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 30, 200))
    out = io.BytesIO()
    first.save(out, format="PNG", save_all=True, append_images=[second])
    stripped = strip_png(out.getvalue()).data
    assert _chunk_types(stripped) == [b"IHDR", b"IDAT", b"IEND"]
    with Image.open(io.BytesIO(stripped)) as image:
        assert getattr(image, "n_frames", 1) == 1
        assert image.convert("RGB").tobytes() == first.tobytes()


def test_a_file_of_countless_tiny_chunks_is_refused() -> None:
    """A PNG made of hundreds of thousands of empty private chunks is refused instead of parsed."""
    original = make_png(64, 48)
    assert (
        _reason(_with_chunk_before_iend(original, png_chunk(b"prVt", b"") * 150_000)) is RejectReason.CORRUPT
    )
