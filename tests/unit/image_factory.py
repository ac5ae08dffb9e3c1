"""Generated test photos: JPEG, PNG, WebP and HEIC with chosen metadata, and hostile variants.

Every image is made here with Pillow (and pillow-heif for HEIC); no real photo is ever used. Each piece
of identifying metadata carries one of the `SECRET_MARKERS`, so a test can prove it is gone with
`marker not in data`.

    jpeg = make_jpeg(1024, 768, gps=True, device=True, orientation=6, xmp=True, trailing=b"...")
    blurred = make_png(look=Look.BLURRED)
"""

import io
import random
import struct
import zlib
from enum import Enum

import pillow_heif
from PIL import Image, ImageCms, ImageDraw, ImageFilter

# Distinctive bytes placed in each kind of metadata; none of them may survive the pipeline.
GPS_MARKER = b"WGS-84-SECRET-DATUM"
MAKE_MARKER = b"SecretCamCo"
MODEL_MARKER = b"SecretPhone 9"
DATETIME_MARKER = b"2024:01:02 03:04:05"
MAKERNOTE_MARKER = b"SECRET-MAKER-NOTE"
XMP_MARKER = b"SECRET-XMP-CREATOR"
COMMENT_MARKER = b"SECRET-JPEG-COMMENT"
IPTC_MARKER = b"SECRET-IPTC-CAPTION"
TEXT_MARKER = b"SECRET-PNG-TEXT"
TRAILING_MARKER = b"SECRET-APPENDED-FILE"
SECRET_MARKERS = (
    GPS_MARKER,
    MAKE_MARKER,
    MODEL_MARKER,
    DATETIME_MARKER,
    MAKERNOTE_MARKER,
    XMP_MARKER,
    COMMENT_MARKER,
    IPTC_MARKER,
    TEXT_MARKER,
    TRAILING_MARKER,
)

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
ORIENTATION = 0x0112
MAKE = 0x010F
MODEL = 0x0110
DATETIME = 0x0132


class Look(Enum):
    """What a generated scene looks like to the quality check."""

    SHARP = "sharp"
    BLURRED = "blurred"
    DARK = "dark"
    BRIGHT = "bright"


def make_scene(
    width: int = 1024, height: int = 768, *, look: Look = Look.SHARP, seed: int = 0
) -> Image.Image:
    """A detailed RGB picture: soft colour blotches, fine grain, and a ruler and coin with sharp edges."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test pixels, not a secret)
    small = (max(1, width // 16), max(1, height // 16))
    blotches = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    base = blotches.resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    scene = Image.blend(base, grain, 0.25)
    draw = ImageDraw.Draw(scene)
    ruler_top = height * 3 // 4
    draw.rectangle((width // 10, ruler_top, width * 9 // 10, ruler_top + height // 12), fill=(235, 225, 190))
    for x in range(width // 10, width * 9 // 10, max(2, width // 100)):
        draw.line((x, ruler_top, x, ruler_top + height // 30), fill=(20, 20, 20), width=1)
    radius = min(width, height) // 8
    draw.ellipse(
        (width // 2 - radius, height // 4 - radius, width // 2 + radius, height // 4 + radius),
        fill=(180, 140, 60),
    )
    return _apply_look(scene, look)


def _apply_look(scene: Image.Image, look: Look) -> Image.Image:
    if look is Look.BLURRED:
        return scene.filter(ImageFilter.GaussianBlur(8))
    if look is Look.DARK:
        return scene.point(lambda value: value * 0.08)
    if look is Look.BRIGHT:
        return scene.point(lambda value: 240 + value * 0.06)
    return scene


def in_mode(scene: Image.Image, mode: str) -> Image.Image:
    """`scene` converted to `mode`; 16-bit greyscale uses the full 16-bit range, as a camera would."""
    if mode == "I;16":
        return scene.convert("L").convert("I").point(lambda value: value * 257).convert("I;16")
    return scene.convert(mode)


def srgb_icc_profile() -> bytes:
    """A real sRGB ICC profile, made by LittleCMS, with a fixed creation date so it is reproducible."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    created = struct.pack(">6H", 2024, 1, 2, 3, 4, 5)  # ICC header bytes 24-35; no profile ID is set
    return profile[:24] + created + profile[36:]


def camera_exif(*, gps: bool = False, device: bool = False, orientation: int = 1) -> Image.Exif:
    """Exif as a phone writes it: location, camera make and model, times, a maker note, orientation."""
    exif = Image.Exif()
    if orientation != 1:
        exif[ORIENTATION] = orientation
    if device:
        exif[MAKE] = MAKE_MARKER.decode()
        exif[MODEL] = MODEL_MARKER.decode()
        exif[DATETIME] = DATETIME_MARKER.decode()
        exif_ifd = exif.get_ifd(EXIF_IFD)
        exif_ifd[0x9003] = DATETIME_MARKER.decode()  # DateTimeOriginal
        exif_ifd[0x927C] = MAKERNOTE_MARKER  # MakerNote
    if gps:
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps_ifd[1] = "N"
        gps_ifd[2] = (51.0, 30.0, 26.5)
        gps_ifd[3] = "W"
        gps_ifd[4] = (0.0, 7.0, 39.0)
        gps_ifd[0x12] = GPS_MARKER.decode()  # GPSMapDatum
    return exif


def encode_jpeg(
    image: Image.Image,
    *,
    quality: int = 90,
    progressive: bool = False,
    restart_marker_blocks: int = 0,
    icc_profile: bytes | None = None,
    exif: bytes = b"",
    secondary: Image.Image | None = None,
) -> bytes:
    """`image` saved by Pillow as a JPEG (with a plain JFIF APP0).

    With a `secondary` image it is a multi-picture file as phones write for depth or gain maps: an MPF
    index in APP2 and the second JPEG after the first one's EOI.
    """
    out = io.BytesIO()
    image.save(
        out,
        format="JPEG" if secondary is None else "MPO",
        save_all=secondary is not None,
        append_images=[] if secondary is None else [secondary],
        quality=quality,
        progressive=progressive,
        restart_marker_blocks=restart_marker_blocks,
        icc_profile=icc_profile,
        exif=exif,
    )
    return out.getvalue()


def make_jpeg(
    width: int = 1024,
    height: int = 768,
    *,
    look: Look = Look.SHARP,
    gps: bool = False,
    device: bool = False,
    orientation: int = 1,
    exif_thumbnail: bool = False,
    icc: bool = False,
    xmp: bool = False,
    comment: bool = False,
    photoshop: bool = False,
    jfif_thumbnail: bool = False,
    mpf: bool = False,
    trailing: bytes = b"",
    progressive: bool = False,
    restart_marker_blocks: int = 0,
    mode: str = "RGB",
    quality: int = 90,
) -> bytes:
    """A JPEG of a generated scene carrying the chosen metadata.

    `mpf` adds an MPF APP2 index and a second JPEG after EOI, as phones do for depth or gain maps;
    `trailing` is appended after everything (a motion-photo video, an appended file).
    """
    exif = camera_exif(gps=gps, device=device, orientation=orientation).tobytes()
    if exif_thumbnail:
        exif = with_ifd1_thumbnail(exif, encode_jpeg(make_scene(64, 48, seed=9)))
    has_exif = gps or device or orientation != 1 or exif_thumbnail
    scene = in_mode(make_scene(width, height, look=look), mode)
    jpeg = encode_jpeg(
        scene,
        quality=quality,
        progressive=progressive,
        restart_marker_blocks=restart_marker_blocks,
        icc_profile=srgb_icc_profile() if icc else None,
        exif=exif if has_exif else b"",
        secondary=make_scene(320, 240, seed=7) if mpf else None,
    )
    extra: list[tuple[int, bytes]] = []
    if jfif_thumbnail:
        jpeg = _with_jfif_thumbnail(jpeg)
        extra.append((0xE0, b"JFXX\x00\x10" + encode_jpeg(make_scene(32, 24, seed=8))))
    if xmp:
        packet = (
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>' + XMP_MARKER + b"</dc:creator></x:xmpmeta>"
        )
        extra.append((0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet))
    if photoshop:
        iptc = b"\x1c\x02\x78" + len(IPTC_MARKER).to_bytes(2, "big") + IPTC_MARKER
        resource = b"8BIM\x04\x04\x00\x00" + len(iptc).to_bytes(4, "big") + iptc
        extra.append((0xED, b"Photoshop 3.0\x00" + resource))
        extra.append((0xEB, b"HDR_GAIN_MAP " + MAKERNOTE_MARKER))  # some other APPn a phone writes
    if comment:
        extra.append((0xFE, COMMENT_MARKER))
    return insert_jpeg_segments(jpeg, extra) + trailing


def insert_jpeg_segments(jpeg: bytes, segments: list[tuple[int, bytes]]) -> bytes:
    """`jpeg` with (marker, payload) segments inserted after SOI and its first APP0/APP1 segments."""
    pos = 2
    while jpeg[pos + 1] in (0xE0, 0xE1):
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    encoded = b"".join(
        bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload
        for marker, payload in segments
    )
    return jpeg[:pos] + encoded + jpeg[pos:]


def with_ifd1_thumbnail(exif: bytes, thumbnail: bytes) -> bytes:
    """Pillow-written Exif (big-endian, IFD0 at offset 8) with an IFD1 holding a JPEG thumbnail."""
    tiff = bytearray(exif[6:])
    count = int.from_bytes(tiff[8:10], "big")
    next_ifd_at = 10 + 12 * count
    ifd1_at = len(tiff)
    thumbnail_at = ifd1_at + 2 + 2 * 12 + 4
    tiff[next_ifd_at : next_ifd_at + 4] = ifd1_at.to_bytes(4, "big")
    ifd1 = struct.pack(">H", 2)
    ifd1 += struct.pack(">HHII", 0x0201, 4, 1, thumbnail_at)  # JPEGInterchangeFormat
    ifd1 += struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))  # JPEGInterchangeFormatLength
    ifd1 += struct.pack(">I", 0)
    return exif[:6] + bytes(tiff) + ifd1 + thumbnail


def _with_jfif_thumbnail(jpeg: bytes) -> bytes:
    """Replace Pillow's plain JFIF APP0 with one carrying a 4x4 uncompressed thumbnail."""
    if jpeg[2:4] != b"\xff\xe0":
        raise ValueError("expected a JFIF APP0 first")
    old_end = 4 + int.from_bytes(jpeg[4:6], "big")
    thumbnail = bytes(range(48))
    payload = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x04\x04" + thumbnail
    return jpeg[:2] + b"\xff\xe0" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[old_end:]


def with_adobe_transform(jpeg: bytes, transform: int) -> bytes:
    """`jpeg` (a Pillow CMYK JPEG) with its Adobe APP14 colour-transform flag set (2 = YCCK)."""
    at = jpeg.find(b"\xff\xee")
    if at == -1 or jpeg[at + 4 : at + 9] != b"Adobe":
        raise ValueError("no Adobe APP14 segment")
    flag_at = at + 4 + 11  # marker and length, then "Adobe", version, flags0, flags1, transform
    return jpeg[:flag_at] + bytes((transform,)) + jpeg[flag_at + 1 :]


def patch_jpeg_frame_size(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` whose SOF0/SOF2 header claims another size (the scan data still matches the old one)."""
    for sof in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(sof)
        if at != -1:
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
    raise ValueError("no baseline or progressive frame header")


def make_png(
    width: int = 1024,
    height: int = 768,
    *,
    look: Look = Look.SHARP,
    text: bool = False,
    gps: bool = False,
    time: bool = False,
    icc: bool = False,
    trailing: bytes = b"",
    mode: str = "RGB",
) -> bytes:
    """A PNG of a generated scene with text chunks, an eXIf with GPS, a tIME chunk or an ICC profile."""
    from PIL import PngImagePlugin  # noqa: PLC0415 (PngInfo lives in the plugin module)

    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Author", TEXT_MARKER.decode())
        info.add_text("Comment", TEXT_MARKER.decode(), zip=True)
        info.add_itxt("Description", TEXT_MARKER.decode(), lang="en")
    if time:
        info.add(b"tIME", struct.pack(">HBBBBB", 2024, 1, 2, 3, 4, 5))
    out = io.BytesIO()
    in_mode(make_scene(width, height, look=look), mode).save(
        out,
        format="PNG",
        pnginfo=info,
        exif=camera_exif(gps=True, device=True).tobytes() if gps else b"",
        icc_profile=srgb_icc_profile() if icc else None,
    )
    return out.getvalue() + trailing


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims `width` x `height` RGB pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def make_webp(
    width: int = 1024,
    height: int = 768,
    *,
    look: Look = Look.SHARP,
    gps: bool = False,
    xmp: bool = False,
    icc: bool = False,
    lossless: bool = False,
    mode: str = "RGB",
) -> bytes:
    """A WebP of a generated scene with EXIF (GPS, device), XMP and ICC chunks as chosen."""
    out = io.BytesIO()
    xmp_packet = b"<x:xmpmeta><dc:creator>" + XMP_MARKER + b"</dc:creator></x:xmpmeta>"
    in_mode(make_scene(width, height, look=look), mode).save(
        out,
        format="WEBP",
        quality=80,
        lossless=lossless,
        exif=camera_exif(gps=True, device=True).tobytes() if gps else b"",
        xmp=xmp_packet if xmp else b"",
        icc_profile=srgb_icc_profile() if icc else None,
    )
    return out.getvalue()


def make_animated_webp(width: int = 320, height: int = 240) -> bytes:
    """A two-frame animated WebP."""
    frames = [make_scene(width, height, seed=1), make_scene(width, height, seed=2)]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def make_heic(
    width: int = 1024,
    height: int = 768,
    *,
    look: Look = Look.SHARP,
    gps: bool = False,
    orientation: int = 1,
    icc: bool = False,
    thumbnail: bool = False,
    second_image: bool = False,
    primary_last: bool = False,
    quality: int = 80,
) -> bytes:
    """A HEIC made by pillow-heif (libheif with x265), with Exif, a thumbnail or a second image.

    `orientation` is written as pillow-heif does: HEIF rotation boxes plus the same value in Exif.
    `second_image` adds a 320x240 image after the primary; with `primary_last` it is added before it.
    """
    scene = make_scene(width, height, look=look)
    if icc:
        scene.info["icc_profile"] = srgb_icc_profile()
    other = make_scene(320, 240, seed=5)
    images = [other, scene] if primary_last else [scene]
    if second_image and not primary_last:
        images.append(other)
    heif = pillow_heif.from_pillow(images[0])
    for image in images[1:]:
        heif.add_from_pillow(image)
    exif = camera_exif(gps=gps, device=gps, orientation=orientation).tobytes()
    out = io.BytesIO()
    heif.save(
        out,
        quality=quality,
        exif=exif,
        thumbnails=[96] if thumbnail else [],
        primary_index=images.index(scene),
        enc_params={"preset": "ultrafast"},  # x265's default preset takes ~8x longer
    )
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    """`data` fully decoded by Pillow (any format it knows, HEIC through pillow-heif)."""
    if data[4:8] == b"ftyp":
        return pillow_heif.open_heif(data).to_pillow()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def same_pixels(first: bytes, second: bytes) -> bool:
    """Whether two encoded images decode to exactly the same mode, size and pixel values."""
    a, b = decoded(first), decoded(second)
    return a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()
