"""Step 3 for HEIF: only the primary image is decoded, upright, and re-encoded as a clean JPEG."""

import io

from PIL import Image, ImageChops, ImageStat

from bot.images.heif_convert import JPEG_QUALITY, convert_heif, read_heif_size
from bot.images.model import ImageFormat
from tests.unit.image_factory import SECRET_MARKERS, encode_jpeg, make_heic, make_scene, srgb_icc_profile


def _mean_difference(first: Image.Image, second: Image.Image) -> float:
    small = (64, 48) if first.width >= first.height else (48, 64)
    diff = ImageChops.difference(first.convert("RGB").resize(small), second.convert("RGB").resize(small))
    return sum(ImageStat.Stat(diff).mean) / 3


def test_heic_becomes_a_jpeg_without_any_metadata() -> None:
    """A HEIC with GPS and camera Exif becomes a JPEG with no Exif, GPS, make or model left."""
    original = make_heic(gps=True)
    cleaned = convert_heif(original)
    assert (cleaned.format, cleaned.converted) == (ImageFormat.JPEG, True)
    assert cleaned.data.startswith(b"\xff\xd8\xff")
    with Image.open(io.BytesIO(cleaned.data), formats=["JPEG"]) as image:
        assert dict(image.getexif()) == {}
        assert [name for name, _ in image.applist] == ["APP0"]  # type: ignore[attr-defined]
    assert [marker for marker in SECRET_MARKERS if marker in cleaned.data] == []


def test_converted_jpeg_looks_like_the_original() -> None:
    """The converted photo shows the same picture as the one the patient took."""
    cleaned = convert_heif(make_heic(640, 480, quality=95))
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert _mean_difference(image, make_scene(640, 480)) < 6


def test_converted_jpeg_is_quality_92() -> None:
    """The JPEG uses the quantisation tables of Pillow's quality 92, not a lossy default."""
    cleaned = convert_heif(make_heic(320, 240))
    reference = encode_jpeg(make_scene(32, 32), quality=JPEG_QUALITY)
    with Image.open(io.BytesIO(cleaned.data)) as image, Image.open(io.BytesIO(reference)) as expected:
        assert image.quantization == expected.quantization  # type: ignore[attr-defined]


def test_rotated_heic_comes_out_upright() -> None:
    """A photo stored sideways with a rotation comes out upright, and is not turned twice."""
    cleaned = convert_heif(make_heic(640, 480, orientation=6, quality=95))
    upright = make_scene(640, 480).transpose(Image.Transpose.ROTATE_270)
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert image.size == (480, 640)
        assert _mean_difference(image, upright) < 6
        assert _mean_difference(image, upright.transpose(Image.Transpose.ROTATE_180)) > 20


def test_only_the_primary_image_is_used() -> None:
    """With a thumbnail and a second image in the file, the output is the primary image alone."""
    for original in (
        make_heic(640, 480, thumbnail=True, second_image=True),
        make_heic(640, 480, second_image=True, primary_last=True),
    ):
        cleaned = convert_heif(original)
        assert (cleaned.width, cleaned.height) == (640, 480)
        assert cleaned.data.count(b"\xff\xd8\xff") == 1


def test_icc_profile_is_carried_over() -> None:
    """The HEIC's colour profile is embedded in the JPEG."""
    with Image.open(io.BytesIO(convert_heif(make_heic(320, 240, icc=True)).data)) as image:
        assert image.info["icc_profile"] == srgb_icc_profile()


def test_size_is_read_without_decoding() -> None:
    """The primary image's displayed size is known from the container alone."""
    assert read_heif_size(make_heic(640, 480, second_image=True, primary_last=True)) == (640, 480)
    assert read_heif_size(make_heic(640, 480, orientation=8)) == (480, 640)
