"""Generated stand-ins for the photos patients send: a 12-megapixel camera JPEG and an iPhone-style HEIC.

Never a real photo. The pixels are soft colour blotches with fine grain, so the JPEG compresses to about
what a phone writes for 12 megapixels (~5 MB at quality 90), and the Exif carries what a phone puts there
(made-up GPS position, camera make and model, capture times) for the bot to strip. Each is made once per
run and sent by every patient.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import pillow_heif
from PIL import Image

GPS_IFD = 0x8825
EXIF_IFD = 0x8769

# 4032 x 3024 is what 12-megapixel phone cameras write.
FULL_SIZE = (4032, 3024)
# The smoke test's photo: big enough for the quality check, small enough to be quick.
SMALL_SIZE = (1024, 768)
GRAIN = 0.1  # how much per-pixel noise is blended in: 0.1 at quality 90 gives ~5.0 MB at 12 MP
JPEG_QUALITY = 90
HEIC_QUALITY = 45  # ~2.6 MB at 12 MP, about what an iPhone writes (the grain makes HEIC work hard)


@dataclass(frozen=True)
class GeneratedPhoto:
    """One generated photo as a patient's phone would send it."""

    data: bytes
    mimetype: str
    filename: str
    width: int
    height: int
    as_file: bool  # iPhones often send HEIC as a file, not as an image


def scene(width: int, height: int, *, seed: int = 1) -> Image.Image:
    """Detailed RGB pixels: blotches a sixteenth of the size, scaled up, with grain on top."""
    rng = random.Random(seed)  # noqa: S311 (reproducible pixels, not a secret)
    small = (max(1, width // 16), max(1, height // 16))
    blotches = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    base = blotches.resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    return Image.blend(base, grain, GRAIN)


def camera_exif() -> Image.Exif:
    """Exif as a phone writes it, all made up: GPS position, make, model, capture times."""
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"  # Make
    exif[0x0110] = "Model 12"  # Model
    exif[0x0132] = "2026:11:20 09:15:00"  # DateTime
    exif[0x0112] = 1  # Orientation: upright
    details = exif.get_ifd(EXIF_IFD)
    details[0x9003] = "2026:11:20 09:15:00"  # DateTimeOriginal
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (51.0, 30.0, 12.0)
    gps[3], gps[4] = "W", (0.0, 7.0, 40.0)
    gps[6] = 21.5  # GPSAltitude
    return exif


def camera_jpeg(size: tuple[int, int] = FULL_SIZE) -> GeneratedPhoto:
    """A JPEG like a 12-megapixel phone camera's (about 5 MB), with GPS and device Exif."""
    width, height = size
    out = io.BytesIO()
    scene(width, height).save(out, "JPEG", quality=JPEG_QUALITY, exif=camera_exif().tobytes())
    return GeneratedPhoto(out.getvalue(), "image/jpeg", "IMG_4032.JPG", width, height, as_file=False)


def iphone_heic(size: tuple[int, int] = FULL_SIZE) -> GeneratedPhoto:
    """A HEIC like an iPhone's, with GPS Exif, sent as a file."""
    width, height = size
    heif = pillow_heif.from_pillow(scene(width, height, seed=2))
    out = io.BytesIO()
    heif.save(
        out,
        quality=HEIC_QUALITY,
        exif=camera_exif().tobytes(),
        enc_params={"preset": "ultrafast"},  # x265's default preset takes many times longer to encode
    )
    return GeneratedPhoto(out.getvalue(), "image/heic", "IMG_4033.HEIC", width, height, as_file=True)
