"""Step 3 for JPEG: segments are rewritten without re-encoding, keeping only orientation and colour."""

import io
from collections.abc import Callable

import pytest
from PIL import Image, ImageOps

from bot.images.exif_orientation import orientation_only_exif, read_orientation
from bot.images.jpeg_segments import read_jpeg_size, split_jpeg
from bot.images.jpeg_strip import strip_jpeg
from bot.images.model import PhotoRejected, RejectReason
from tests.unit.image_factory import (
    GPS_IFD,
    SECRET_MARKERS,
    TRAILING_MARKER,
    encode_jpeg,
    insert_jpeg_segments,
    make_jpeg,
    make_scene,
    same_pixels,
    srgb_icc_profile,
    with_adobe_transform,
)


def _everything(orientation: int = 6) -> bytes:
    """A JPEG carrying every kind of metadata a phone or an editor writes, and an appended file."""
    return make_jpeg(
        gps=True,
        device=True,
        orientation=orientation,
        exif_thumbnail=True,
        icc=True,
        xmp=True,
        comment=True,
        photoshop=True,
        jfif_thumbnail=True,
        mpf=True,
        trailing=TRAILING_MARKER * 50,
    )


def _applist(data: bytes) -> list[tuple[str, bytes]]:
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        return list(image.applist)  # type: ignore[attr-defined]


def _reason(data: bytes) -> RejectReason:
    with pytest.raises(PhotoRejected) as refused:
        strip_jpeg(data)
    return refused.value.reason


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_jpeg(gps=True, xmp=True),
        lambda: make_jpeg(gps=True, comment=True, progressive=True),
        lambda: make_jpeg(gps=True, restart_marker_blocks=3),
        lambda: make_jpeg(gps=True, mode="L"),
        lambda: make_jpeg(comment=True, mode="CMYK"),
        lambda: with_adobe_transform(make_jpeg(xmp=True, mode="CMYK"), 2),
        lambda: make_jpeg(xmp=True, quality=100),
    ],
    ids=["baseline", "progressive", "restart-markers", "greyscale", "cmyk", "ycck-adobe", "quality-100"],
)
def test_stripped_jpeg_decodes_to_identical_pixels(make: Callable[[], bytes]) -> None:
    """Stripping never re-encodes: the photo decodes to exactly the same pixels as the original."""
    original = make()
    assert same_pixels(original, strip_jpeg(original).data)


def test_fully_loaded_jpeg_keeps_its_pixels() -> None:
    """Even with every metadata block and a trailing file removed, the pixels are bit-identical."""
    original = _everything()
    assert same_pixels(original, strip_jpeg(original).data)


def test_no_identifying_metadata_survives() -> None:
    """GPS, device, times, maker note, XMP, IPTC, comments and appended files are all gone."""
    stripped = strip_jpeg(_everything()).data
    assert [marker for marker in SECRET_MARKERS if marker in stripped] == []


def test_exif_keeps_only_the_orientation() -> None:
    """The rebuilt Exif holds the orientation and nothing else: no GPS, make, model or date."""
    with Image.open(io.BytesIO(strip_jpeg(_everything(orientation=6)).data)) as image:
        exif = image.getexif()
        assert dict(exif) == {0x0112: 6}
        assert exif.get_ifd(GPS_IFD) == {}


def test_orientation_still_turns_the_photo_upright() -> None:
    """A sideways-stored portrait is still shown upright after stripping."""
    stripped = strip_jpeg(make_jpeg(1024, 768, gps=True, orientation=6)).data
    with Image.open(io.BytesIO(stripped)) as image:
        assert ImageOps.exif_transpose(image).size == (768, 1024)


def test_upright_photo_gets_no_exif_at_all() -> None:
    """When the orientation is upright the Exif block is dropped rather than rebuilt."""
    stripped = strip_jpeg(make_jpeg(gps=True, device=True, orientation=1)).data
    assert [name for name, _ in _applist(stripped)] == ["APP0"]


def test_icc_profile_is_kept_byte_for_byte() -> None:
    """The colour profile survives, so colours look as the camera meant them."""
    with Image.open(io.BytesIO(strip_jpeg(_everything()).data)) as image:
        assert image.info["icc_profile"] == srgb_icc_profile()


def test_large_icc_profile_split_over_several_segments_survives() -> None:
    """A profile too big for one APP2 segment keeps all its chunks, in order."""
    profile = srgb_icc_profile() + bytes(range(256)) * 600
    original = encode_jpeg(make_scene(320, 240), icc_profile=profile)
    stripped = strip_jpeg(original).data
    assert [name for name, _ in _applist(stripped)].count("APP2") == 3
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.info["icc_profile"] == profile


def test_adobe_colour_transform_segment_is_kept() -> None:
    """A CMYK JPEG keeps its Adobe APP14, whose transform flag decides how the channels are read."""
    stripped = strip_jpeg(make_jpeg(mode="CMYK", comment=True)).data
    assert [name for name, _ in _applist(stripped)] == ["APP14"]


def test_jfif_is_kept_without_thumbnails() -> None:
    """The JFIF header stays, but its thumbnail and the JFXX extension thumbnail go."""
    applist = _applist(strip_jpeg(make_jpeg(jfif_thumbnail=True)).data)
    assert applist == [("APP0", b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")]


def test_exif_thumbnail_is_dropped() -> None:
    """The small preview JPEG inside Exif (IFD1) is not carried over."""
    original = make_jpeg(orientation=3, exif_thumbnail=True)
    stripped = strip_jpeg(original).data
    assert original.count(b"\xff\xd8\xff") == 2
    assert stripped.count(b"\xff\xd8\xff") == 1


def test_secondary_image_and_trailing_data_after_eoi_are_dropped() -> None:
    """An MPF depth or gain map image and an appended file after EOI are not kept."""
    original = make_jpeg(mpf=True, trailing=TRAILING_MARKER * 100)
    stripped = strip_jpeg(original).data
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.format == "JPEG"
        assert getattr(image, "n_frames", 1) == 1
    assert stripped.endswith(b"\xff\xd9")
    assert TRAILING_MARKER not in stripped


def test_size_is_read_from_the_frame_header() -> None:
    """The width and height come from the SOF segment, before any decoding."""
    assert read_jpeg_size(make_jpeg(800, 600, xmp=True)) == (800, 600)
    assert strip_jpeg(make_jpeg(800, 600, progressive=True)).width == 800


def test_cut_in_the_middle_of_the_image_data_is_truncated() -> None:
    """A photo whose upload stopped half-way is recognised as truncated."""
    original = make_jpeg()
    assert _reason(original[: len(original) // 2]) is RejectReason.TRUNCATED


def test_missing_end_of_image_is_truncated() -> None:
    """A JPEG without its final EOI marker is truncated."""
    assert _reason(make_jpeg()[:-2]) is RejectReason.TRUNCATED


def test_segment_running_past_the_end_is_truncated() -> None:
    """A header segment whose length runs past the end of the data is truncated."""
    original = make_jpeg(icc=True)
    assert _reason(original[:300]) is RejectReason.TRUNCATED


def test_two_frame_headers_are_corrupt() -> None:
    """A file with two SOF headers is refused, so no decoder can pick a different size than we checked."""
    original = make_jpeg(320, 240)
    sof_at = original.find(b"\xff\xc0")
    sof_length = int.from_bytes(original[sof_at + 2 : sof_at + 4], "big")
    sof = original[sof_at : sof_at + 2 + sof_length]
    assert _reason(insert_jpeg_segments(original, [(0xC0, sof[4:])])) is RejectReason.CORRUPT


def test_garbage_between_segments_is_corrupt() -> None:
    """A byte where a marker should start makes the file corrupt."""
    original = make_jpeg(320, 240)
    assert _reason(original[:20] + b"\x00" + original[20:]) is RejectReason.CORRUPT


def test_segments_are_split_in_order() -> None:
    """A progressive JPEG splits into several scans, each with its entropy-coded data."""
    segments = split_jpeg(make_jpeg(320, 240, progressive=True))
    scans = [segment for segment in segments if segment.marker == 0xDA]
    assert len(scans) > 1
    assert all(scan.scan_data for scan in scans)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_only_exif_round_trips(orientation: int) -> None:
    """The minimal Exif block carries each orientation value, readable by us and by Pillow."""
    block = orientation_only_exif(orientation)
    assert read_orientation(block) == orientation
    exif = Image.Exif()
    exif.load(block)
    assert dict(exif) == {0x0112: orientation}


def test_little_endian_exif_orientation_is_read() -> None:
    """Orientation is read from little-endian (Intel) Exif as written by many Android phones."""
    tiff = b"II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little")
    entry = (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
    block = b"Exif\x00\x00" + tiff + entry + (8).to_bytes(2, "little") + b"\x00\x00" + b"\x00" * 4
    assert read_orientation(block) == 8


@pytest.mark.parametrize(
    "block",
    [b"", b"Exif\x00\x00", b"Exif\x00\x00XX*\x00", b"Exif\x00\x00MM\x00*\x00\x00\xff\xff", b"JFIF\x00"],
)
def test_unreadable_exif_means_upright(block: bytes) -> None:
    """Broken Exif never stops a photo: its orientation is taken as upright."""
    assert read_orientation(block) == 1


def test_fill_bytes_before_markers_are_allowed() -> None:
    """Extra 0xFF fill bytes before a marker, which the JPEG standard allows, do not stop a photo."""
    original = make_jpeg(320, 240)
    padded = original[:2] + b"\xff" * 1000 + original[2:]
    assert same_pixels(original, strip_jpeg(padded).data)


def test_a_file_of_countless_tiny_segments_is_refused() -> None:
    """A JPEG made of tens of thousands of empty comment segments is refused instead of parsed."""
    original = make_jpeg(64, 48)
    assert _reason(original[:2] + b"\xff\xfe\x00\x02" * 20_000 + original[2:]) is RejectReason.CORRUPT


def test_a_file_of_hundreds_of_scans_is_refused() -> None:
    """A progressive JPEG with far more scans than any camera writes is refused before decoding."""
    original = make_jpeg(64, 48, progressive=True)
    last_scan = original[original.rfind(b"\xff\xda") : -2]
    assert _reason(original[:-2] + last_scan * 200 + b"\xff\xd9") is RejectReason.CORRUPT
