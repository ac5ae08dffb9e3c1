"""The photo pipeline: sniff, size-check, strip metadata (or convert HEIC), verify, quality-check."""

from bot.images.pipeline import (
    CleanPhoto,
    ImageFormat,
    Limits,
    QualityIssue,
    QualityReport,
    Rejected,
    RejectReason,
    process_photo,
)

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
