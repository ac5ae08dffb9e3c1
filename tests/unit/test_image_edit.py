"""A clinician's edits of a stored photo: crop, rotate and blur, in percent of the photo as they see it."""

import io
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageOps, ImageStat

from bot.images.edit import Blur, Crop, Edit, EditedImage, EditError, Rotate, apply_edits, parse_edit
from tests.unit.image_factory import (
    SECRET_MARKERS,
    TEXT_MARKER,
    camera_exif,
    encode_jpeg,
    make_jpeg,
    make_png,
    make_webp,
    png_claiming_size,
    srgb_icc_profile,
)

MAX_PIXELS = 50_000_000
RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)
WHITE = (255, 255, 255)
# No example database: the tests leave no .hypothesis directory behind in the repository.
PROPERTY = settings(database=None, max_examples=100, deadline=None)


def _encode(image: Image.Image, format_name: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format_name)
    return out.getvalue()


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def _format(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data)) as image:
        return image.format


def _edit(data: bytes, *edits: Edit) -> EditedImage:
    return apply_edits(data, edits, max_pixels=MAX_PIXELS)


def _halves(width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """An RGB picture whose left half is one colour and right half another."""
    image = Image.new("RGB", (width, height), left)
    image.paste(right, (width // 2, 0, width, height))
    return image


def _with_corner_mark(width: int, height: int) -> Image.Image:
    """A white picture with a red square in its top-left corner."""
    image = Image.new("RGB", (width, height), WHITE)
    image.paste(RED, (0, 0, width // 5, height // 5))
    return image


def _checkerboard(width: int, height: int, square: int, *, inverted: bool = False) -> Image.Image:
    """Black and white squares of `square` px: the finest detail a photo can have."""
    pixels = bytes(
        255 if ((x // square) + (y // square) + inverted) % 2 else 0
        for y in range(height)
        for x in range(width)
    )
    return Image.frombytes("L", (width, height), pixels).convert("RGB")


def _stripes(width: int, height: int, *, vertical: bool) -> Image.Image:
    pixels = bytes(
        255 if ((x if vertical else y) // 3) % 2 else 0 for y in range(height) for x in range(width)
    )
    return Image.frombytes("L", (width, height), pixels).convert("RGB")


def _pixel(image: Image.Image, at: tuple[int, int]) -> tuple[int, ...]:
    value = image.convert("RGB").getpixel(at)
    assert isinstance(value, tuple)
    return tuple(int(channel) for channel in value)


def _mean_colour(image: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image.convert("RGB")).mean)


def _close_to(colour: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 12) -> bool:
    return all(abs(got - want) <= tolerance for got, want in zip(colour, expected, strict=True))


# --- parsing what a clinician types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "args", "expected"),
    [
        ("crop", ["10", "20%", "12.5", "50"], Crop(10, 20, 12.5, 50)),
        ("Crop", [" 0 ", "0", "100%", "100"], Crop(0, 0, 100, 100)),
        ("blur", ["60", "5", ".5", "25."], Blur(60, 5, 0.5, 25)),
        ("rotate", ["90"], Rotate(90)),
        ("rotate", ["180°"], Rotate(180)),
        ("rotate", ["-90"], Rotate(270)),
        ("rotate", ["Left"], Rotate(270)),
        ("rotate", ["right"], Rotate(90)),
    ],
)
def test_clinician_input_is_understood(kind: str, args: list[str], expected: Edit) -> None:
    """Plain numbers, numbers with %, decimals, and left/right or negative rotations are all understood."""
    assert parse_edit(kind, args) == expected


@pytest.mark.parametrize(
    ("kind", "args", "hint"),
    [
        ("crop", ["10", "20", "30"], "a crop needs four numbers: left top width height, in percent"),
        ("crop", ["10", "20", "30", "40", "50"], "a crop needs four numbers"),
        ("blur", [], "a blur needs four numbers"),
        ("crop", ["ten", "20", "30", "40"], '"ten" is not a number; a crop needs four numbers'),
        ("crop", ["10", "2O", "30", "40"], '"2O" is not a number'),
        ("crop", ["nan", "0", "30", "40"], '"nan" is not a number'),
        ("crop", ["inf", "0", "30", "40"], '"inf" is not a number'),
        ("crop", ["1e1", "0", "30", "40"], '"1e1" is not a number'),
        ("crop", ["\u0661\u0660", "0", "30", "40"], "is not a number"),  # Arabic-Indic digits
        ("crop", ["12,5", "0", "30", "40"], "write decimals with a dot"),
        ("blur", ["-5", "0", "30", "40"], "left must be between 0 and 100 (percent), not -5"),
        ("crop", ["0", "-0.5", "30", "40"], "top must be between 0 and 100 (percent), not -0.5"),
        ("crop", ["0", "0", "150", "40"], "width must be between 0 and 100 (percent), not 150"),
        ("blur", ["0", "0", "30", "100.5%"], "height must be between 0 and 100 (percent), not 100.5"),
        ("crop", ["10", "10", "0", "40"], "that rectangle is empty"),
        ("blur", ["10", "10", "40", "0%"], "that rectangle is empty"),
        ("crop", ["100", "0", "20", "40"], "starts past the edge"),
        ("rotate", [], "rotate needs 90, 180 or 270 (degrees clockwise)"),
        ("rotate", ["90", "180"], "rotate needs 90, 180 or 270"),
        ("rotate", ["45"], "rotate needs 90, 180 or 270"),
        ("rotate", ["0"], "rotate needs 90, 180 or 270"),
        ("rotate", ["upside"], "rotate needs 90, 180 or 270"),
        ("resize", ["50"], '"resize" is not an edit: the edits are crop, rotate and blur'),
    ],
)
def test_unusable_input_gets_a_message_saying_what_to_type(kind: str, args: list[str], hint: str) -> None:
    """Wrong counts, non-numbers, values outside 0-100 and empty rectangles are refused with a clear reason."""
    with pytest.raises(EditError) as refused:
        parse_edit(kind, args)
    assert hint in refused.value.message
    assert str(refused.value) == refused.value.message


def test_long_input_is_quoted_back_shortened() -> None:
    """A pasted paragraph in place of a number is quoted back in at most twenty characters."""
    with pytest.raises(EditError) as refused:
        parse_edit("crop", ["x" * 500, "0", "10", "10"])
    assert '"' + "x" * 20 + '..."' in refused.value.message
    assert "x" * 21 not in refused.value.message


@pytest.mark.parametrize(
    "make",
    [
        lambda: Crop(-1, 0, 10, 10),
        lambda: Blur(0, 0, 0, 10),
        lambda: Crop(0, 0, float("nan"), 10),
        lambda: Blur(0, 100, 10, 10),
        lambda: Rotate(45),
    ],
    ids=["negative", "empty", "nan", "past-edge", "45-degrees"],
)
def test_an_invalid_edit_cannot_be_built_in_code_either(make: Callable[[], Edit]) -> None:
    """An edit built directly (for instance from a stored record) is checked just like a typed one."""
    with pytest.raises(EditError):
        make()


@PROPERTY
@given(
    st.floats(0, 100, exclude_max=True),
    st.floats(0, 100, exclude_max=True),
    st.floats(0, 100, exclude_min=True),
    st.floats(0, 100, exclude_min=True),
)
def test_any_valid_rectangle_parses_to_the_same_numbers(
    left: float, top: float, width: float, height: float
) -> None:
    """Every valid rectangle, written out in plain decimals with a % sign, is read back exactly."""
    values = (left, top, width, height)
    assume(all("e" not in repr(value) for value in values))  # 1e-05 is not how anyone writes a percentage
    assert parse_edit("blur", [f"{value!r}%" for value in values]) == Blur(*values)


# --- crop -----------------------------------------------------------------------------------------------


def test_half_width_crop_gives_half_the_width() -> None:
    """A crop 50% wide and 100% high keeps half the width and all the height, within one pixel."""
    edited = _edit(make_jpeg(301, 200), Crop(25, 0, 50, 100))
    assert abs(edited.width - 150.5) <= 1
    assert edited.height == 200
    assert _decode(edited.data).size == (edited.width, edited.height)


def test_crop_keeps_the_chosen_part() -> None:
    """Cropping to the right half of a red-and-blue picture leaves only blue."""
    edited = _edit(_encode(_halves(200, 100, RED, BLUE), "PNG"), Crop(50, 0, 50, 100))
    assert _close_to(_mean_colour(_decode(edited.data)), BLUE)


def test_crop_running_past_the_edge_stops_at_the_edge() -> None:
    """A crop from 80% that is 50% wide keeps the last 20% of the width rather than failing."""
    edited = _edit(make_jpeg(200, 100), Crop(80, 90, 50, 50))
    assert (edited.width, edited.height) == (40, 10)


SOURCE_97_X_61 = make_jpeg(97, 61)


@PROPERTY
@given(
    st.floats(0, 100, exclude_max=True),
    st.floats(0, 100, exclude_max=True),
    st.floats(0, 100, exclude_min=True),
    st.floats(0, 100, exclude_min=True),
)
def test_any_valid_crop_has_the_expected_size(left: float, top: float, width: float, height: float) -> None:
    """Every valid crop rectangle gives an image of its size in pixels (clamped to the edges), within 1 px."""
    edited = _edit(SOURCE_97_X_61, Crop(left, top, width, height))
    expected_width = (min(left + width, 100) - left) * 97 / 100
    expected_height = (min(top + height, 100) - top) * 61 / 100
    assert edited.width >= 1 and abs(edited.width - expected_width) <= 1
    assert edited.height >= 1 and abs(edited.height - expected_height) <= 1


# --- rotate ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("degrees", "size", "corner"),
    [(90, (200, 300), "top-right"), (180, (300, 200), "bottom-right"), (270, (200, 300), "bottom-left")],
)
def test_rotation_turns_the_picture_clockwise(degrees: int, size: tuple[int, int], corner: str) -> None:
    """Rotating turns clockwise: a mark in the top-left corner moves to where the clinician expects it."""
    edited = _edit(_encode(_with_corner_mark(300, 200), "PNG"), Rotate(degrees))
    assert (edited.width, edited.height) == size
    image = _decode(edited.data)
    width, height = image.size
    corners = {
        "top-left": (5, 5),
        "top-right": (width - 5, 5),
        "bottom-right": (width - 5, height - 5),
        "bottom-left": (5, height - 5),
    }
    red_corners = [name for name, at in corners.items() if _close_to(_pixel(image, at), RED, 40)]
    assert red_corners == [corner]


def test_edits_apply_in_the_order_given() -> None:
    """Cropping the left half then rotating differs from rotating then cropping the left half."""
    source = make_jpeg(300, 200)
    crop_first = _edit(source, Crop(0, 0, 50, 100), Rotate(90))
    rotate_first = _edit(source, Rotate(90), Crop(0, 0, 50, 100))
    assert (crop_first.width, crop_first.height) == (200, 150)
    assert (rotate_first.width, rotate_first.height) == (100, 300)


# --- the photo as the clinician sees it -----------------------------------------------------------------


def _sideways_photo() -> bytes:
    """A JPEG stored sideways with Exif orientation 6: shown upright, its left half is red, its right blue."""
    upright = _halves(200, 100, RED, BLUE)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone held upright would store
    data = encode_jpeg(stored, quality=95, exif=camera_exif(orientation=6).tobytes())
    with Image.open(io.BytesIO(data)) as check:
        assert check.size == (100, 200)
        assert ImageOps.exif_transpose(check).size == (200, 100)
    return data


def test_rectangles_are_in_upright_coordinates() -> None:
    """On a photo stored sideways with an orientation tag, "the left half" is the left half as seen: red."""
    edited = _edit(_sideways_photo(), Crop(0, 0, 50, 100))
    assert (edited.width, edited.height) == (100, 100)
    assert _close_to(_mean_colour(_decode(edited.data)), RED)


def test_unedited_output_is_stored_upright_without_an_orientation_tag() -> None:
    """The record version is upright in its pixels, so every viewer shows it the same way."""
    edited = _edit(_sideways_photo())
    image = _decode(edited.data)
    assert image.size == (200, 100)
    assert _close_to(_mean_colour(image.crop((0, 0, 100, 100))), RED)
    assert _close_to(_mean_colour(image.crop((100, 0, 200, 100))), BLUE)


# --- blur -----------------------------------------------------------------------------------------------

BLUR_BOX = (100, 70, 300, 210)  # Blur(25, 25, 50, 50) of a 400 x 280 picture, in pixels


def test_blur_destroys_fine_detail_inside_the_rectangle() -> None:
    """A checkerboard inside the blurred rectangle becomes a flat grey; its contrast is gone."""
    source = _checkerboard(400, 280, 4)
    edited = _decode(_edit(_encode(source, "PNG"), Blur(25, 25, 50, 50)).data).convert("L")
    before = ImageStat.Stat(source.convert("L").crop(BLUR_BOX)).stddev[0]
    after = ImageStat.Stat(edited.crop(BLUR_BOX)).stddev[0]
    assert before > 120
    assert after < 5


def test_blurred_area_no_longer_shows_what_was_there() -> None:
    """Four different fine patterns in the rectangle blur to pictures that cannot be told apart."""
    patterns = [
        _checkerboard(400, 280, 4),
        _checkerboard(400, 280, 4, inverted=True),
        _stripes(400, 280, vertical=True),
        _stripes(400, 280, vertical=False),
    ]
    blurred = [
        _decode(_edit(_encode(pattern, "PNG"), Blur(25, 25, 50, 50)).data).convert("L").crop(BLUR_BOX)
        for pattern in patterns
    ]
    originals_differ = ImageStat.Stat(ImageChops.difference(patterns[0], patterns[1]).crop(BLUR_BOX)).mean[0]
    assert originals_differ > 200
    for other in blurred[1:]:
        assert ImageStat.Stat(ImageChops.difference(blurred[0], other)).mean[0] < 6


def test_blur_leaves_the_rest_of_a_jpeg_nearly_unchanged() -> None:
    """Outside the blurred rectangle (and an 8 px margin for JPEG blocks), pixels change by JPEG noise only."""
    source = _checkerboard(400, 280, 4)
    edited = _decode(_edit(_encode(source, "PNG"), Blur(25, 25, 50, 50)).data).convert("L")
    difference = ImageChops.difference(source.convert("L"), edited)
    outside = Image.new("L", source.size, 255)
    outside.paste(0, (BLUR_BOX[0] - 8, BLUR_BOX[1] - 8, BLUR_BOX[2] + 8, BLUR_BOX[3] + 8))
    stats = ImageStat.Stat(difference, outside)
    assert stats.mean[0] < 2
    assert stats.extrema[0][1] < 12


def test_blur_of_a_transparent_png_leaves_every_other_pixel_identical() -> None:
    """On a PNG with transparency, kept lossless, not one pixel outside the blurred rectangle changes."""
    source = _checkerboard(400, 280, 4).convert("RGBA")
    source.putpixel((0, 0), (0, 0, 0, 0))
    edited = _edit(_encode(source, "PNG"), Blur(25, 25, 50, 50))
    result = _decode(edited.data)
    assert result.mode == "RGBA"
    outside = Image.new("L", source.size, 255)
    outside.paste(0, BLUR_BOX)
    changed = ImageChops.difference(source, result).convert("L").point(lambda value: 255 if value else 0)
    assert ImageStat.Stat(changed, outside).sum[0] == 0
    assert ImageStat.Stat(result.convert("L").crop(BLUR_BOX)).stddev[0] < 5


def test_blur_covers_at_least_the_rectangle_asked_for() -> None:
    """A blur whose edges fall between pixels hides the partly covered pixels too."""
    source = _checkerboard(400, 280, 1)
    edited = _decode(_edit(_encode(source, "PNG"), Blur(10.1, 10.1, 20.2, 20.2)).data).convert("L")
    # 10.1% of 400 is 40.4 and 30.3% is 121.2: columns 40 to 121 are at least partly inside.
    covered = edited.crop((40, 28, 122, 85))
    assert ImageStat.Stat(covered).stddev[0] < 8


# --- what the output holds ------------------------------------------------------------------------------


def test_output_has_no_exif_no_gps_and_no_other_metadata() -> None:
    """Location, device, times, XMP and comments in the source never reach the edited photo."""
    source = make_jpeg(
        320, 240, gps=True, device=True, orientation=6, icc=True, xmp=True, comment=True, photoshop=True
    )
    edited = _edit(source, Crop(10, 10, 80, 80))
    assert [marker for marker in SECRET_MARKERS if marker in edited.data] == []
    assert b"Exif" not in edited.data
    image = _decode(edited.data)
    assert dict(image.getexif()) == {}
    assert "exif" not in image.info and "comment" not in image.info


def test_colour_profile_is_kept() -> None:
    """The photo's ICC colour profile is carried over, so colours look the same in the record."""
    edited = _edit(make_jpeg(320, 240, icc=True), Rotate(180))
    assert _decode(edited.data).info.get("icc_profile") == srgb_icc_profile()


@pytest.mark.parametrize(
    ("source", "mode"),
    [
        (make_jpeg(320, 240), "RGB"),
        (make_jpeg(320, 240, mode="L"), "L"),
        (make_png(320, 240, text=True), "RGB"),
        (make_png(320, 240, mode="I;16"), "L"),
        (make_webp(320, 240, mode="RGBA"), "RGB"),
    ],
    ids=["jpeg", "grey-jpeg", "png", "16-bit-png", "webp-with-alpha"],
)
def test_opaque_results_are_quality_92_jpegs(source: bytes, mode: str) -> None:
    """JPEG, opaque PNG and WebP photos come back as JPEGs, greyscale staying greyscale."""
    edited = _edit(source, Crop(0, 0, 50, 50))
    assert edited.mime == "image/jpeg"
    assert TEXT_MARKER not in edited.data
    image = _decode(edited.data)
    assert (_format(edited.data), image.mode, image.size) == ("JPEG", mode, (160, 120))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_png_with_transparency_stays_a_transparent_png(mode: str) -> None:
    """A PNG with transparency comes back as a PNG whose transparent pixels are still transparent."""
    picture = Image.new("RGBA", (200, 100), (*GREEN, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 100, 100))
    source = picture.convert("LA") if mode == "LA" else picture
    if mode == "P":
        source = picture.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        source.info["transparency"] = source.getpixel((0, 0))
    edited = _edit(_encode(source, "PNG"), Crop(0, 0, 100, 100))
    assert edited.mime == "image/png"
    assert _format(edited.data) == "PNG"
    alpha = _decode(edited.data).convert("RGBA").getchannel("A")
    assert alpha.getpixel((10, 10)) == 0
    assert alpha.getpixel((190, 10)) == 255


# --- what is refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [(10_000, 6_000), (30_000, 30_000)],
    ids=["over-practice-limit", "over-pillow-limit"],
)
def test_decompression_bomb_is_refused(width: int, height: int) -> None:
    """A small file whose header claims more pixels than the limit is refused before it is decoded."""
    with pytest.raises(EditError, match="more than 50,000,000 pixels"):
        _edit(png_claiming_size(width, height), Crop(0, 0, 50, 50))


def test_photo_over_a_lower_pixel_limit_is_refused() -> None:
    """A real photo over the pixel limit passed in is refused, whatever edits were asked for."""
    with pytest.raises(EditError, match="more than 100,000 pixels"):
        apply_edits(make_jpeg(400, 300), [], max_pixels=100_000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        _encode(Image.new("RGB", (64, 48)), "GIF"),
        make_jpeg(320, 240)[:3000],
    ],
    ids=["empty", "text", "gif", "truncated-jpeg"],
)
def test_unreadable_photo_is_refused_with_a_message(data: bytes) -> None:
    """Bytes that are not a whole JPEG, PNG or WebP give an EditError, never a Pillow exception."""
    with pytest.raises(EditError, match="stored photo"):
        _edit(data, Rotate(90))
