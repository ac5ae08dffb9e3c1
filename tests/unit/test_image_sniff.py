"""Step 1: what a file is (magic bytes only) and whether it is within the byte limit."""

import io
import random
import zipfile

import pytest

from bot.images.model import ImageFormat, Limits, PhotoRejected, RejectReason
from bot.images.size_limits import check_byte_size, check_pixel_count
from bot.images.sniff import detect_kind, sniff_format
from tests.unit.image_factory import make_heic, make_jpeg, make_png, make_scene, make_webp


def _pillow_bytes(format_name: str) -> bytes:
    out = io.BytesIO()
    make_scene(64, 48).save(out, format=format_name)
    return out.getvalue()


def _zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return out.getvalue()


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


def test_accepted_formats_are_recognised_by_content() -> None:
    """JPEG, PNG, WebP and HEIC files are recognised from their bytes alone."""
    assert detect_kind(make_jpeg(64, 48)) is ImageFormat.JPEG
    assert detect_kind(make_png(64, 48)) is ImageFormat.PNG
    assert detect_kind(make_webp(64, 48)) is ImageFormat.WEBP
    assert detect_kind(make_heic(64, 48)) is ImageFormat.HEIF


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"])
def test_every_heif_brand_is_accepted(brand: bytes) -> None:
    """An ISO BMFF file whose major brand is a HEIF brand is taken as HEIF."""
    assert detect_kind(_ftyp(brand, b"mif1", b"miaf")) is ImageFormat.HEIF


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
        (_pillow_bytes("TIFF"), "TIFF"),
        (_pillow_bytes("GIF"), "GIF"),
        (_pillow_bytes("BMP"), "BMP"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "SVG"),
        (b"\xef\xbb\xbf  <svg width='10' height='10'></svg>", "SVG"),
        (b"<!DOCTYPE html>\n<html><body><img src='x.jpg'></body></html>", "HTML"),
        (b"<?xml version='1.0'?><note>hi</note>", "XML"),
        (_zip_bytes(), "ZIP"),
        (_ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "MP4 video"),
        (_ftyp(b"qt  ", b"qt  "), "MOV video"),
        (_ftyp(b"3gp4", b"3gp4"), "3GP video"),
        (_ftyp(b"avif", b"avif", b"mif1", b"miaf"), "AVIF"),
        (_ftyp(b"mif1", b"mif1", b"avif", b"miaf"), "AVIF"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01", "WebM video"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "WAV audio"),
    ],
)
def test_other_kinds_are_named_for_a_kind_reply(data: bytes, name: str) -> None:
    """Common non-photo files are refused as unsupported, with a name the reply can use."""
    with pytest.raises(PhotoRejected) as refused:
        sniff_format(data)
    assert (refused.value.reason, refused.value.detected) == (RejectReason.UNSUPPORTED_TYPE, name)


def test_random_bytes_are_unsupported_and_unnamed() -> None:
    """Bytes that match no known signature are refused without a guess at what they are."""
    data = random.Random(3).randbytes(4096)  # noqa: S311 (reproducible noise, not a secret)
    assert detect_kind(data) is None
    with pytest.raises(PhotoRejected) as refused:
        sniff_format(data)
    assert refused.value.reason is RejectReason.UNSUPPORTED_TYPE


def test_a_jpeg_signature_inside_another_file_is_not_enough() -> None:
    """Only the start of the file counts: a PDF that embeds a JPEG is still a PDF."""
    assert detect_kind(b"%PDF-1.4\n" + make_jpeg(64, 48)) == "PDF"


def test_empty_file_is_refused_as_empty() -> None:
    """A file with no bytes is refused as empty."""
    with pytest.raises(PhotoRejected) as refused:
        check_byte_size(b"", Limits())
    assert refused.value.reason is RejectReason.EMPTY


def test_file_over_the_byte_limit_is_refused() -> None:
    """A file one byte over the limit is refused as too large; one at the limit passes."""
    limits = Limits(max_bytes=1000)
    check_byte_size(b"\xff" * 1000, limits)
    with pytest.raises(PhotoRejected) as refused:
        check_byte_size(b"\xff" * 1001, limits)
    assert refused.value.reason is RejectReason.TOO_LARGE


def test_pixel_limit_is_inclusive() -> None:
    """A header claiming exactly the pixel limit passes; one more pixel row is refused."""
    limits = Limits(max_pixels=100 * 100)
    check_pixel_count((100, 100), limits)
    with pytest.raises(PhotoRejected) as refused:
        check_pixel_count((100, 101), limits)
    assert refused.value.reason is RejectReason.TOO_MANY_PIXELS
