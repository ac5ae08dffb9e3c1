"""Generated stand-ins for patients' photos: synthetic skin-like images, never real ones.

A demo photo looks like what a phone sends: a detailed scene, camera metadata with GPS coordinates (made
up), so the demo can show the bot removing it. `describe_photo` says what anyone holding a photo file could
tell about it, so the transcript can show a photo as one line, never as bytes.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter

_MAKE, _MODEL, _DATE_TIME, _ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112  # Exif tags
_GPS_IFD = 0x8825


def skin_scene(width: int, height: int, *, seed: int) -> Image.Image:
    """A skin-toned, textured image with a reddish patch: sharp enough to pass the quality check."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible picture, not a secret)
    image = Image.new("RGB", (width, height), (224, 180, 150))
    draw = ImageDraw.Draw(image)
    for _ in range(width * height // 400):
        x, y = rng.randrange(width), rng.randrange(height)
        shade = rng.randrange(-30, 30)
        draw.point((x, y), fill=(200 + shade, 160 + shade, 130 + shade))
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        length = rng.randrange(10, 60)
        draw.line((x, y, x + length, y + rng.randrange(-8, 8)), fill=(180, 130, 105), width=1)
    cx, cy, r = width // 2, height // 2, min(width, height) // 6
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(205, 95, 90))
    for _ in range(200):
        x, y = cx + rng.randrange(-r, r), cy + rng.randrange(-r, r)
        draw.point((x, y), fill=(150, 50, 50))
    return image.filter(ImageFilter.SHARPEN)


def camera_jpeg(width: int = 1600, height: int = 1200, *, seed: int = 1) -> bytes:
    """A JPEG like a phone's: made-up GPS position, camera make and model, capture time."""
    exif = Image.Exif()
    exif[_MAKE] = "ExampleCam"
    exif[_MODEL] = "Model 7"
    exif[_DATE_TIME] = "2026:11:20 09:15:00"
    exif[_ORIENTATION] = 1
    gps = exif.get_ifd(_GPS_IFD)
    gps[1], gps[2] = "N", (51.0, 30.0, 12.0)
    gps[3], gps[4] = "W", (0.0, 7.0, 40.0)
    buffer = io.BytesIO()
    skin_scene(width, height, seed=seed).save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def camera_heic(width: int = 1600, height: int = 1200, *, seed: int = 2) -> bytes:
    """A HEIC like an iPhone's, with made-up GPS metadata."""
    from pillow_heif import register_heif_opener  # noqa: PLC0415 (registers a Pillow plugin)

    register_heif_opener()
    exif = Image.Exif()
    exif[_MAKE] = "ExamplePhone"
    gps = exif.get_ifd(_GPS_IFD)
    gps[1], gps[2] = "N", (51.0, 30.0, 12.0)
    buffer = io.BytesIO()
    skin_scene(width, height, seed=seed).save(buffer, "HEIF", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def thumbnail_jpeg(data: bytes, longest_side: int = 320) -> bytes:
    """A small JPEG preview of a photo, like the separate thumbnail many Matrix apps upload with it."""
    with Image.open(io.BytesIO(data)) as image:
        preview = image.convert("RGB")
    preview.thumbnail((longest_side, longest_side))
    buffer = io.BytesIO()
    preview.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


_FORMAT_NAMES = {"HEIF": "HEIC", "MPO": "JPEG"}


def _open_photo(data: bytes) -> Image.Image:
    from pillow_heif import register_heif_opener  # noqa: PLC0415 (registers a Pillow plugin)

    register_heif_opener()
    return Image.open(io.BytesIO(data))


def _dimensions(image: Image.Image) -> str:
    return f"{image.width}x{image.height} {_FORMAT_NAMES.get(image.format or '', image.format or 'image')}"


def photo_dimensions(data: bytes) -> str:
    """'1600x1200 JPEG': the size and format of a photo."""
    with _open_photo(data) as image:
        return _dimensions(image)


def describe_photo(data: bytes) -> str:
    """'1600x1200 JPEG, 110 KB; its metadata holds a GPS position, the camera model': one line."""
    with _open_photo(data) as image:
        dimensions = _dimensions(image)
        exif = image.getexif()
        revealing = [
            what
            for what, present in (
                ("a GPS position", bool(exif.get_ifd(_GPS_IFD))),
                ("the camera model", _MAKE in exif or _MODEL in exif),
                ("the time it was taken", _DATE_TIME in exif),
            )
            if present
        ]
    metadata = (
        f"its metadata holds {_listed(revealing)}" if revealing else "no location, camera or time in it"
    )
    return f"{dimensions}, {kilobytes(len(data))}; {metadata}"


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def kilobytes(size: int) -> str:
    """A size as people read it: '110 KB'."""
    return f"{max(1, round(size / 1024))} KB"
