"""The leak scanner: after any run, proves that nothing lies in clear where it should not.

`photobot leak-scan [--master-key FILE] [--log FILE] PATH...` walks every file under the paths (SQLite
databases, their WAL and journal files, vault files, temp files, logs: all read as raw bytes) and reports
each finding as path, byte offset and kind, never the matched bytes themselves. Exit status 0 means clean,
1 findings, 2 something could not be scanned (unreadable file, unusable master key file).

What it looks for (`FindingKind`), and how it tells a real hit from chance bytes in ciphertext
    JPEG_IMAGE      a start-of-image marker followed by JPEG structure: either an identifying first
                    segment (JFIF, Exif, ICC_PROFILE, Adobe, XMP) or two well-formed segments in a row
                    (markers from the JPEG set, lengths that chain). FF D8 FF alone turns up by chance
                    about once per 16 MB of ciphertext; with the structure, about once per 70 TB.
    PNG_IMAGE       the 8-byte PNG signature followed by an IHDR chunk header of length 13 (16 fixed bytes).
    WEBP_IMAGE      "RIFF", 4 size bytes, "WEBP" and a "VP8 ", "VP8L" or "VP8X" chunk.
    HEIF_IMAGE      an ISO-BMFF "ftyp" box with a HEIF/AVIF brand whose size field is a plausible small
                    box size (16 to 512, a multiple of 4).
    NHS_NUMBER      ten ASCII (or UTF-16-LE) digits, optionally grouped 3-3-4 with spaces or dashes, passing
                    the Modulus 11 check, not inside a longer run of digits, whatever character comes before
                    or after: Synapse's search index and SQLite's neighbouring columns glue text to letters
                    ("nhs9434765919"), and the check digit keeps chance hits down (1 in 11 of random runs).
                    Two kinds of run are not something a patient typed and are left out: ten undivided
                    digits inside a random id: 24 or more hexadecimal characters (a digest, a MAC or a
                    transaction id, which would otherwise give a chance hit about once per thousand ids),
                    a "0x" hexadecimal literal (an object's address in a homeserver's log), or 24 or more
                    id characters mixing upper and lower case (a base64 id); and a run glued to an ISO
                    timestamp (fractional seconds before it, or "-MM-DD" after it).
    MASTER_KEY      the practice's master key secret (raw, standard or URL-safe base64, or hex), or a
                    master key file's line, anywhere but the master key file itself.
    PEM_PRIVATE_KEY an unencrypted PEM private key block ("-----BEGIN ... PRIVATE KEY-----").
    ATTACHMENT_KEY  a JSON Web Key of a Matrix attachment: a "k" of 43 base64url characters in an
                    object that says "oct" or "A256CTR". With the media URL, it decrypts a patient's photo.
    nio's "olm" and "megolm" pickles are encrypted (with the pickle key derived from the master key) and are
    not looked for.

Log lines (`scan_log_text`, `--log FILE`) are held to a stricter rule: besides NHS numbers and attachment
keys they must not carry a media URL (MEDIA_URL: mxc:// or a media download, thumbnail or admin-deletion
path), any base64 string the size of a 32-byte key (ATTACHMENT_KEY; a "key": {...} object counts too), or
the repr of a nio event or response (EVENT_REPR: `RoomMessageText(source=...`), which carries both.

Allow-list: only the master key files themselves may hold the master key (the bot cannot start without
reading it; the operator protects it with mode 0600 and a separate backup). They are the files given with
`--master-key` or, when none is given, files named `master.key` in the scanned directories that load as a
valid, private master key file (a world-readable one is not allowed and is reported); with each, the
`.next` and `.previous` key files a key rotation keeps beside it while it runs. Name the key file to check
that no copy of it lies anywhere in the scanned paths, not even one named master.key (in a backup, say).
Nothing else is allowed by design: the configuration (the .env file, Synapse's homeserver.yaml and signing
key) holds secrets of other kinds (access tokens, the registration secret) that the scanner does not look
for, and no image, NHS number or attachment key belongs in clear anywhere.
"""

from __future__ import annotations

import base64
import inspect
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import nio

from bot.key_rotation import next_key_path, previous_key_path
from bot.keyring import MasterKey, MasterKeyError, load_master_key_file
from bot.nhs_number import with_check_digit

MASTER_KEY_FILE_NAME = "master.key"
# With a rotation's new and old key files beside it, while `photobot key rotate` runs: master key files too.
_KEY_FILE_NAMES = frozenset(
    [
        MASTER_KEY_FILE_NAME,
        next_key_path(Path(MASTER_KEY_FILE_NAME)).name,
        previous_key_path(Path(MASTER_KEY_FILE_NAME)).name,
    ]
)

# Files are read in chunks; each chunk also sees this much of the next one, so a JPEG's first segments
# (at most 64 KiB each) and any needle that straddles a chunk boundary are still seen whole.
CHUNK_BYTES = 16 * 1024 * 1024
OVERLAP_BYTES = 256 * 1024
_CONTEXT_BYTES = 16  # bytes before a chunk, so that a match's left boundary can be checked


class FindingKind(Enum):
    JPEG_IMAGE = "jpeg_image"
    PNG_IMAGE = "png_image"
    WEBP_IMAGE = "webp_image"
    HEIF_IMAGE = "heif_image"
    NHS_NUMBER = "nhs_number"
    MASTER_KEY = "master_key"
    PEM_PRIVATE_KEY = "pem_private_key"
    ATTACHMENT_KEY = "attachment_key"
    MEDIA_URL = "media_url"
    EVENT_REPR = "event_repr"


@dataclass(frozen=True)
class Finding:
    """Where something was found and what it is; never the content itself."""

    path: Path
    offset: int
    kind: FindingKind
    line: int | None = None  # for a log checked line by line

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"offset {self.offset}"
        return f"{self.path}: {where}: {self.kind.value}"


@dataclass(frozen=True)
class ScanReport:
    findings: tuple[Finding, ...]
    problems: tuple[str, ...]  # files that could not be scanned, and why
    files: int
    bytes: int
    master_keys: tuple[MasterKeyNeedles, ...] = field(default=(), repr=False)  # what was looked for

    @property
    def exit_code(self) -> int:
        if self.findings:
            return 1
        return 2 if self.problems else 0


# ---- what to look for, in bytes ------------------------------------------------------------------------

_PNG = re.compile(rb"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
_WEBP = re.compile(rb"RIFF[\x00-\xff]{4}WEBPVP8[ LX]")
_HEIF = re.compile(rb"ftyp(?:heic|heix|hevc|hevx|heim|heis|hevm|hevs|mif1|msf1|avif|avis)")
_JPEG_SOI = re.compile(rb"\xff\xd8\xff")
_PEM = re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----")
_MASTER_KEY_LINE = re.compile(rb"photobot-master-key v[0-9]{1,3} mk-[0-9a-f]{8} [A-Za-z0-9+/]{43}=")
_JWK_K = re.compile(rb"""["']k["']\s*:\s*["'][A-Za-z0-9_-]{43}=?["']""")
_JWK_CONTEXT = re.compile(rb"""["']oct["']|A256CTR""")
_NHS_ASCII = re.compile(rb"(?<![0-9])([0-9]{3})([ -]?)([0-9]{3})\2([0-9]{4})(?![0-9])")
_NHS_UTF16 = re.compile(
    rb"(?<![0-9]\x00)((?:[0-9]\x00){3})((?:[ -]\x00)?)((?:[0-9]\x00){3})\2((?:[0-9]\x00){4})"
    rb"(?![0-9]\x00)"
)
_ID_LENGTH = 24  # a run of id characters this long around ten undivided digits may be a random id
_ID_CHARS = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_HEX_PREFIXES = frozenset({b"0x", b"0X", b"0\x00x\x00", b"0\x00X\x00"})
_HEX_OR_DASH = _HEX | frozenset(b"-")
# A UUID (8-4-4-4-12 hexadecimal digits): Matrix clients' transaction ids, which Synapse keeps. About 1 in 1,400
# random UUIDs holds ten digits with a valid check digit between two of its letters.
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# JPEG markers that may follow SOI or another segment: C0-CF (the frame headers SOFn, with DHT at C4 and DAC
# at CC; not JPG at C8), DQT, DRI, APPn and COM; and SOS, which starts the entropy-coded data.
_JPEG_SEGMENT_MARKERS = frozenset([*range(0xC0, 0xD0), 0xDB, 0xDD, *range(0xE0, 0xF0), 0xFE]) - frozenset(
    [0xC8]
)
_JPEG_SOS = 0xDA
_JPEG_IDENTIFIERS: Mapping[int, tuple[bytes, ...]] = {
    0xE0: (b"JFIF\x00", b"JFXX\x00"),
    0xE1: (b"Exif\x00\x00", b"http://ns.adobe.com/"),
    0xE2: (b"ICC_PROFILE\x00", b"MPF\x00"),
    0xEE: (b"Adobe",),
}


def _jpeg_structure_at(data: bytes, soi: int) -> bool:
    """Whether the SOI at `soi` starts real JPEG structure (see the module docstring)."""
    pos = soi + 2
    segments = 0
    while segments < 3 and pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == _JPEG_SOS:
            return segments >= 1
        if marker not in _JPEG_SEGMENT_MARKERS:
            return False
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return False
        payload = data[pos + 4 : pos + 2 + length]
        if segments == 0 and marker in _JPEG_IDENTIFIERS:
            if any(payload.startswith(identifier) for identifier in _JPEG_IDENTIFIERS[marker]):
                return True
            if marker in (0xE0, 0xE1):
                return False  # an APP0 or APP1 without its identifier is not what an encoder writes
        segments += 1
        pos += 2 + length
    return segments >= 2


def _in_aes_ctr_key(data: bytes, k: re.Match[bytes]) -> bool:
    """Whether the "k" matched lies in a JSON object (or dict repr) that says "oct" or "A256CTR"."""
    opening = data.rfind(b"{", max(0, k.start() - 256), k.start())
    closing = data.find(b"}", k.end(), k.end() + 256)
    if opening == -1 or closing == -1:
        return False
    return _JWK_CONTEXT.search(data, opening, closing) is not None


def _valid_nhs_digits(digits: bytes) -> bool:
    text = digits.decode("ascii")
    return with_check_digit(text[:9]) == text


# Digits become 1 and NUL bytes 2, everything else 0: runs of digits are then found with bytes.find, which
# is some 20 times faster than letting the regular expressions try every position of a large file.
_DIGIT_CLASSES = bytes(1 if 0x30 <= i <= 0x39 else 2 if i == 0 else 0 for i in range(256))
_THREE_ASCII_DIGITS = b"\x01\x01\x01"
_THREE_UTF16_DIGITS = b"\x01\x02\x01\x02\x01\x02"


# SQLite stores neighbouring text columns with nothing between them, so "...01:19:09.763263" followed by
# "2026-11-22 ..." reads as the ten digits 7632632026, bounded by "." and "-". Ten digits that start as a
# time's fractional seconds or end as an ISO date's year are such a seam, not something a patient typed.
_SECONDS_BEFORE = re.compile(rb":[0-5][0-9]\.")
_MONTH_DAY_AFTER = re.compile(rb"-[01][0-9]-[0-3][0-9]")


def _glued_to_a_timestamp(data: bytes, match: re.Match[bytes]) -> bool:
    start = match.start()
    return bool(
        _SECONDS_BEFORE.match(data, max(0, start - 4), start) or _MONTH_DAY_AFTER.match(data, match.end())
    )


def _inside_an_id(data: bytes | str, match: re.Match[bytes] | re.Match[str], width: int = 1) -> bool:
    """Whether ten undivided digits sit inside a random id: a run of 24 or more hexadecimal characters (a
    digest, a MAC, a transaction id), a "0x" hexadecimal literal of any length (an object's address in
    Synapse's log), a UUID (a client's transaction id), or 24 or more id characters mixing upper and lower
    case (a base64 event id). Text a patient typed, even glued to letters in a search index, is none of these."""
    if match.group(2):
        return False  # grouped with spaces or dashes: typed, not an id
    raw = data.encode() if isinstance(data, str) else data

    def span(chars: frozenset[int]) -> tuple[int, int]:
        """The run of `chars` around the digits, as (start, end) offsets."""

        def inside(at: int) -> bool:
            return 0 <= at < len(raw) and raw[at] in chars and (width == 1 or raw[at + 1 : at + 2] == b"\x00")

        start, end = match.start(), match.end()
        while inside(start - width):
            start -= width
        while inside(end):
            end += width
        return start, end

    start, end = span(_HEX)
    if (end - start) // width >= _ID_LENGTH or raw[max(0, start - 2 * width) : start] in _HEX_PREFIXES:
        return True
    if width == 1:
        start, end = span(_HEX_OR_DASH)
        if any(
            u.start() <= match.start() and match.end() <= u.end() for u in _UUID.finditer(raw, start, end)
        ):
            return True
    start, end = span(_ID_CHARS)
    word = raw[start:end:width]
    return len(word) >= _ID_LENGTH and word.lower() != word and word.upper() != word


def _nhs_numbers(data: bytes, start: int, stop: int) -> Iterator[int]:
    """Offsets in data[start:stop] where an NHS number begins (ASCII or UTF-16-LE digits)."""
    classes = data.translate(_DIGIT_CLASSES)
    for run, pattern, width in (
        (_THREE_ASCII_DIGITS, _NHS_ASCII, 1),
        (_THREE_UTF16_DIGITS, _NHS_UTF16, 2),
    ):
        end = stop + len(run) - 1
        if classes.count(run, start, end) * 256 > stop - start:
            # Text full of digits (hex ids, numbers): one pass of the expression beats a call per run.
            candidates: Iterator[re.Match[bytes]] = pattern.finditer(data, start)
        else:
            candidates = _matches_at_runs(data, classes, run, pattern, start=start, end=end, width=width)
        for match in candidates:
            if match.start() >= stop:
                break
            if width == 1 and _glued_to_a_timestamp(data, match):
                continue
            digits = (match.group(1) + match.group(3) + match.group(4))[::width]
            if _valid_nhs_digits(digits) and not _inside_an_id(data, match, width):
                yield match.start()


def _matches_at_runs(
    data: bytes, classes: bytes, run: bytes, pattern: re.Pattern[bytes], *, start: int, end: int, width: int
) -> Iterator[re.Match[bytes]]:
    at = classes.find(run, start, end)
    while at != -1:
        match = pattern.match(data, at)
        if match is not None:
            yield match
            at = classes.find(run, match.end(), end)
        else:
            at = classes.find(run, at + width, end)


def _plausible_heif_box(data: bytes, ftyp: int) -> bool:
    if ftyp < 4:
        return False
    size = int.from_bytes(data[ftyp - 4 : ftyp], "big")
    return 16 <= size <= 512 and size % 4 == 0


@dataclass(frozen=True, repr=False)
class MasterKeyNeedles:
    """The forms in which a master key's secret could be written down, to look for byte by byte."""

    key_id: str
    needles: tuple[bytes, ...]

    @classmethod
    def of(cls, key: MasterKey) -> MasterKeyNeedles:
        secret = key.secret
        forms = [
            secret,
            base64.b64encode(secret)[:43],  # with or without padding
            base64.urlsafe_b64encode(secret)[:43],
            secret.hex().encode(),
            secret.hex().upper().encode(),
        ]
        return cls(key.key_id, tuple(dict.fromkeys(forms)))

    def __repr__(self) -> str:
        return f"MasterKeyNeedles({self.key_id})"


def scan_bytes(
    data: bytes, master_keys: Sequence[MasterKeyNeedles] = (), *, start: int = 0, end: int | None = None
) -> list[tuple[int, FindingKind]]:
    """Every finding whose first byte lies in data[start:end], as (offset in `data`, kind), in order.

    Bytes before `start` and after `end` are context only (a boundary check, the rest of a JPEG segment).
    """
    stop = len(data) if end is None else end
    found: list[tuple[int, FindingKind]] = []

    def matches(pattern: re.Pattern[bytes]) -> Iterator[re.Match[bytes]]:
        for match in pattern.finditer(data, start):
            if match.start() >= stop:
                return
            yield match

    found += [(m.start(), FindingKind.PNG_IMAGE) for m in matches(_PNG)]
    found += [(m.start(), FindingKind.WEBP_IMAGE) for m in matches(_WEBP)]
    found += [
        (m.start() - 4, FindingKind.HEIF_IMAGE)
        for m in matches(_HEIF)
        if _plausible_heif_box(data, m.start())
    ]
    found += [
        (m.start(), FindingKind.JPEG_IMAGE) for m in matches(_JPEG_SOI) if _jpeg_structure_at(data, m.start())
    ]
    found += [(offset, FindingKind.NHS_NUMBER) for offset in _nhs_numbers(data, start, stop)]
    found += [(m.start(), FindingKind.PEM_PRIVATE_KEY) for m in matches(_PEM)]
    found += [(m.start(), FindingKind.ATTACHMENT_KEY) for m in matches(_JWK_K) if _in_aes_ctr_key(data, m)]
    found += [(m.start(), FindingKind.MASTER_KEY) for m in matches(_MASTER_KEY_LINE)]
    for key in master_keys:
        for needle in key.needles:
            at = data.find(needle, start, stop + len(needle) - 1)
            while at != -1:
                found.append((at, FindingKind.MASTER_KEY))
                at = data.find(needle, at + 1, stop + len(needle) - 1)
    return sorted(set(found), key=lambda item: (item[0], item[1].value))


def scan_file(
    path: Path,
    master_keys: Sequence[MasterKeyNeedles] = (),
    *,
    allowed: frozenset[FindingKind] = frozenset(),
    chunk_bytes: int = CHUNK_BYTES,
    overlap_bytes: int = OVERLAP_BYTES,
) -> list[Finding]:
    """The findings in one file, read as raw bytes chunk by chunk. Raises OSError if it cannot be read.

    Each read takes one chunk, a little context before it and `overlap_bytes` after it; a finding is
    reported by the chunk it starts in, so one that straddles a boundary is reported once.
    """
    findings: list[Finding] = []
    with path.open("rb") as handle:
        chunk_start = 0
        while True:
            base = max(0, chunk_start - _CONTEXT_BYTES)
            handle.seek(base)
            wanted = chunk_start - base + chunk_bytes + overlap_bytes
            data = handle.read(wanted)
            own_start = chunk_start - base
            if own_start >= len(data) and chunk_start > 0:
                break
            own_end = min(len(data), own_start + chunk_bytes)
            for offset, kind in scan_bytes(data, master_keys, start=own_start, end=own_end):
                if kind not in allowed:
                    findings.append(Finding(path, base + offset, kind))
            if len(data) < wanted:
                break
            chunk_start += chunk_bytes
    return findings


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under `paths`, in a stable order; symbolic links are not followed."""
    for root in paths:
        if root.is_symlink():
            continue
        if root.is_file():
            yield root
            continue
        for directory, subdirectories, files in os.walk(root):
            subdirectories.sort()
            for name in sorted(files):
                path = Path(directory) / name
                try:
                    mode = path.lstat().st_mode
                except FileNotFoundError:
                    continue  # removed while we walked (a temporary file)
                if stat.S_ISREG(mode):
                    yield path


def _rotation_files(key_file: Path) -> list[Path]:
    """The key files a running `photobot key rotate` keeps beside `key_file` (bot/key_rotation.py)."""
    return [path for path in (next_key_path(key_file), previous_key_path(key_file)) if path.is_file()]


def scan_paths(paths: Sequence[Path], master_key_files: Sequence[Path] = ()) -> ScanReport:
    """Scan every file under `paths`. The master key files are the only allowed holders of the master key;
    their secrets are looked for everywhere else. They are `master_key_files` (and a rotation's .next and
    .previous beside them) or, when none is given, every valid private `master.key` under `paths`; so name
    the key file to check that no copy of it lies elsewhere in the scanned paths (a backup, say).

    Raises MasterKeyError if a master key file that was named explicitly cannot be used.
    """
    problems: list[str] = []
    keys: dict[Path, MasterKey] = {}
    for path in master_key_files:
        keys[path.resolve()] = load_master_key_file(path)
    files_to_scan = list(_walk(paths))
    rotating = [rotation for given in master_key_files for rotation in _rotation_files(given)]
    discovered = [] if master_key_files else [path for path in files_to_scan if path.name in _KEY_FILE_NAMES]
    for path in [*rotating, *discovered]:
        if path.resolve() in keys:
            continue
        try:
            keys[path.resolve()] = load_master_key_file(path)
        except MasterKeyError:
            continue  # not a usable key file: scanned like any other file, so a leaked key is reported
    needles = tuple(MasterKeyNeedles.of(key) for key in keys.values())
    findings: list[Finding] = []
    files = size = 0
    for path in files_to_scan:
        allowed = frozenset([FindingKind.MASTER_KEY]) if path.resolve() in keys else frozenset()
        try:
            findings += scan_file(path, needles, allowed=allowed)
            size += path.stat().st_size
        except FileNotFoundError:
            continue  # removed while we walked (a temporary file): nothing left to leak
        except OSError as error:
            problems.append(f"{path}: cannot be read ({error.strerror})")
            continue
        files += 1
    return ScanReport(tuple(findings), tuple(problems), files, size, needles)


# ---- log lines ------------------------------------------------------------------------------------------


def _nio_class_names() -> frozenset[str]:
    """The names of nio's event and response classes, whose reprs carry event contents."""
    names = set()
    for name, value in vars(nio).items():
        if not inspect.isclass(value) or name.endswith("Mixin"):
            continue
        module = value.__module__
        if module.startswith("nio.events") or (
            module.startswith("nio.responses") and name.endswith("Response")
        ):
            names.add(name)
    return frozenset(names)


_NIO_REPR = re.compile(
    r"\b(?:" + "|".join(sorted(_nio_class_names(), key=len, reverse=True)) + r")\([a-z_]+="
    r"|\bsource=\{"
)
_MEDIA_URL = re.compile(
    r"mxc://[A-Za-z0-9\[]|/_matrix/(?:client/v1|media/v3|media/r0)/(?:media/)?(?:download|thumbnail)/[^/\s]+/\w"
    r"|/_synapse/admin/v1/media/[^/\s]+/\w"
)
_KEY_OBJECT = re.compile(r"""["']key["']\s*:\s*\{""")
_KEY_LIKE = re.compile(r"(?<![A-Za-z0-9+/_$!=-])[A-Za-z0-9+/_-]{43}(?:=|(?![A-Za-z0-9+/_=-]))")
_NHS_TEXT = re.compile(r"(?<![0-9])([0-9]{3})([ -]?)([0-9]{3})\2([0-9]{4})(?![0-9])")


def _looks_like_random_key(token: str) -> bool:
    """A 43-character base64 token that is random, not a path or a word: mixed case, digits, few separators."""
    separators = sum(token.count(ch) for ch in "+/_-")
    return (
        any(ch.isupper() for ch in token)
        and any(ch.islower() for ch in token)
        and any(ch.isdigit() for ch in token)
        and separators <= 6
    )


def scan_log_line(line: str, master_keys: Sequence[MasterKeyNeedles] = ()) -> list[FindingKind]:
    """What a log line must never carry, each kind once, in a stable order."""
    found: set[FindingKind] = set()
    plain = line.encode("ascii", "replace").decode()  # one byte per character, for `_inside_hex_id`
    if any(
        _valid_nhs_digits((m.group(1) + m.group(3) + m.group(4)).encode()) and not _inside_an_id(plain, m)
        for m in _NHS_TEXT.finditer(plain)
    ):
        found.add(FindingKind.NHS_NUMBER)
    if _MEDIA_URL.search(line):
        found.add(FindingKind.MEDIA_URL)
    if _KEY_OBJECT.search(line) or any(
        _looks_like_random_key(m.group()[:43]) for m in _KEY_LIKE.finditer(line)
    ):
        found.add(FindingKind.ATTACHMENT_KEY)
    if _NIO_REPR.search(line):
        found.add(FindingKind.EVENT_REPR)
    found |= {
        kind
        for _, kind in scan_bytes(line.encode("utf-8", errors="replace"), master_keys)
        if kind in (FindingKind.ATTACHMENT_KEY, FindingKind.MASTER_KEY, FindingKind.PEM_PRIVATE_KEY)
    }
    return sorted(found, key=lambda kind: kind.value)


def scan_log_text(text: str, path: Path, master_keys: Sequence[MasterKeyNeedles] = ()) -> list[Finding]:
    """Every finding in a log, line by line; `offset` is the line's character offset in `text`."""
    findings: list[Finding] = []
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        findings += [Finding(path, offset, kind, line=number) for kind in scan_log_line(line, master_keys)]
        offset += len(line)
    return findings


# ---- the command ----------------------------------------------------------------------------------------


def leak_scan_command(
    paths: Sequence[Path], master_key_files: Sequence[Path], logs: Sequence[Path], say: Callable[[str], None]
) -> int:
    """`photobot leak-scan`: print each finding (never its content) and a summary; the exit status."""
    missing = [path for path in [*paths, *logs] if not path.exists()]
    if missing:
        say(f"photobot leak-scan: no such file or directory: {', '.join(map(str, missing))}")
        return 2
    try:
        report = scan_paths(paths, master_key_files)
    except MasterKeyError as error:
        say(f"photobot leak-scan: {error}")
        return 2
    findings = list(report.findings)
    for log in logs:
        findings += scan_log_text(log.read_text(encoding="utf-8", errors="replace"), log, report.master_keys)
    for finding in findings:
        say(str(finding))
    for problem in report.problems:
        say(f"not scanned: {problem}")
    say(
        f"{len(findings)} finding(s); {report.files} file(s), {report.bytes} bytes scanned"
        + (f", {len(logs)} log(s) checked line by line" if logs else "")
        + (f"; {len(report.problems)} file(s) could not be read" if report.problems else "")
        + "."
    )
    if findings:
        return 1
    return report.exit_code
