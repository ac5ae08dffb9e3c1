"""Convert a HEIF/HEIC photo to a high-quality JPEG with no metadata.

Only the primary image is decoded: never depth maps, auxiliary images (alpha, HDR gain maps),
thumbnails or the other images of a burst. libheif applies the container's rotation and mirroring
(`irot`/`imir`) while decoding, so the pixels come out the way the patient saw them. In HEIF those
boxes are the orientation that counts; the Exif orientation tag is only a copy of it (pillow-heif itself
resets it after decoding), and applying it again would turn an iPhone photo a second time.

pillow_heif is used directly (`open_heif`) rather than through `register_heif_opener()`: that keeps
Pillow's process-wide plugin registry untouched and makes the choice of the primary image explicit.
"""

import io

import pillow_heif
from PIL import Image

from bot.images.model import Cleaned, ImageFormat, PhotoRejected, RejectReason
from bot.images.pixel_modes import to_8bit

JPEG_QUALITY = 92
# HEIC from phones is 4:2:0 itself, so 4:4:4 would only make the file bigger.
JPEG_SUBSAMPLING = "4:2:0"


def read_heif_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the primary image as it will be displayed, without decoding it."""
    width, height = _primary(data).size
    return int(width), int(height)


def convert_heif(data: bytes) -> Cleaned:
    """The primary image, decoded upright, as a quality-92 JPEG with only its ICC profile."""
    primary = _primary(data)
    icc = primary.info.get("icc_profile")
    image = to_8bit(_decoded_pixels(primary))
    out = io.BytesIO()
    image.save(
        out,
        format="JPEG",
        quality=JPEG_QUALITY,
        subsampling=JPEG_SUBSAMPLING,
        icc_profile=icc if isinstance(icc, bytes) else None,
        exif=b"",
        comment=b"",
    )
    width, height = image.size
    return Cleaned(out.getvalue(), ImageFormat.JPEG, width, height, converted=True)


def _primary(data: bytes) -> pillow_heif.HeifImage:
    heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
    if len(heif) == 0:
        raise PhotoRejected(RejectReason.CORRUPT)
    return heif[heif.primary_index]


def _decoded_pixels(primary: pillow_heif.HeifImage) -> Image.Image:
    """Decode the primary image into a Pillow image that carries no metadata at all."""
    image = primary.to_pillow()
    image.info.clear()
    return image
