"""Structure-aware fuzzing of the photo pipeline: JPEG segments, PNG chunks, WebP chunks and HEIC boxes
rearranged, duplicated, dropped, resized and corrupted; headers claiming huge images; valid headers followed
by random bytes. (tests/unit/test_image_fuzz.py flips, inserts and cuts raw bytes; this goes deeper.)

Every case must come back within 2 seconds as a `CleanPhoto` or a `Rejected` with a reason, never an
exception. A photo that is accepted must be what the pipeline promises: within the pixel limit, in the
format it says, without any of the metadata markers the seeds carry, and itself accepted again unchanged.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from bot.images import CleanPhoto, ImageFormat, Limits, Rejected, RejectReason, process_photo
from tests.unit.image_factory import SECRET_MARKERS, make_heic, make_jpeg, make_png, make_webp
from tests.unit.test_fuzz_support import CASES, fuzz_settings

LIMITS = Limits(max_bytes=2_000_000, max_pixels=4_000_000, min_side=16)
MAGIC = {
    ImageFormat.JPEG: b"\xff\xd8\xff",
    ImageFormat.PNG: b"\x89PNG\r\n\x1a\n",
    ImageFormat.WEBP: b"RIFF",
}
Segment = tuple[int, bytes]  # (JPEG marker, payload) or (0, entropy-coded data after a SOS header)
Chunk = tuple[bytes, bytes]  # (PNG or RIFF chunk type, data)


def check(data: bytes) -> CleanPhoto | Rejected:
    """Run the pipeline on `data` and hold its answer to the pipeline's promises."""
    result = process_photo(data, LIMITS)
    assert isinstance(result, CleanPhoto | Rejected), type(result)
    if isinstance(result, Rejected):
        assert isinstance(result.reason, RejectReason)
        assert result.detected is None or isinstance(result.detected, str)
        event(f"rejected: {result.reason.value}")
        return result
    event(f"clean: {result.format.value}")
    assert 0 < result.width * result.height <= LIMITS.max_pixels
    assert result.data.startswith(MAGIC[result.format])
    assert not [marker for marker in SECRET_MARKERS if marker in result.data], "metadata survived"
    again = process_photo(result.data, LIMITS)
    assert isinstance(again, CleanPhoto), f"a cleaned photo is refused when sent again: {again}"
    assert (again.format, again.width, again.height) == (result.format, result.width, result.height)
    if result.format is not ImageFormat.JPEG or not result.converted:
        assert again.data == result.data, "cleaning a clean photo changed it"
    return result


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    """Small photos carrying every kind of metadata, generated once for this module."""
    makers: dict[str, Callable[[], bytes]] = {
        "jpeg": lambda: make_jpeg(
            48,
            32,
            gps=True,
            device=True,
            xmp=True,
            comment=True,
            icc=True,
            orientation=6,
            exif_thumbnail=True,
        ),
        "progressive": lambda: make_jpeg(48, 32, progressive=True, restart_marker_blocks=1, photoshop=True),
        "png": lambda: make_png(48, 32, text=True, gps=True, time=True, icc=True),
        "palette-png": lambda: make_png(48, 32, mode="P"),
        "webp": lambda: make_webp(48, 32, gps=True, xmp=True, icc=True),
        "webp-lossless": lambda: make_webp(48, 32, lossless=True, mode="RGBA"),
        "heic": lambda: make_heic(48, 32, gps=True, thumbnail=True, orientation=6),
    }
    return {name: make() for name, make in makers.items()}


# ---- JPEG --------------------------------------------------------------------------------------------


def jpeg_segments(data: bytes) -> list[Segment]:
    """The segments after SOI; the entropy-coded data after each SOS header is kept as (0, bytes)."""
    segments: list[Segment] = []
    pos = 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:
            end = data.find(b"\xff\xd9", pos)
            end = len(data) if end == -1 else end
            segments.append((0, data[pos:end]))
            pos = end
    return segments


def jpeg_bytes(segments: list[Segment], *, eoi: bool = True) -> bytes:
    out = bytearray(b"\xff\xd8")
    for marker, payload in segments:
        if marker == 0:
            out += payload
        else:
            out += bytes((0xFF, marker)) + struct.pack(">H", min(0xFFFF, len(payload) + 2)) + payload
    return bytes(out) + (b"\xff\xd9" if eoi else b"")


def frame_header(width: int, height: int, components: int = 3) -> bytes:
    """A SOF payload: 8-bit precision, the size, and `components` components of 1x1 sampling."""
    parts = b"".join(bytes((i + 1, 0x11, 0)) for i in range(components))
    return struct.pack(">BHHB", 8, height, width, components) + parts


dimension = st.one_of(st.integers(0, 70), st.sampled_from([0, 1, 2047, 2048, 4096, 30000, 65535]))
jpeg_markers = st.sampled_from(
    [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xCC, 0xDA, 0xDB, 0xDD, 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xFE, 0xF0, 0x01]
)


@st.composite
def mutated_jpeg(draw: st.DrawFn, seed: bytes) -> bytes:
    segments = jpeg_segments(seed)
    eoi = True
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(segments) - 1))
        match draw(
            st.sampled_from(
                [
                    "drop",
                    "duplicate",
                    "insert",
                    "resize frame",
                    "bad length",
                    "swap",
                    "cut scan",
                    "no eoi",
                    "flip",
                ]
            )
        ):
            case "drop":
                del segments[at]
            case "duplicate":
                segments.insert(at, segments[at])
            case "insert":
                payload = draw(st.binary(max_size=80))
                segments.insert(at, (draw(jpeg_markers), payload))
            case "resize frame":
                frames = [i for i, (marker, _) in enumerate(segments) if marker in (0xC0, 0xC1, 0xC2)]
                if frames:
                    components = draw(st.sampled_from([1, 3, 4, 0, 255]))
                    segments[frames[0]] = (
                        segments[frames[0]][0],
                        frame_header(draw(dimension), draw(dimension), components),
                    )
            case "bad length":
                marker, payload = segments[at]
                if marker:
                    cut = draw(st.integers(0, len(payload)))
                    segments[at] = (marker, payload[:cut])
            case "swap":
                other = draw(st.integers(0, len(segments) - 1))
                segments[at], segments[other] = segments[other], segments[at]
            case "cut scan":
                scans = [i for i, (marker, _) in enumerate(segments) if marker == 0]
                if scans:
                    data = segments[scans[-1]][1]
                    segments[scans[-1]] = (0, data[: draw(st.integers(0, len(data)))])
            case "no eoi":
                eoi = False
            case _:
                marker, payload = segments[at]
                if payload:
                    where = draw(st.integers(0, len(payload) - 1))
                    flipped = payload[where] ^ (1 << draw(st.integers(0, 7)))
                    segments[at] = (marker, payload[:where] + bytes((flipped,)) + payload[where + 1 :])
        if not segments:
            break
    return jpeg_bytes(segments, eoi=eoi)


@pytest.mark.parametrize("seed_name", ["jpeg", "progressive"])
@fuzz_settings(CASES["image: JPEG segments"] // 2)
@given(data=st.data())
def test_jpeg_with_rearranged_segments_is_answered(
    seeds: dict[str, bytes], seed_name: str, data: st.DataObject
) -> None:
    """A JPEG with segments dropped, doubled, inserted, resized, cut or flipped is cleaned or refused."""
    check(data.draw(mutated_jpeg(seeds[seed_name])))


# ---- PNG ---------------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[Chunk]:
    chunks: list[Chunk] = []
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def png_bytes(chunks: list[Chunk], *, bad_crc: int | None = None) -> bytes:
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for index, (kind, data) in enumerate(chunks):
        crc = zlib.crc32(kind + data) ^ (1 if index == bad_crc else 0)
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    return bytes(out)


png_chunk_types = st.sampled_from(
    [
        *(b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP", b"gAMA"),
        *(b"sRGB", b"pHYs", b"tIME", b"acTL", b"fcTL", b"fdAT", b"caBX", b"zzZz"),
    ]
)


@st.composite
def ihdr(draw: st.DrawFn) -> bytes:
    return struct.pack(
        ">IIBBBBB",
        draw(st.one_of(st.integers(0, 64), st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 100_000]))),
        draw(st.one_of(st.integers(0, 64), st.sampled_from([2**31 - 1, 100_000]))),
        draw(st.sampled_from([1, 2, 4, 8, 16, 3, 0])),
        draw(st.sampled_from([0, 2, 3, 4, 6, 1, 7])),
        draw(st.sampled_from([0, 1])),
        draw(st.sampled_from([0, 1])),
        draw(st.sampled_from([0, 1, 2])),
    )


@st.composite
def mutated_png(draw: st.DrawFn, seed: bytes) -> bytes:
    chunks = png_chunks(seed)
    bad_crc: int | None = None
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(chunks) - 1))
        match draw(
            st.sampled_from(
                [
                    "drop",
                    "duplicate",
                    "insert",
                    "new header",
                    "split data",
                    "cut data",
                    "bad crc",
                    "swap",
                    "flip",
                ]
            )
        ):
            case "drop":
                del chunks[at]
            case "duplicate":
                chunks.insert(at, chunks[at])
            case "insert":
                chunks.insert(at, (draw(png_chunk_types), draw(st.binary(max_size=64))))
            case "new header":
                headers = [i for i, (kind, _) in enumerate(chunks) if kind == b"IHDR"]
                chunks[headers[0] if headers else 0] = (b"IHDR", draw(ihdr()))
            case "split data":
                kind, data = chunks[at]
                cut = draw(st.integers(0, len(data)))
                chunks[at : at + 1] = [(kind, data[:cut]), (b"IDAT", data[cut:])]
            case "cut data":
                kind, data = chunks[at]
                chunks[at] = (kind, data[: draw(st.integers(0, len(data)))])
            case "bad crc":
                bad_crc = at
            case "swap":
                other = draw(st.integers(0, len(chunks) - 1))
                chunks[at], chunks[other] = chunks[other], chunks[at]
            case _:
                kind, data = chunks[at]
                if data:
                    where = draw(st.integers(0, len(data) - 1))
                    chunks[at] = (kind, data[:where] + bytes((data[where] ^ 0xFF,)) + data[where + 1 :])
        if not chunks:
            break
    return png_bytes(chunks, bad_crc=bad_crc)


@pytest.mark.parametrize("seed_name", ["png", "palette-png"])
@fuzz_settings(CASES["image: PNG chunks"] // 2)
@given(data=st.data())
def test_png_with_rearranged_chunks_is_answered(
    seeds: dict[str, bytes], seed_name: str, data: st.DataObject
) -> None:
    """A PNG with chunks dropped, doubled, inserted, split, cut, reordered or with a new header is answered;
    CRCs are recomputed (except where a bad one is the point) so the damage reaches the decoder."""
    check(data.draw(mutated_png(seeds[seed_name])))


# ---- WebP --------------------------------------------------------------------------------------------


def riff_chunks(data: bytes) -> list[Chunk]:
    chunks: list[Chunk] = []
    pos = 12
    while pos + 8 <= len(data):
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def riff_bytes(chunks: list[Chunk], *, riff_size: int | None = None) -> bytes:
    body = b"WEBP" + b"".join(
        kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")
        for kind, data in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


webp_chunk_types = st.sampled_from(
    [b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP", b"EXIF", b"XMP ", b"JUNK"]
)


def canvas(flags: int, width: int, height: int) -> bytes:
    """A VP8X payload: flags and the canvas size minus one, 24 bits each."""
    return bytes((flags, 0, 0, 0)) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


@st.composite
def mutated_webp(draw: st.DrawFn, seed: bytes) -> bytes:
    chunks = riff_chunks(seed)
    riff_size: int | None = None
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(chunks) - 1))
        match draw(st.sampled_from(["drop", "duplicate", "insert", "canvas", "riff size", "cut", "flip"])):
            case "drop":
                del chunks[at]
            case "duplicate":
                chunks.insert(at, chunks[at])
            case "insert":
                chunks.insert(at, (draw(webp_chunk_types), draw(st.binary(max_size=48))))
            case "canvas":
                side = st.one_of(st.integers(1, 64), st.sampled_from([16383, 16384, 2**24]))
                payload = canvas(draw(st.integers(0, 255)), draw(side), draw(side))
                chunks.insert(0, (b"VP8X", payload))
            case "riff size":
                riff_size = draw(st.sampled_from([0, 4, 2**32 - 1, len(seed) * 2]))
            case "cut":
                kind, data = chunks[at]
                chunks[at] = (kind, data[: draw(st.integers(0, len(data)))])
            case _:
                kind, data = chunks[at]
                if data:
                    where = draw(st.integers(0, min(len(data), 32) - 1))  # the headers are at the start
                    chunks[at] = (
                        kind,
                        data[:where] + bytes((draw(st.integers(0, 255)),)) + data[where + 1 :],
                    )
        if not chunks:
            break
    return riff_bytes(chunks, riff_size=riff_size)


@pytest.mark.parametrize("seed_name", ["webp", "webp-lossless"])
@fuzz_settings(CASES["image: WebP chunks"] // 2)
@given(data=st.data())
def test_webp_with_rearranged_chunks_is_answered(
    seeds: dict[str, bytes], seed_name: str, data: st.DataObject
) -> None:
    """A WebP with chunks dropped, doubled, inserted, cut or corrupted, a new canvas or a wrong RIFF size is
    answered."""
    check(data.draw(mutated_webp(seeds[seed_name])))


# ---- HEIC --------------------------------------------------------------------------------------------


def boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    """Top-level ISO-BMFF boxes as (offset, size, type); stops at anything malformed."""
    found = []
    pos = 0
    while pos + 8 <= len(data):
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        if size < 8 or pos + size > len(data):
            break
        found.append((pos, size, data[pos + 4 : pos + 8]))
        pos += size
    return found


@st.composite
def mutated_heic(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        top = boxes(bytes(data))
        match draw(
            st.sampled_from(
                ["image size", "box size", "drop box", "duplicate box", "brand", "meta flip", "cut"]
            )
        ):
            case "image size":
                at = data.find(b"ispe")
                if at != -1:
                    side = st.one_of(st.integers(0, 64), st.sampled_from([2**15, 2**16, 2**31, 2**32 - 1]))
                    data[at + 8 : at + 16] = struct.pack(">II", draw(side), draw(side))
            case "box size" if top:
                offset, _, _ = draw(st.sampled_from(top))
                data[offset : offset + 4] = struct.pack(
                    ">I", draw(st.sampled_from([0, 1, 7, 8, 2**31, len(data)]))
                )
            case "drop box" if len(top) > 1:
                offset, size, _ = draw(st.sampled_from(top[1:]))
                del data[offset : offset + size]
            case "duplicate box" if top:
                offset, size, _ = draw(st.sampled_from(top))
                data[offset:offset] = data[offset : offset + size]
            case "brand":
                data[8:12] = draw(
                    st.sampled_from([b"heic", b"mif1", b"avif", b"isom", b"heix", b"\x00\x00\x00\x00"])
                )
            case "meta flip":
                meta = data.find(b"meta")
                if meta != -1:
                    where = draw(st.integers(meta, min(len(data), meta + 600) - 1))
                    data[where] = draw(st.integers(0, 255))
            case _:
                del data[draw(st.integers(12, len(data))) :]
    return bytes(data)


@fuzz_settings(CASES["image: HEIC boxes"])
@given(data=st.data())
def test_heic_with_damaged_boxes_is_answered(seeds: dict[str, bytes], data: st.DataObject) -> None:
    """A HEIC with its image size, box sizes, boxes, brand or item metadata damaged, or cut short, is answered."""
    check(data.draw(mutated_heic(seeds["heic"])))


# ---- huge headers, random bodies ----------------------------------------------------------------------

huge = st.integers(2_001, 2**16 - 1)


@st.composite
def claiming_huge_size(draw: st.DrawFn) -> bytes:
    """A small file of any format whose header claims more than the pixel limit (a decompression bomb)."""
    width, height = draw(huge), draw(huge)
    match draw(st.sampled_from(["jpeg", "png", "webp", "vp8l", "heic"])):
        case "jpeg":
            tables = jpeg_segments(make_jpeg(16, 16))
            resized = [(m, frame_header(width, height) if m in (0xC0, 0xC2) else p) for m, p in tables]
            return jpeg_bytes(resized)
        case "png":
            header = struct.pack(">IIBBBBB", width * draw(st.integers(1, 2**15)), height, 8, 2, 0, 0, 0)
            idat = zlib.compress(b"\x00" * draw(st.integers(0, 4096)))
            return png_bytes([(b"IHDR", header), (b"IDAT", idat), (b"IEND", b"")])
        case "webp":
            vp8 = riff_chunks(make_webp(16, 16))[0]
            return riff_bytes([(b"VP8X", canvas(0, width * 256, height)), vp8])
        case "vp8l":
            packed = ((min(width, 16384) - 1) | ((min(height, 16384) - 1) << 14)).to_bytes(4, "little")
            return riff_bytes([(b"VP8L", b"\x2f" + packed + draw(st.binary(max_size=64)))])
        case _:
            heic = bytearray(make_heic(16, 16))
            at = heic.find(b"ispe")
            heic[at + 8 : at + 16] = struct.pack(">II", width, height)
            return bytes(heic)


@fuzz_settings(CASES["image: huge declared dimensions"])
@given(data=claiming_huge_size())
def test_a_header_claiming_a_huge_image_is_refused_quickly(data: bytes) -> None:
    """A small file whose header claims more pixels than the limit is refused, never decoded or accepted."""
    assert isinstance(check(data), Rejected)


valid_headers = st.sampled_from(
    [
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
        b"\xff\xd8\xff\xdb\x00\x43\x00",
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0),
        b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        b"RIFF\x00\x10\x00\x00WEBPVP8L",
        b"RIFF\x00\x10\x00\x00WEBPVP8X\x0a\x00\x00\x00\x10\x00\x00\x00\x1f\x00\x00\x1f\x00\x00",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf",
    ]
)


@fuzz_settings(CASES["image: random bytes after a valid header"])
@given(header=valid_headers, body=st.binary(max_size=4096))
def test_a_valid_header_with_random_bytes_after_it_is_answered(header: bytes, body: bytes) -> None:
    """A file that starts exactly like a photo and continues with random bytes is answered, not raised."""
    check(header + body)
