"""The whole pipeline: what a patient's upload turns into, or why it is refused. It never raises."""

import io
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

import bot.images
from bot.images import CleanPhoto, ImageFormat, Limits, Rejected, RejectReason, process_photo
from tests.unit.image_factory import (
    SECRET_MARKERS,
    TRAILING_MARKER,
    make_heic,
    make_jpeg,
    make_png,
    make_scene,
    make_webp,
    patch_jpeg_frame_size,
    png_chunk,
    png_claiming_size,
    same_pixels,
)

LIMITS = Limits()


def _clean(data: bytes, limits: Limits = LIMITS) -> CleanPhoto:
    result = process_photo(data, limits)
    assert isinstance(result, CleanPhoto), result
    return result


def _pillow_bytes(format_name: str) -> bytes:
    out = io.BytesIO()
    make_scene(64, 48).save(out, format=format_name)
    return out.getvalue()


def test_public_api_is_exported_from_the_package() -> None:
    """Callers import everything they need from `bot.images`."""
    assert set(bot.images.__all__) == {
        "CleanPhoto",
        "ImageFormat",
        "Limits",
        "QualityIssue",
        "QualityReport",
        "RejectReason",
        "Rejected",
        "process_photo",
    }


def test_jpeg_comes_out_clean_with_identical_pixels() -> None:
    """A phone JPEG loses all its metadata but none of its pixels, and is not converted."""
    original = make_jpeg(gps=True, device=True, orientation=6, icc=True, xmp=True, comment=True, mpf=True)
    photo = _clean(original + TRAILING_MARKER)
    assert (photo.format, photo.source_format, photo.mime, photo.converted) == (
        ImageFormat.JPEG,
        ImageFormat.JPEG,
        "image/jpeg",
        False,
    )
    assert (photo.width, photo.height) == (1024, 768)
    assert same_pixels(original, photo.data)
    assert [marker for marker in SECRET_MARKERS if marker in photo.data] == []


@pytest.mark.parametrize(
    ("data", "mime"),
    [(make_png(text=True, gps=True), "image/png"), (make_webp(gps=True, xmp=True), "image/webp")],
    ids=["png", "webp"],
)
def test_png_and_webp_stay_in_their_format(data: bytes, mime: str) -> None:
    """PNG and WebP photos are cleaned losslessly in their own format."""
    photo = _clean(data)
    assert (photo.mime, photo.converted) == (mime, False)
    assert same_pixels(data, photo.data)
    assert [marker for marker in SECRET_MARKERS if marker in photo.data] == []


def test_heic_is_converted_to_jpeg() -> None:
    """An iPhone-style HEIC with GPS becomes a JPEG, marked as converted, with no GPS."""
    photo = _clean(make_heic(gps=True, thumbnail=True, second_image=True))
    assert (photo.format, photo.source_format, photo.mime, photo.converted) == (
        ImageFormat.JPEG,
        ImageFormat.HEIF,
        "image/jpeg",
        True,
    )
    assert (photo.width, photo.height) == (1024, 768)
    with Image.open(io.BytesIO(photo.data)) as image:
        assert dict(image.getexif()) == {}
    assert [marker for marker in SECRET_MARKERS if marker in photo.data] == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n", Rejected(RejectReason.UNSUPPORTED_TYPE, "PDF")),
        (_pillow_bytes("TIFF"), Rejected(RejectReason.UNSUPPORTED_TYPE, "TIFF")),
        (_pillow_bytes("GIF"), Rejected(RejectReason.UNSUPPORTED_TYPE, "GIF")),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", Rejected(RejectReason.UNSUPPORTED_TYPE, "SVG")),
        (b"<html><body>photo.jpg</body></html>", Rejected(RejectReason.UNSUPPORTED_TYPE, "HTML")),
        (
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\x00\x00\x00\x08free",
            Rejected(RejectReason.UNSUPPORTED_TYPE, "MP4 video"),
        ),
        (random.Random(1).randbytes(10_000), Rejected(RejectReason.UNSUPPORTED_TYPE, None)),  # noqa: S311
        (b"", Rejected(RejectReason.EMPTY, None)),
    ],
    ids=["pdf", "tiff", "gif", "svg", "html", "mp4", "random", "empty"],
)
def test_non_photos_are_refused_by_content(data: bytes, expected: Rejected) -> None:
    """Files are judged by their bytes alone (a PDF renamed photo.jpg is still a PDF) and refused."""
    assert process_photo(data, LIMITS) == expected


def test_file_over_the_byte_limit_is_refused_before_parsing() -> None:
    """A file over the byte limit is refused as too large, whatever it contains."""
    assert process_photo(make_jpeg(320, 240), Limits(max_bytes=1000)) == Rejected(
        RejectReason.TOO_LARGE, None
    )


def test_truncated_jpeg_is_refused() -> None:
    """A JPEG cut in the middle of its image data is refused as truncated."""
    original = make_jpeg()
    assert process_photo(original[: len(original) * 2 // 3], LIMITS) == Rejected(
        RejectReason.TRUNCATED, "JPEG"
    )


def test_png_bomb_header_is_refused_without_decoding() -> None:
    """A tiny PNG claiming 50,000 x 50,000 pixels is refused from its header alone."""
    assert process_photo(png_claiming_size(50_000, 50_000), LIMITS) == Rejected(
        RejectReason.TOO_MANY_PIXELS, "PNG"
    )


def test_png_just_over_our_pixel_limit_is_refused() -> None:
    """A PNG claiming 64 megapixels, under Pillow's own bomb limit but over ours, is refused."""
    assert process_photo(png_claiming_size(8000, 8000), LIMITS) == Rejected(
        RejectReason.TOO_MANY_PIXELS, "PNG"
    )


def test_jpeg_claiming_over_100_megapixels_is_refused() -> None:
    """A JPEG whose frame header claims 12,000 x 10,000 pixels is refused before decoding."""
    liar = patch_jpeg_frame_size(make_jpeg(320, 240), 12_000, 10_000)
    assert process_photo(liar, LIMITS) == Rejected(RejectReason.TOO_MANY_PIXELS, "JPEG")


def test_pixel_limit_applies_to_every_format() -> None:
    """With a 100,000-pixel limit, a 120,000-pixel WebP and HEIC are refused as well."""
    limits = Limits(max_pixels=100_000)
    for data, name in ((make_webp(400, 300), "WebP"), (make_heic(400, 300), "HEIC")):
        assert process_photo(data, limits) == Rejected(RejectReason.TOO_MANY_PIXELS, name)


def test_animated_webp_is_refused() -> None:
    """An animated WebP is refused as unsupported."""
    frames = [make_scene(64, 48, seed=1), make_scene(64, 48, seed=2)]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:])
    assert process_photo(out.getvalue(), LIMITS) == Rejected(RejectReason.UNSUPPORTED_TYPE, "animated WebP")


def test_damaged_image_data_is_corrupt() -> None:
    """A PNG whose compressed data is damaged (with a matching CRC) fails to decode and is corrupt."""
    original = make_png(64, 48)
    start = original.find(b"IDAT") - 4
    length = int.from_bytes(original[start : start + 4], "big")
    compressed = original[start + 8 : start + 8 + length]
    damaged = png_chunk(b"IDAT", b"\x00\x01" + compressed[2:])  # not a zlib stream any more
    rebuilt = original[:start] + damaged + original[start + 12 + length :]
    assert process_photo(rebuilt, LIMITS) == Rejected(RejectReason.CORRUPT, "PNG")


def test_truncated_heic_is_refused() -> None:
    """A HEIC cut short is refused, not converted and not raised."""
    original = make_heic(320, 240)
    result = process_photo(original[: len(original) // 2], LIMITS)
    assert isinstance(result, Rejected)
    assert result.reason in (RejectReason.TRUNCATED, RejectReason.CORRUPT)
    assert result.detected == "HEIC"


def test_photos_can_be_processed_in_parallel_threads() -> None:
    """Several worker threads processing photos at once get the same results as one thread alone."""
    inputs = [
        make_jpeg(640, 480, gps=True),
        make_png(640, 480, text=True),
        make_webp(640, 480, gps=True),
        make_heic(640, 480, gps=True),
        png_claiming_size(50_000, 50_000),
        make_jpeg(640, 480)[:5000],
    ]
    expected = [process_photo(data, LIMITS) for data in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda data: process_photo(data, LIMITS), inputs * 4))
    assert results == expected * 4
