"""The photo pipeline's vocabulary: what goes in, what comes out, and why a photo was refused.

Everything here is immutable. `PhotoRejected` is how a step stops the pipeline (like structlog's
`DropEvent`); `process_photo` turns it into a `Rejected` value, so callers never see an exception.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class ImageFormat(Enum):
    """An image format the practice accepts, identified by its magic bytes."""

    JPEG = "jpeg"
    PNG = "png"
    HEIF = "heif"
    WEBP = "webp"


MIME_TYPES: Mapping[ImageFormat, str] = {
    ImageFormat.JPEG: "image/jpeg",
    ImageFormat.PNG: "image/png",
    ImageFormat.HEIF: "image/heif",
    ImageFormat.WEBP: "image/webp",
}

# How a format is named to a patient ("your HEIC photo...").
FORMAT_LABELS: Mapping[ImageFormat, str] = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.HEIF: "HEIC",
    ImageFormat.WEBP: "WebP",
}


@dataclass(frozen=True)
class Limits:
    """What a practice accepts: file size in bytes, pixel count, and the shortest useful side."""

    max_bytes: int = 20_000_000
    max_pixels: int = 50_000_000
    min_side: int = 640


class QualityIssue(Enum):
    """Something a patient can fix by taking the photo again."""

    BLURRED = "blurred"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    TOO_SMALL = "too_small"


@dataclass(frozen=True)
class QualityReport:
    """Measured quality: variance of the Laplacian and mean luminance (0-255) on a ~1000 px preview."""

    issues: tuple[QualityIssue, ...]
    sharpness: float
    brightness: float
    width: int
    height: int


@dataclass(frozen=True)
class CleanPhoto:
    """A photo with every metadata block removed, verified to decode.

    `format` is the format of `data`; `source_format` what the patient sent (HEIF becomes JPEG, with
    `converted` set). `width` and `height` are the pixel dimensions stored in `data`, as a decoder reports
    them before applying a JPEG's orientation tag (the only metadata kept besides the colour profile).
    """

    data: bytes
    mime: str
    format: ImageFormat
    source_format: ImageFormat
    width: int
    height: int
    converted: bool
    quality: QualityReport


class RejectReason(Enum):
    """Why a photo cannot be accepted at all."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_TYPE = "unsupported_type"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class Rejected:
    """A refused photo; `detected` names what it looked like ("PDF", "MP4 video", "JPEG"), if known."""

    reason: RejectReason
    detected: str | None


@dataclass(frozen=True)
class Cleaned:
    """The output of a format's cleaning step, before it is verified and measured."""

    data: bytes
    format: ImageFormat
    width: int
    height: int
    converted: bool


class PhotoRejected(Exception):  # noqa: N818 (a signal that stops the pipeline, like structlog's DropEvent)
    """Raised by a pipeline step to refuse the photo; `process_photo` returns it as a `Rejected`."""

    def __init__(self, reason: RejectReason, detected: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detected = detected
