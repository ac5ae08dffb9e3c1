"""Steps 4 and 5: the cleaned photo is decoded in full (at reduced scale) and its quality measured."""

from collections.abc import Callable

import pytest
from PIL import Image, ImageFilter

from bot.images.decode_check import PREVIEW_LONG_SIDE, decode_preview, preview_size
from bot.images.jpeg_strip import strip_jpeg
from bot.images.model import (
    Cleaned,
    CleanPhoto,
    ImageFormat,
    Limits,
    PhotoRejected,
    QualityIssue,
    RejectReason,
)
from bot.images.pipeline import process_photo
from bot.images.quality import assess_quality, measure_brightness, measure_sharpness
from tests.unit.image_factory import Look, make_heic, make_jpeg, make_png, make_scene, make_webp

MAKERS: dict[str, Callable[..., bytes]] = {
    "jpeg": make_jpeg,
    "png": make_png,
    "webp": make_webp,
    "heic": make_heic,
}


def _issues(data: bytes, limits: Limits | None = None) -> tuple[QualityIssue, ...]:
    result = process_photo(data, limits or Limits())
    assert isinstance(result, CleanPhoto), result
    return result.quality.issues


@pytest.mark.parametrize("kind", MAKERS)
def test_sharp_well_exposed_photo_passes(kind: str) -> None:
    """A detailed, evenly exposed photo of a good size has no quality issues."""
    assert _issues(MAKERS[kind](look=Look.SHARP)) == ()


@pytest.mark.parametrize("kind", MAKERS)
def test_blurred_photo_is_flagged(kind: str) -> None:
    """A photo with a radius-8 Gaussian blur is flagged as blurred."""
    assert _issues(MAKERS[kind](look=Look.BLURRED)) == (QualityIssue.BLURRED,)


@pytest.mark.parametrize("kind", MAKERS)
def test_dark_photo_is_flagged_as_too_dark_only(kind: str) -> None:
    """A near-black photo is too dark, and is not also called blurred."""
    assert _issues(MAKERS[kind](look=Look.DARK)) == (QualityIssue.TOO_DARK,)


@pytest.mark.parametrize("kind", MAKERS)
def test_bright_photo_is_flagged_as_too_bright(kind: str) -> None:
    """A near-white, blown-out photo is too bright."""
    assert _issues(MAKERS[kind](look=Look.BRIGHT)) == (QualityIssue.TOO_BRIGHT,)


def test_small_photo_is_flagged() -> None:
    """A photo whose shorter side is under the practice's minimum is too small."""
    assert _issues(make_jpeg(900, 600)) == (QualityIssue.TOO_SMALL,)
    assert _issues(make_jpeg(900, 600), Limits(min_side=600)) == ()


def test_blur_on_a_twelve_megapixel_photo_is_still_seen() -> None:
    """A radius-8 blur on a 4000 x 3000 photo is flagged even though the check runs on a preview."""
    assert _issues(make_jpeg(4000, 3000, look=Look.BLURRED)) == (QualityIssue.BLURRED,)


def test_sixteen_bit_greyscale_is_measured_on_its_real_brightness() -> None:
    """A 16-bit greyscale PNG of a normal scene is not mistaken for an overexposed one."""
    assert _issues(make_png(mode="I;16")) == ()


def test_sharpness_orders_sharp_above_blurred() -> None:
    """The sharpness measure is higher for a sharp picture than for the same picture blurred."""
    sharp = make_scene(500, 375).convert("L")
    assert measure_sharpness(sharp) > 10 * measure_sharpness(sharp.filter(ImageFilter.GaussianBlur(3)))


def test_flat_picture_has_no_sharpness_even_at_its_border() -> None:
    """A uniform picture measures zero sharpness: the unfiltered border is not counted as edges."""
    assert measure_sharpness(Image.new("L", (200, 100), 30)) == 0.0


def test_brightness_is_mean_luminance() -> None:
    """Brightness is the mean grey level, 0-255."""
    assert measure_brightness(Image.new("L", (10, 10), 77)) == 77.0


def test_report_carries_the_measurements() -> None:
    """The report gives the photo's size and the measured numbers alongside the issues."""
    report = assess_quality(Image.new("L", (100, 100), 128), 3000, 2000, Limits())
    assert (report.width, report.height, report.brightness, report.sharpness) == (3000, 2000, 128.0, 0.0)
    assert report.issues == (QualityIssue.BLURRED,)


def test_jpeg_preview_is_decoded_at_reduced_scale() -> None:
    """A large JPEG is checked on a preview no longer than the preview size, in greyscale."""
    cleaned = strip_jpeg(make_jpeg(3000, 2000))
    preview = decode_preview(cleaned)
    assert preview.mode == "L"
    assert preview.size == (PREVIEW_LONG_SIDE, round(PREVIEW_LONG_SIDE * 2000 / 3000))


def test_preview_never_enlarges() -> None:
    """A photo smaller than the preview size is measured at its own size."""
    assert preview_size((640, 480)) == (640, 480)
    assert preview_size((4000, 1000)) == (PREVIEW_LONG_SIDE, PREVIEW_LONG_SIDE // 4)


def test_header_that_disagrees_with_the_decoder_is_corrupt() -> None:
    """If Pillow reads a different size than the one checked against the limits, the photo is refused."""
    cleaned = strip_jpeg(make_jpeg(320, 240))
    liar = Cleaned(cleaned.data, ImageFormat.JPEG, 32, 24, converted=False)
    with pytest.raises(PhotoRejected) as refused:
        decode_preview(liar)
    assert refused.value.reason is RejectReason.CORRUPT
