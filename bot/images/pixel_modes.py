"""Bring any decoded image to 8-bit greyscale or RGB, the modes the quality check and JPEG accept."""

from PIL import Image

_HIGH_BIT_DEPTH_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_WHITE = (255, 255, 255, 255)


def to_8bit(image: Image.Image) -> Image.Image:
    """`image` as "L" or "RGB": 16-bit greyscale scaled down, transparency flattened onto white."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    # Everything else (P, PA, LA, RGBA, RGBa, La...) may carry transparency: show it as a white background.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_luma(image: Image.Image) -> Image.Image:
    """`image` as 8-bit greyscale ("L", ITU-R 601 luma)."""
    return to_8bit(image).convert("L")
