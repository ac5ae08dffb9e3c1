"""Read the Orientation tag from an Exif block, and write an Exif block holding nothing else.

The orientation is the one piece of Exif worth keeping: without it a portrait photo shows sideways.
Everything else in Exif (GPS, device, times, maker notes, the IFD1 thumbnail) is dropped by writing a
fresh block rather than editing the old one, so nothing can survive by accident.
"""

from typing import Literal

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
_SHORT = 3
_UPRIGHT = 1


def read_orientation(exif: bytes) -> int:
    """The Orientation (1-8) in an APP1 Exif payload; 1 (upright) when absent or unreadable."""
    if not exif.startswith(b"Exif\x00"):
        return _UPRIGHT
    tiff = exif[6:]
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return _UPRIGHT
    ifd0 = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd0 : ifd0 + 2], order)
    for index in range(count):
        entry = tiff[ifd0 + 2 + 12 * index : ifd0 + 14 + 12 * index]
        if len(entry) < 12:
            return _UPRIGHT
        if int.from_bytes(entry[0:2], order) != ORIENTATION_TAG:
            continue
        if int.from_bytes(entry[2:4], order) != _SHORT:
            return _UPRIGHT
        value = int.from_bytes(entry[8:10], order)
        return value if 1 <= value <= 8 else _UPRIGHT
    return _UPRIGHT


def orientation_only_exif(orientation: int) -> bytes:
    """An APP1 Exif payload with one tag, Orientation (big-endian TIFF, IFD0 only, no IFD1)."""
    if not 1 <= orientation <= 8:
        raise ValueError("orientation must be 1-8")
    tiff_header = b"MM\x00*" + (8).to_bytes(4, "big")
    entry = (
        ORIENTATION_TAG.to_bytes(2, "big")
        + _SHORT.to_bytes(2, "big")
        + (1).to_bytes(4, "big")
        + orientation.to_bytes(2, "big")
        + b"\x00\x00"
    )
    no_next_ifd = (0).to_bytes(4, "big")
    return EXIF_HEADER + tiff_header + (1).to_bytes(2, "big") + entry + no_next_ifd
