"""Decode a cleaned photo completely (the proof that it is intact) into a small greyscale preview.

Pillow is used without touching its process-wide settings, because this runs in worker threads:
`formats=` limits which decoder may run, truncated files fail (LOAD_TRUNCATED_IMAGES stays False), and
the pixel limit is ours. The size Pillow reads from the header must equal the size the pipeline already
checked, so a file cannot pass our check with one header and be decoded with another. The check comes
before `load()`, so nothing is allocated for a file that lies. Pillow's own DecompressionBombWarning is
not turned into an error with `warnings.catch_warnings()`: that swaps the interpreter-wide filter list
and is not thread-safe (two workers can leave each other's filters behind). It can only fire above
Pillow's default of ~89 megapixels, far beyond our limit, and is mapped to TOO_MANY_PIXELS if a test
run raises it as an error.
"""

import io
from collections.abc import Mapping

from PIL import Image

from bot.images.model import Cleaned, ImageFormat, PhotoRejected, RejectReason
from bot.images.pixel_modes import to_luma

# Long enough that a blur of a few pixels on a 12-megapixel photo still shows (at 500 px a radius-8 blur
# on a 4000 x 3000 photo is invisible); a 4000 x 3000 JPEG is then decoded at 1/4 scale, which costs
# about 9 ms more than 1/8 because reading the entropy-coded data dominates either way.
PREVIEW_LONG_SIDE = 1000
PILLOW_FORMATS: Mapping[ImageFormat, str] = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.WEBP: "WEBP",
}


def decode_preview(cleaned: Cleaned) -> Image.Image:
    """All of `cleaned.data` decoded, as an "L" image at most PREVIEW_LONG_SIDE px on its long side.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (`draft`): every byte of entropy-coded data is
    still read, but the full-resolution pixels are never made.
    """
    expected = (cleaned.width, cleaned.height)
    try:
        with Image.open(io.BytesIO(cleaned.data), formats=[PILLOW_FORMATS[cleaned.format]]) as image:
            if image.size != expected:
                raise PhotoRejected(RejectReason.CORRUPT)
            target = preview_size(expected)
            if cleaned.format is ImageFormat.JPEG:
                image.draft("L", target)
            image.load()
            return to_luma(_shrink(image, target)).resize(target, Image.Resampling.BOX)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRejected(RejectReason.TOO_MANY_PIXELS) from exc


def _shrink(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """`image` reduced by a whole factor, in its own mode, to no less than `target`.

    Converting a 50-megapixel PNG to greyscale first would allocate hundreds of megabytes more.
    """
    factor = min(image.width // target[0], image.height // target[1])
    if factor < 2 or image.mode in ("1", "P", "I;16", "I;16L", "I;16B", "I;16N"):
        return image
    return image.reduce(factor)


def preview_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size` scaled down (never up) so its long side is at most PREVIEW_LONG_SIDE."""
    width, height = size
    scale = PREVIEW_LONG_SIDE / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))
