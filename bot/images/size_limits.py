"""The practice's size limits, checked before any parsing (bytes) and before any decoding (pixels)."""

import io

from PIL import Image

from bot.images.model import Limits, PhotoRejected, RejectReason


def check_byte_size(data: bytes, limits: Limits) -> None:
    """Refuse an empty file, or one over the byte limit, before anything else looks at it."""
    if not data:
        raise PhotoRejected(RejectReason.EMPTY)
    if len(data) > limits.max_bytes:
        raise PhotoRejected(RejectReason.TOO_LARGE)


def check_pixel_count(size: tuple[int, int], limits: Limits) -> None:
    """Refuse a header that claims more pixels than the limit: the decoder would allocate them all."""
    width, height = size
    if width * height > limits.max_pixels:
        raise PhotoRejected(RejectReason.TOO_MANY_PIXELS)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header of an image the pipeline already accepted (no pixels decoded)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size
