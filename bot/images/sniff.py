"""Say what a file is from its first bytes, never from a declared type or file name.

Only JPEG, PNG, WebP and HEIF are accepted. Other common kinds are named so the patient can be told
kindly what went wrong ("that looks like a PDF").
"""

from bot.images.model import ImageFormat, PhotoRejected, RejectReason

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ISO BMFF brands (ISO/IEC 23008-12) of HEIF still images with HEVC or generic image items.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})

_SIMPLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),
    (b"\x1aE\xdf\xa3", "WebM video"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
    (b"8BPS", "Photoshop document"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
)

_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_UTF8_BOM = b"\xef\xbb\xbf"


def sniff_format(data: bytes) -> ImageFormat:
    """The accepted format `data` is in, or `PhotoRejected(UNSUPPORTED_TYPE)` naming what it is."""
    kind = detect_kind(data)
    if isinstance(kind, ImageFormat):
        return kind
    raise PhotoRejected(RejectReason.UNSUPPORTED_TYPE, kind)


def detect_kind(data: bytes) -> ImageFormat | str | None:
    """An accepted format, the name of another recognised kind of file, or None if unrecognised."""
    if data.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if data.startswith(PNG_SIGNATURE):
        return ImageFormat.PNG
    if data.startswith(b"RIFF") and len(data) >= 12:
        return _riff_kind(data[8:12])
    if data[4:8] == b"ftyp":
        return _iso_bmff_kind(data)
    for magic, name in _SIMPLE_MAGIC:
        if data.startswith(magic):
            return name
    if _looks_like_bmp(data):
        return "BMP"
    return _markup_kind(data)


def _riff_kind(form_type: bytes) -> ImageFormat | str | None:
    if form_type == b"WEBP":
        return ImageFormat.WEBP
    return {b"WAVE": "WAV audio", b"AVI ": "AVI video"}.get(form_type)


def _iso_bmff_kind(data: bytes) -> ImageFormat | str:
    """Classify an ISO BMFF file (HEIF, AVIF, MP4, MOV, 3GP) by the brands in its `ftyp` box."""
    box_size = int.from_bytes(data[0:4], "big")
    major = data[8:12]
    end = min(max(box_size, 16), len(data), 4096)
    compatible = {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in AVIF_BRANDS or (major in GENERIC_HEIF_BRANDS and compatible & AVIF_BRANDS):
        return "AVIF"
    if major in HEIF_BRANDS or compatible & (HEIF_BRANDS - GENERIC_HEIF_BRANDS):
        return ImageFormat.HEIF
    if major == b"qt  ":
        return "MOV video"
    if major.startswith(b"3g"):
        return "3GP video"
    if major.startswith(b"M4A"):
        return "M4A audio"
    return "MP4 video"


def _looks_like_bmp(data: bytes) -> bool:
    header_size = int.from_bytes(data[14:18], "little")
    return len(data) >= 18 and data.startswith(b"BM") and header_size in _BMP_HEADER_SIZES


def _markup_kind(data: bytes) -> str | None:
    """Name SVG, HTML and XML documents, which start with `<` after an optional BOM and whitespace."""
    head = data[:4096].removeprefix(_UTF8_BOM).lstrip().lower()
    if not head.startswith(b"<"):
        return None
    if b"<svg" in head:
        return "SVG"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head:
        return "HTML"
    if head.startswith(b"<?xml"):
        return "XML"
    return None
