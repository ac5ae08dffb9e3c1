"""The leak scanner: generated photos, numbers and keys it must find, and look-alikes it must leave alone."""

from __future__ import annotations

import base64
import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.cli import main
from bot.images import CleanPhoto, Limits, process_photo
from bot.keyring import MasterKey, create_master_key_file
from bot.leak_scan import (
    Finding,
    FindingKind,
    MasterKeyNeedles,
    scan_bytes,
    scan_file,
    scan_log_line,
    scan_log_text,
    scan_paths,
)
from bot.matrix.attachments import encrypt_attachment
from bot.nhs_number import with_check_digit
from tests.unit.image_factory import make_heic, make_jpeg, make_png, make_webp

NHS_NUMBER = "943 476 5919"  # a valid check digit, in the issued English range: synthetic, not a person's
TEST_NHS_NUMBER = "999 765 4323"
KEY = MasterKey(key_id="mk-0000abcd", secret=bytes(range(7, 39)))
OTHER_KEY = MasterKey(key_id="mk-0000dcba", secret=bytes(range(50, 82)))


def _noise(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 (reproducible filler, not a secret)


def _embedded(payload: bytes, before: int = 3001, after: int = 2003) -> tuple[bytes, int]:
    """`payload` between random bytes, as it would sit inside a database page or a log; and its offset."""
    return _noise(before) + payload + _noise(after, seed=2), before


def _kinds(data: bytes, keys: tuple[MasterKeyNeedles, ...] = ()) -> list[FindingKind]:
    return [kind for _, kind in scan_bytes(data, keys)]


def _without_app0(jpeg: bytes) -> bytes:
    """A JPEG whose first segment is its quantisation table (as some encoders write it)."""
    assert jpeg[2:4] == b"\xff\xe0"
    return jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big") :]


def _exif_first(jpeg: bytes) -> bytes:
    """A JPEG that starts with an Exif APP1 segment (as phone cameras write it)."""
    exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"
    return jpeg[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + _without_app0(jpeg)[2:]


def _stored_version(jpeg: bytes) -> bytes:
    result = process_photo(jpeg, Limits(min_side=16))
    assert isinstance(result, CleanPhoto)
    return result.data


PHOTOS: dict[str, tuple[Callable[[], bytes], FindingKind]] = {
    "jpeg": (lambda: make_jpeg(64, 48), FindingKind.JPEG_IMAGE),
    "jpeg, Exif first": (lambda: _exif_first(make_jpeg(64, 48)), FindingKind.JPEG_IMAGE),
    "jpeg, tables first": (lambda: _without_app0(make_jpeg(64, 48)), FindingKind.JPEG_IMAGE),
    "progressive jpeg": (lambda: make_jpeg(64, 48, progressive=True), FindingKind.JPEG_IMAGE),
    "jpeg as stored": (lambda: _stored_version(make_jpeg(64, 48, gps=True)), FindingKind.JPEG_IMAGE),
    "png": (lambda: make_png(64, 48), FindingKind.PNG_IMAGE),
    "webp": (lambda: make_webp(64, 48), FindingKind.WEBP_IMAGE),
    "lossless webp": (lambda: make_webp(64, 48, lossless=True), FindingKind.WEBP_IMAGE),
    "extended webp": (lambda: make_webp(64, 48, xmp=True), FindingKind.WEBP_IMAGE),
    "heic": (lambda: make_heic(64, 48), FindingKind.HEIF_IMAGE),
}


@pytest.mark.parametrize("name", list(PHOTOS))
def test_a_photo_in_clear_is_found_where_it_starts(name: str) -> None:
    """A photo of any accepted format lying in clear inside other bytes is reported at its first byte."""
    make, kind = PHOTOS[name]
    data, offset = _embedded(make())
    assert (offset, kind) in scan_bytes(data)


@pytest.mark.parametrize(
    "look_alike",
    [
        b"\xff\xd8\xff" + _noise(64),  # a start-of-image marker and nothing of a JPEG after it
        b"\xff\xd8\xff\xe0\x00\x10NOTJFIF\x00\x00\x00\x00\x00\x00\x00\x00\x00" + _noise(64),
        b"\xff\xd8\xff\xdb\xff\xff" + _noise(64),  # a table whose length runs past what follows
        b"\xff\xd8\xff" * 20,
        b"\x89PNG\r\n\x1a\n" + _noise(32),  # the signature without an IHDR chunk
        b"RIFF\x24\x00\x00\x00WAVEfmt " + _noise(32),  # a RIFF file that is not WebP
        b"\x00\x00\x00\x18ftypisom" + _noise(32),  # an MP4 video, not a HEIF image
        b"\x7f\xff\x00\x00ftypheic" + _noise(32),  # a HEIF brand with an impossible box size
    ],
)
def test_headers_that_only_look_like_photos_are_not_reported(look_alike: bytes) -> None:
    """Two magic bytes are not a photo: fragments without the format's structure are left alone."""
    data, _ = _embedded(look_alike)
    assert scan_bytes(data) == []


def test_encrypted_photos_and_random_bytes_give_no_chance_hits() -> None:
    """Ciphertext of every format, and 8 MB of random bytes, hold nothing the scanner reports."""
    photos = [make() for make, _ in PHOTOS.values()]
    ciphertext = b"".join(encrypt_attachment(photo).ciphertext for photo in photos)
    assert scan_bytes(ciphertext + _noise(8 * 1024 * 1024), (MasterKeyNeedles.of(KEY),)) == []


@pytest.mark.parametrize(
    "text",
    [
        NHS_NUMBER,
        NHS_NUMBER.replace(" ", ""),
        NHS_NUMBER.replace(" ", "-"),
        TEST_NHS_NUMBER,
        f'{{"body": "{NHS_NUMBER}"}}',
        f"NHS:{NHS_NUMBER.replace(' ', '')}.",
        f"nhs{NHS_NUMBER.replace(' ', '')}",  # glued to a letter, as Synapse's search index holds it
        f"a{NHS_NUMBER.replace(' ', '')}f",
        f"x{NHS_NUMBER.replace(' ', '-')}y",
        f"mynhsnumberis{NHS_NUMBER.replace(' ', '')}thankyou",  # a long lower-case word is typed text
    ],
)
def test_an_nhs_number_as_a_patient_types_it_is_found(text: str) -> None:
    """Ten digits with a valid check digit, grouped 3-3-4 or not, glued to letters or not, in ASCII or UTF-16,
    are reported."""
    for encoded in (text.encode(), text.encode("utf-16-le")):
        data, offset = _embedded(b" " + encoded + b" ")
        assert _kinds(data) == [FindingKind.NHS_NUMBER], encoded
        assert scan_bytes(data)[0][0] >= offset


@pytest.mark.parametrize(
    "text",
    [
        "943 476 5918",  # wrong check digit
        "9434765910",  # wrong check digit
        "19434765919",  # part of a longer number
        "94347659190",
        "0123456789abcdef9434765919abcdef",  # inside a hexadecimal id (a digest, a transaction id)
        "pb9434765919c0ffee0123456789abcd",
        "AbCdEfGhIjKl9434765919MnOpQrStUv",  # inside a base64 id
        "<SynapseRequest at 0x7f7313679890 method='GET'>",  # an address in Synapse's log (passes the check)
        "photobot-audit-genesis-v161e6fdf6300240231e39d9f8e6b9aa6",  # a MAC glued to the column before it
        '{"txn_id":"32d44ff8-8a5c-4f81-afa9-d1391156757c"}',  # a client's transaction id (a UUID)
        "42e9df03-69e0-4e5e-81af-4c3345328887",
        "943 476-5919",  # mixed separators
        "07700 900123",  # a phone number
        "943 4765 919",  # not grouped 3-3-4
        "2024-01-02 03:04:05,123",  # a log time stamp
    ],
)
def test_numbers_that_are_not_nhs_numbers_are_not_reported(text: str) -> None:
    """Wrong check digits, longer runs, digits inside long hexadecimal ids and other groupings are left alone."""
    data, _ = _embedded(b" " + text.encode() + b" ")
    assert _kinds(data) == []


def _glued_microseconds() -> str:
    """Six digits of microseconds that, followed by the year 2026, pass the Modulus 11 check."""
    return next(f"{n:06d}" for n in range(10**6) if with_check_digit(f"{n:06d}202") == f"{n:06d}2026")


def test_ten_digits_made_by_two_timestamps_side_by_side_are_not_reported() -> None:
    """Two time stamps in neighbouring SQLite columns ('...09.763263' then '2026-11-22...') are not a number,
    though their digits pass the check; the same ten digits on their own are."""
    digits = _glued_microseconds() + "2026"
    seam = f"2026-11-22 01:19:09.{digits}-11-22 01:19:16.723122".encode()
    assert _kinds(_embedded(seam)[0]) == []
    assert _kinds(_embedded(f" {digits} ".encode())[0]) == [FindingKind.NHS_NUMBER]


@pytest.mark.parametrize(
    "form",
    [
        KEY.secret,
        base64.b64encode(KEY.secret),
        base64.b64encode(KEY.secret).rstrip(b"="),
        base64.urlsafe_b64encode(KEY.secret),
        KEY.secret.hex().encode(),
    ],
)
def test_the_master_key_secret_is_found_in_any_encoding(form: bytes) -> None:
    """The master key, raw, in base64 (standard or URL-safe) or hex, is reported; another key's is not."""
    data, offset = _embedded(form)
    assert scan_bytes(data, (MasterKeyNeedles.of(KEY),)) == [(offset, FindingKind.MASTER_KEY)]
    assert scan_bytes(data, (MasterKeyNeedles.of(OTHER_KEY),)) == []


def test_a_copy_of_a_master_key_file_is_found_without_knowing_the_key() -> None:
    """A master key file's line anywhere (a backup in the wrong place, a log) is key material."""
    line = b"photobot-master-key v1 mk-0000abcd " + base64.b64encode(OTHER_KEY.secret) + b"\n"
    data, offset = _embedded(line)
    assert scan_bytes(data) == [(offset, FindingKind.MASTER_KEY)]


def test_an_unencrypted_pem_private_key_is_found_but_not_an_encrypted_one_or_a_public_key() -> None:
    """A PEM private key in clear is reported; an encrypted private key and a public key are not."""
    private = Ed25519PrivateKey.generate()
    clear = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    locked = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"a passphrase"),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert _kinds(_embedded(clear)[0]) == [FindingKind.PEM_PRIVATE_KEY]
    assert _kinds(_embedded(locked + public)[0]) == []


def test_an_attachment_key_in_json_or_a_python_repr_is_found() -> None:
    """The JSON Web Key that decrypts a Matrix attachment is reported, in JSON and as a Python dict."""
    content = encrypt_attachment(b"photo bytes").file_content("mxc://example.org/AbCdEf")
    for text in (json.dumps(content), repr(content)):
        assert _kinds(_embedded(text.encode())[0]) == [FindingKind.ATTACHMENT_KEY], text[:20]


def test_a_k_field_that_is_not_an_attachment_key_is_not_reported() -> None:
    """A "k" of the right length in JSON that is not an AES-CTR key, or a shorter "k", is left alone."""
    other = json.dumps({"kind": "token", "k": "A" * 43})
    short = json.dumps({"kty": "oct", "alg": "A256CTR", "k": "A" * 42})
    assert _kinds(_embedded(other.encode() + short.encode())[0]) == []


# ---- files and directories ---------------------------------------------------------------------------


def test_an_nhs_number_in_a_search_index_built_as_synapse_builds_it_is_found(tmp_path: Path) -> None:
    """A message that is only an NHS number, indexed in an FTS4 table made as Synapse makes it on SQLite,
    is found: SQLite writes it glued to the previous column's "content.body"."""
    path = tmp_path / "homeserver.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute(
            "CREATE VIRTUAL TABLE event_search USING fts4 (tokenize=porter, event_id, room_id, sender, key, value)"
        )
        row = (
            "$AbCdEfGhIjKl",
            "!MnOpQrStUv",
            "@patient:localhost",
            "content.body",
            NHS_NUMBER.replace(" ", ""),
        )
        connection.execute("INSERT INTO event_search VALUES (?, ?, ?, ?, ?)", row)
        connection.commit()
    finally:
        connection.close()
    data = path.read_bytes()
    assert b"content.body" + NHS_NUMBER.replace(" ", "").encode() in data  # glued, as the issue saw it
    assert {f.kind for f in scan_paths([tmp_path]).findings} == {FindingKind.NHS_NUMBER}


def test_sqlite_databases_and_their_wal_files_are_scanned_as_raw_bytes(tmp_path: Path) -> None:
    """A photo and a number written to SQLite are found in the WAL before a checkpoint, then in the file."""
    path = tmp_path / "bot.sqlite3"
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (note TEXT, image BLOB)")
        connection.commit()
        connection.execute("INSERT INTO t VALUES (?, ?)", (f"number {NHS_NUMBER}", make_png(32, 32)))
        connection.commit()
        in_wal = {(f.path.name, f.kind) for f in scan_paths([tmp_path]).findings}
        assert in_wal >= {
            ("bot.sqlite3-wal", FindingKind.NHS_NUMBER),
            ("bot.sqlite3-wal", FindingKind.PNG_IMAGE),
        }
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        in_file = {(f.path.name, f.kind) for f in scan_paths([tmp_path]).findings}
        assert in_file == {("bot.sqlite3", FindingKind.NHS_NUMBER), ("bot.sqlite3", FindingKind.PNG_IMAGE)}
    finally:
        connection.close()


def test_a_finding_across_a_chunk_boundary_is_reported_once(tmp_path: Path) -> None:
    """A number and a photo that straddle the boundary between two reads are each reported exactly once."""
    chunk = 4096
    jpeg = make_jpeg(64, 48)
    number = f" {NHS_NUMBER} ".encode()
    path = tmp_path / "big"
    path.write_bytes(_noise(chunk - 5) + number + _noise(chunk - 7) + jpeg + _noise(3 * chunk))
    findings = scan_file(path, chunk_bytes=chunk, overlap_bytes=jpeg.__len__() + 64)
    assert [(f.offset, f.kind) for f in findings] == [
        (chunk - 4, FindingKind.NHS_NUMBER),
        (2 * chunk - 12 + len(number), FindingKind.JPEG_IMAGE),
    ]


def test_the_master_key_file_is_allowed_and_its_key_is_found_everywhere_else(tmp_path: Path) -> None:
    """In a data directory, master.key itself is not a finding; its secret in any other file is."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = create_master_key_file(data_dir / "master.key")
    (data_dir / "notes.txt").write_bytes(b"backup: " + base64.b64encode(key.secret) + b"\n")
    report = scan_paths([data_dir])
    assert [(f.path.name, f.kind) for f in report.findings] == [("notes.txt", FindingKind.MASTER_KEY)]


def test_the_key_files_of_a_rotation_in_progress_are_allowed_but_a_copy_elsewhere_is_not(
    tmp_path: Path,
) -> None:
    """master.key.next and master.key.previous, kept by a running key rotation, are key files; the new key
    copied anywhere else is a finding."""
    create_master_key_file(tmp_path / "master.key")
    new = create_master_key_file(tmp_path / "master.key.next")
    create_master_key_file(tmp_path / "master.key.previous")
    (tmp_path / "rotation-backup.key").write_bytes((tmp_path / "master.key.next").read_bytes())
    (tmp_path / "notes").write_bytes(b"new key " + new.secret.hex().encode())
    findings = scan_paths([tmp_path]).findings
    assert sorted((f.path.name, f.kind) for f in findings) == [
        ("notes", FindingKind.MASTER_KEY),
        ("rotation-backup.key", FindingKind.MASTER_KEY),
        ("rotation-backup.key", FindingKind.MASTER_KEY),
    ]


def test_a_master_key_file_named_on_the_command_line_is_looked_for_in_the_scanned_paths(
    tmp_path: Path,
) -> None:
    """A key kept outside the scanned directory is found in it when its file is named with --master-key."""
    key_dir, scanned = tmp_path / "keys", tmp_path / "scanned"
    key_dir.mkdir()
    scanned.mkdir()
    key = create_master_key_file(key_dir / "practice.key")
    (scanned / "dump").write_bytes(_noise(100) + key.secret + _noise(100))
    assert scan_paths([scanned]).findings == ()
    assert [f.kind for f in scan_paths([scanned], [key_dir / "practice.key"]).findings] == [
        FindingKind.MASTER_KEY
    ]


def test_with_the_key_file_named_a_copy_called_master_key_elsewhere_is_found(tmp_path: Path) -> None:
    """Naming the key file makes any other master.key a finding, such as one copied into a backup."""
    data_dir, backup = tmp_path / "data", tmp_path / "backup"
    data_dir.mkdir()
    backup.mkdir()
    create_master_key_file(data_dir / "master.key")
    (backup / "master.key").write_bytes((data_dir / "master.key").read_bytes())
    (backup / "master.key").chmod(0o600)
    assert scan_paths([tmp_path]).findings == ()  # without a named key, both look like key files
    findings = scan_paths([tmp_path], [data_dir / "master.key"]).findings
    assert {(f.path, f.kind) for f in findings} == {(backup / "master.key", FindingKind.MASTER_KEY)}


def test_a_world_readable_master_key_file_is_reported(tmp_path: Path) -> None:
    """A master key file that others can read is not the protected key file: it is reported."""
    create_master_key_file(tmp_path / "master.key")
    (tmp_path / "master.key").chmod(0o644)
    assert [(f.path.name, f.kind) for f in scan_paths([tmp_path]).findings] == [
        ("master.key", FindingKind.MASTER_KEY)
    ]


def test_the_command_exits_zero_when_clean_and_one_with_findings_never_printing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`photobot leak-scan` exits 0 on clean files; with findings it exits 1 and names where and what
    kind, never the content."""
    (tmp_path / "vault-file").write_bytes(encrypt_attachment(make_jpeg(64, 48)).ciphertext)
    assert main(["leak-scan", str(tmp_path)]) == 0
    assert "0 finding(s)" in capsys.readouterr().out

    (tmp_path / "stray.txt").write_text(f"patient {NHS_NUMBER}\n")
    assert main(["leak-scan", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'stray.txt'}: offset 8: nhs_number" in out
    assert "943" not in out.replace(str(tmp_path), "")


def test_the_command_checks_a_log_line_by_line_and_refuses_a_missing_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--log holds a log to the stricter rule (no media URL); a path that does not exist exits 2."""
    log = tmp_path / "bot.log"
    log.write_text("INFO started\nINFO downloading mxc://example.org/AbCdEfGh\n")
    assert main(["leak-scan", str(tmp_path)]) == 0
    assert main(["leak-scan", "--log", str(log), str(tmp_path)]) == 1
    assert "line 2: media_url" in capsys.readouterr().out
    assert main(["leak-scan", str(tmp_path / "missing")]) == 2


# ---- log lines ---------------------------------------------------------------------------------------

_JWK = encrypt_attachment(b"photo").file_content("mxc://example.org/AbCdEfGhIjKl")


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (f"INFO patient said {NHS_NUMBER}", FindingKind.NHS_NUMBER),
        ("INFO purging mxc://localhost/AbCdEfGhIjKlMnOp", FindingKind.MEDIA_URL),
        ("GET /_matrix/client/v1/media/download/localhost/AbCdEfGh failed", FindingKind.MEDIA_URL),
        ("DELETE /_synapse/admin/v1/media/localhost/AbCdEfGh answered 500", FindingKind.MEDIA_URL),
        (f"file {_JWK['key']!r}", FindingKind.ATTACHMENT_KEY),
        (f"content {json.dumps(_JWK)}", FindingKind.ATTACHMENT_KEY),
        ("decrypting with 'key': {'kty': 'oct'}", FindingKind.ATTACHMENT_KEY),
        (f"key {_JWK['key']['k']}", FindingKind.ATTACHMENT_KEY),
        (f"key {base64.b64encode(bytes(range(3, 35))).decode()}", FindingKind.ATTACHMENT_KEY),
        ("got RoomEncryptedImage(source={'type': 'm.room.message'}, sender='@p:x')", FindingKind.EVENT_REPR),
        ("event RoomMessageText(source={}, sender='@p:x', body='hello')", FindingKind.EVENT_REPR),
        ("sync SyncResponse(next_batch='s1_2', rooms=...)", FindingKind.EVENT_REPR),
        ("MegolmEvent(sender='@p:x')", FindingKind.EVENT_REPR),
        ("the event had source={'content': {}}", FindingKind.EVENT_REPR),
    ],
)
def test_a_log_line_with_patient_data_keys_or_event_reprs_is_reported(line: str, kind: FindingKind) -> None:
    """Each thing a log line must never carry is reported as its kind."""
    assert kind in scan_log_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-22 00:29:31,123 INFO bot.app: the bot is serving",
        "2026-11-22 00:29:31,123 INFO handlers.patient: expired 2 idle conversations",
        "2026-11-22 00:29:31,123 ERROR handlers.router: handling an event failed (ref K7QF)",
        "Traceback (most recent call last):",
        '  File "/tmp/pytest-of-someone/pytest-12/test_a_photo_interrupted_by_a_crash0/photobot1x3af2b1/'
        'store/x.py", line 88, in _photo',
        "    stop = asyncio.Event()",
        "OSError: [Errno 28] No space left on device (fault injected at before_vault_write)",
        "handled $AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfG in !AbCdEfGhIjKlMnOpQr:localhost",
        "TextMessage(event_id='$e1', room_id='!r:x', sender='@p:x', timestamp_ms=1732233012345)",
        "Created the master key mk-1a2b3c4d at /srv/photobot/master.key (mode 0600). Back it up.",
        "the homeserver is not reachable (GET /_matrix/client/v3/sync could not reach the homeserver)",
        "patient number <number removed>, media mxc://<removed>",
    ],
)
def test_ordinary_log_lines_are_not_reported(line: str) -> None:
    """What the bot does log (times, references, paths, ids, errors, scrubbed values) is left alone."""
    assert scan_log_line(line) == []


def test_log_findings_name_the_line_not_the_content() -> None:
    """A log's findings carry the line number and kind; the printed finding holds no patient data."""
    text = "INFO started\nINFO ok\nINFO " + NHS_NUMBER + " and mxc://x/y\n"
    findings = scan_log_text(text, Path("bot.log"))
    assert findings == [
        Finding(Path("bot.log"), 21, FindingKind.MEDIA_URL, line=3),
        Finding(Path("bot.log"), 21, FindingKind.NHS_NUMBER, line=3),
    ]
    assert all("943" not in str(finding) and "mxc" not in str(finding) for finding in findings)
