"""A clinician's edits of a stored photo: crop, rotate, and blur a rectangle, to make the record version.

Rule 4 of the brief: identifiable features are cropped out or hidden before an image goes into the
record. The clinician sees the photo upright in their Matrix app, so every rectangle is given in percent
of the upright image (left, top, width, height, each 0-100), whatever its pixel size. A rectangle that
runs past the right or bottom edge is clamped to it; a value outside 0-100, or an empty rectangle, is an
`EditError` whose message says what to type instead.

    edits = [parse_edit("rotate", ["90"]), parse_edit("crop", ["10", "0", "80%", "100"])]
    edited = apply_edits(photo_bytes, edits, max_pixels=limits.max_pixels)

`apply_edits` decodes the photo (only JPEG, PNG and WebP, the formats the pipeline stores; the pixel
count is checked against `max_pixels` before anything is decoded), turns it upright from its Exif
orientation first, applies the edits in order (each rectangle is in percent of the image as the
previous edits left it), and encodes a quality-92 JPEG with no Exif and no metadata but its ICC
profile; a PNG with transparency stays a PNG. It is pure and CPU-bound, touches none of Pillow's
process-wide settings, and is meant to run in a worker thread.

How a rectangle becomes pixels: a crop rounds each edge to the nearest pixel (so a 50% crop is half the
width, within one pixel); a blur widens to whole pixels outward, so the hidden area always covers at
least what was asked. Both are at least one pixel wide and high.

How a blur hides: the area is averaged into square blocks (about six across its shorter side), the
blocks are given a Gaussian blur as wide as a block, and the result is scaled back over the area. What
is left is a soft wash of a few dozen average colours: no edges, text or facial features, and no sharp
block grid to "de-pixelate".
"""

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from bot.images.pixel_modes import to_8bit

JPEG_QUALITY = 92
JPEG_SUBSAMPLING = "4:2:0"  # what phones write; the record copy gains nothing from 4:4:4 on a re-encode
EDITABLE_FORMATS = ("JPEG", "PNG", "WEBP")
BLOCKS_ACROSS = 6  # pixel blocks across the shorter side of a blurred rectangle
MIN_BLOCK = 2  # pixels; a blurred area a few pixels across still loses everything
WASH_SCALE = 8  # pixels per block in the small grid that gets the Gaussian blur (its radius too)
ROTATIONS: Mapping[int, Image.Transpose] = {
    90: Image.Transpose.ROTATE_270,  # Pillow turns anticlockwise, clinicians clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}
ROTATE_WORDS: Mapping[str, int] = {
    "right": 90,
    "clockwise": 90,
    "left": 270,
    "anticlockwise": 270,
    "counterclockwise": 270,
}
# ICC colour-space signature (header bytes 16-19) that fits each output mode; another profile is dropped.
ICC_COLOUR_SPACES: Mapping[str, bytes] = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}

CROP_USAGE = "a crop needs four numbers: left top width height, in percent of the photo as you see it (e.g. crop 10 20 50 40)"
BLUR_USAGE = "a blur needs four numbers: left top width height, in percent of the photo as you see it (e.g. blur 60 5 30 25)"
ROTATE_USAGE = "rotate needs 90, 180 or 270 (degrees clockwise), or left or right"
KINDS_USAGE = "the edits are crop, rotate and blur"
# ASCII digits only: `float()` would also take Arabic-Indic or full-width digits, "nan" and "inf".
_PERCENT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)%?")
_DEGREES = re.compile(r"[+-]?[0-9]{1,4}°?")
_ECHO_LIMIT = 20


class EditError(Exception):
    """An edit that cannot be made; `message` is written for the clinician who asked for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Crop:
    """Keep only this rectangle, in percent of the upright image."""

    left: float
    top: float
    width: float
    height: float

    def __post_init__(self) -> None:
        _check_rectangle(self.left, self.top, self.width, self.height)


@dataclass(frozen=True)
class Rotate:
    """Turn the image clockwise by 90, 180 or 270 degrees."""

    degrees: int

    def __post_init__(self) -> None:
        if self.degrees not in ROTATIONS:
            raise EditError(ROTATE_USAGE)


@dataclass(frozen=True)
class Blur:
    """Make this rectangle (percent of the upright image) unrecognisable."""

    left: float
    top: float
    width: float
    height: float

    def __post_init__(self) -> None:
        _check_rectangle(self.left, self.top, self.width, self.height)


Edit = Crop | Rotate | Blur


@dataclass(frozen=True)
class EditedImage:
    """The edited photo, encoded: JPEG, or PNG when the source was a PNG with transparency."""

    data: bytes
    mime: str
    width: int
    height: int


def parse_edit(kind: str, args: Sequence[str]) -> Edit:
    """The edit a clinician typed, e.g. ("crop", ["10", "20%", "50", "12.5"]); `EditError` saying why not."""
    name = kind.strip().lower()
    if name == "rotate":
        return _parse_rotate(args)
    if name in ("crop", "blur"):
        usage = CROP_USAGE if name == "crop" else BLUR_USAGE
        if len(args) != 4:
            raise EditError(usage)
        left, top, width, height = (_parse_percent(arg, usage) for arg in args)
        return Crop(left, top, width, height) if name == "crop" else Blur(left, top, width, height)
    raise EditError(f"{_echo(kind)} is not an edit: {KINDS_USAGE}")


def apply_edits(data: bytes, edits: Sequence[Edit], *, max_pixels: int) -> EditedImage:
    """`data` decoded, turned upright, edited in order and re-encoded without metadata.

    `EditError` if the photo is not a readable JPEG, PNG or WebP of at most `max_pixels` pixels.
    """
    image = _decode_upright(data, max_pixels)
    try:
        icc = image.info.get("icc_profile")
        keep_alpha = image.format == "PNG" and image.has_transparency_data
        image = _replace(image, _working_mode(image, keep_alpha=keep_alpha))  # reads "transparency"
        image.info.clear()  # nothing from the source may reach the encoder by default
        for edit in edits:
            image = _replace(image, _apply(image, edit))
        return _encode(image, icc if isinstance(icc, bytes) else None, as_png=keep_alpha)
    finally:
        image.close()


def _check_rectangle(left: float, top: float, width: float, height: float) -> None:
    for name, value in (("left", left), ("top", top), ("width", width), ("height", height)):
        if not (math.isfinite(value) and 0 <= value <= 100):
            raise EditError(f"{name} must be between 0 and 100 (percent), not {value:g}")
    if width == 0 or height == 0:
        raise EditError("width and height must be more than 0%: that rectangle is empty")
    if left == 100 or top == 100:
        raise EditError("left and top must be less than 100%: that rectangle starts past the edge")


def _parse_percent(arg: str, usage: str) -> float:
    text = arg.strip()
    if not _PERCENT.fullmatch(text):
        hint = " (separate the numbers with spaces, and write decimals with a dot)" if "," in text else ""
        raise EditError(f"{_echo(arg)} is not a number{hint}; {usage}")
    return float(text.removesuffix("%"))


def _parse_rotate(args: Sequence[str]) -> Rotate:
    if len(args) != 1:
        raise EditError(ROTATE_USAGE)
    text = args[0].strip().lower()
    if text in ROTATE_WORDS:
        return Rotate(ROTATE_WORDS[text])
    if not _DEGREES.fullmatch(text):
        raise EditError(ROTATE_USAGE)
    degrees = int(text.removesuffix("°"))
    return Rotate(degrees % 360 if degrees % 90 == 0 else degrees)


def _echo(arg: str) -> str:
    """A clinician's input quoted back, shortened so a pasted paragraph does not fill the reply."""
    short = arg if len(arg) <= _ECHO_LIMIT else arg[:_ECHO_LIMIT] + "..."
    return f'"{short}"'


def _decode_upright(data: bytes, max_pixels: int) -> Image.Image:
    """The decoded image with its Exif orientation applied; the pixel count is checked before decoding."""
    image = _open_checked(data, max_pixels)
    try:
        try:
            ImageOps.exif_transpose(image, in_place=True)  # decodes, then turns without a copy
        except (OSError, SyntaxError, ValueError) as exc:
            raise EditError("the stored photo is damaged and could not be decoded") from exc
    except BaseException:
        image.close()
        raise
    return image


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """`data` opened (its header read, nothing decoded) as JPEG, PNG or WebP within `max_pixels`."""
    try:
        image = Image.open(io.BytesIO(data), formats=EDITABLE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(max_pixels) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise EditError("the stored photo could not be read as a JPEG, PNG or WebP image") from exc
    if image.width * image.height > max_pixels:
        image.close()
        raise _too_many_pixels(max_pixels)
    return image


def _too_many_pixels(max_pixels: int) -> EditError:
    return EditError(
        f"the photo has more than {max_pixels:,} pixels, the practice's limit, so it cannot be edited"
    )


def _working_mode(image: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """`image` in a mode every edit and the encoder accept: RGBA or LA to keep transparency, else RGB or L."""
    if not keep_alpha:
        return to_8bit(image)
    if image.mode in ("RGBA", "LA"):
        return image
    return image.convert("RGBA")


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """`new`, with `old` closed if it is another image, so no stale copy of the pixels stays alive."""
    if new is not old:
        old.close()
    return new


def _apply(image: Image.Image, edit: Edit) -> Image.Image:
    """`image` after one edit: a new image for a crop or rotation, the same one (changed) for a blur."""
    if isinstance(edit, Crop):
        return image.crop(_rounded_box(edit, image.size))
    if isinstance(edit, Rotate):
        return image.transpose(ROTATIONS[edit.degrees])
    _blur_region(image, _covering_box(edit, image.size))
    return image


def _rounded_box(rect: Crop | Blur, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The rectangle in pixels, each edge rounded to the nearest pixel, at least 1 x 1."""
    left, right = _rounded_span(rect.left, rect.width, size[0])
    top, bottom = _rounded_span(rect.top, rect.height, size[1])
    return left, top, right, bottom


def _rounded_span(start: float, length: float, pixels: int) -> tuple[int, int]:
    first = min(round(start * pixels / 100), pixels - 1)
    last = round(min(start + length, 100) * pixels / 100)
    return first, max(last, first + 1)


def _covering_box(rect: Crop | Blur, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The rectangle in pixels, widened outward to whole pixels, at least 1 x 1."""
    left, right = _covering_span(rect.left, rect.width, size[0])
    top, bottom = _covering_span(rect.top, rect.height, size[1])
    return left, top, right, bottom


def _covering_span(start: float, length: float, pixels: int) -> tuple[int, int]:
    first = min(math.floor(start * pixels / 100), pixels - 1)
    last = min(math.ceil(min(start + length, 100) * pixels / 100), pixels)
    return first, max(last, first + 1)


def _blur_region(image: Image.Image, box: tuple[int, int, int, int]) -> None:
    """Replace the pixels in `box` by a soft wash of block averages (see the module docstring).

    The averages are taken straight from `image` and the Gaussian blur runs on a small grid of
    WASH_SCALE pixels per block, so only one region-sized image is ever made besides `image` itself.
    """
    width, height = box[2] - box[0], box[3] - box[1]
    block = max(MIN_BLOCK, math.ceil(min(width, height) / BLOCKS_ACROSS))
    blocks = (math.ceil(width / block), math.ceil(height / block))
    with image.resize(blocks, Image.Resampling.BOX, box=box) as averages:
        grid = averages.resize((blocks[0] * WASH_SCALE, blocks[1] * WASH_SCALE), Image.Resampling.NEAREST)
    with grid, grid.filter(ImageFilter.GaussianBlur(WASH_SCALE)) as small_wash:
        wash = small_wash.resize((width, height), Image.Resampling.BILINEAR)
    with wash:
        image.paste(wash, box[:2])


def _encode(image: Image.Image, icc: bytes | None, *, as_png: bool) -> EditedImage:
    """`image` as PNG or a quality-92 JPEG, with its ICC profile if it fits the pixels, and nothing else."""
    if icc is not None and icc[16:20] != ICC_COLOUR_SPACES.get(image.mode):
        icc = None  # a CMYK profile describes nothing in the RGB pixels the JPEG now holds
    out = io.BytesIO()
    if as_png:
        image.save(out, format="PNG", icc_profile=icc)
        mime = "image/png"
    else:
        image.save(
            out,
            format="JPEG",
            quality=JPEG_QUALITY,
            subsampling=JPEG_SUBSAMPLING,
            icc_profile=icc,
            exif=b"",
            comment=b"",
        )
        mime = "image/jpeg"
    return EditedImage(out.getvalue(), mime, image.width, image.height)
