"""Check and clean one photo: a short pipeline of small pure functions, bytes in, bytes out.

    check_byte_size -> sniff_format -> read_*_size -> check_pixel_count -> strip_* / convert_heif
        -> decode_preview -> assess_quality

Each step is a plain function that returns its result or raises `PhotoRejected` (as structlog's
processors raise DropEvent); `process_photo` turns that into a `Rejected` value, and turns anything
unexpected a hostile file provokes in a parser or decoder (OSError, SyntaxError, ValueError,
struct.error, MemoryError...) into `Rejected(CORRUPT)`. It never raises, does no I/O, keeps no state
and logs nothing, so it is safe to run in a pool of worker threads.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.images.decode_check import decode_preview
from bot.images.heif_convert import convert_heif, read_heif_size
from bot.images.jpeg_segments import read_jpeg_size
from bot.images.jpeg_strip import strip_jpeg
from bot.images.model import (
    FORMAT_LABELS,
    MIME_TYPES,
    Cleaned,
    CleanPhoto,
    ImageFormat,
    Limits,
    PhotoRejected,
    QualityIssue,
    QualityReport,
    Rejected,
    RejectReason,
)
from bot.images.png_strip import read_png_size, strip_png
from bot.images.quality import assess_quality
from bot.images.size_limits import check_byte_size, check_pixel_count
from bot.images.sniff import sniff_format
from bot.images.webp_strip import read_webp_size, strip_webp

__all__ = [
    "CleanPhoto",
    "ImageFormat",
    "Limits",
    "QualityIssue",
    "QualityReport",
    "RejectReason",
    "Rejected",
    "process_photo",
]


@dataclass(frozen=True)
class FormatSteps:
    """How one accepted format is handled: read its size from the header, then clean it."""

    read_size: Callable[[bytes], tuple[int, int]]
    clean: Callable[[bytes], Cleaned]


FORMAT_STEPS: Mapping[ImageFormat, FormatSteps] = {
    ImageFormat.JPEG: FormatSteps(read_jpeg_size, strip_jpeg),
    ImageFormat.PNG: FormatSteps(read_png_size, strip_png),
    ImageFormat.WEBP: FormatSteps(read_webp_size, strip_webp),
    ImageFormat.HEIF: FormatSteps(read_heif_size, convert_heif),
}


def process_photo(data: bytes, limits: Limits) -> CleanPhoto | Rejected:
    """The photo without metadata, verified and quality-checked, or why it was refused. Never raises."""
    source: ImageFormat | None = None
    try:
        check_byte_size(data, limits)
        source = sniff_format(data)
        return _clean_and_check(data, source, limits)
    except PhotoRejected as rejected:
        return Rejected(rejected.reason, rejected.detected or _label(source))
    except Exception:  # noqa: BLE001 (hostile input may make any parser or decoder raise anything)
        return Rejected(RejectReason.CORRUPT, _label(source))


def _clean_and_check(data: bytes, source: ImageFormat, limits: Limits) -> CleanPhoto:
    steps = FORMAT_STEPS[source]
    check_pixel_count(steps.read_size(data), limits)
    cleaned = steps.clean(data)
    check_pixel_count((cleaned.width, cleaned.height), limits)  # a decoded HEIF may differ from its header
    quality = assess_quality(decode_preview(cleaned), cleaned.width, cleaned.height, limits)
    return CleanPhoto(
        data=cleaned.data,
        mime=MIME_TYPES[cleaned.format],
        format=cleaned.format,
        source_format=source,
        width=cleaned.width,
        height=cleaned.height,
        converted=cleaned.converted,
        quality=quality,
    )


def _label(source: ImageFormat | None) -> str | None:
    return None if source is None else FORMAT_LABELS[source]
