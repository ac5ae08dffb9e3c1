"""The master key file on a real file system: created safely, never overwritten, refused when unsafe."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.keyring import (
    Keyring,
    MasterKeyError,
    create_master_key_file,
    load_master_key_file,
)

VALID_SECRET_B64 = base64.b64encode(bytes(range(32))).decode()
VALID_LINE = f"photobot-master-key v1 mk-0123abcd {VALID_SECRET_B64}\n"


def _write(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_created_key_file_is_owner_only_and_loads_back(tmp_path: Path) -> None:
    """`init` creates a key file of mode 0600 that loads back as the same key."""
    path = tmp_path / "master.key"
    created = create_master_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_master_key_file(path)
    assert loaded == created
    assert loaded.key_id.startswith("mk-")


@pytest.mark.usefixtures("permissive_umask")
def test_created_key_file_is_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    """A umask of 000 does not make the new key file readable by others."""
    path = tmp_path / "master.key"
    create_master_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_created_key_file_is_one_documented_line(tmp_path: Path) -> None:
    """The key file is one line: header, version, key id, and the base64 secret."""
    path = tmp_path / "master.key"
    key = create_master_key_file(path)
    text = path.read_text(encoding="ascii")
    assert text == f"photobot-master-key v1 {key.key_id} {base64.b64encode(key.secret).decode()}\n"


def test_creation_leaves_no_other_files_behind(tmp_path: Path) -> None:
    """Creating the key file leaves exactly that one file in the directory."""
    create_master_key_file(tmp_path / "master.key")
    assert [entry.name for entry in tmp_path.iterdir()] == ["master.key"]


def test_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    """Running `init` again refuses, and the existing key stays byte for byte the same."""
    path = tmp_path / "master.key"
    create_master_key_file(path)
    before = path.read_bytes()
    with pytest.raises(MasterKeyError, match="already exists"):
        create_master_key_file(path)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["master.key"]


def test_any_existing_file_at_the_key_path_is_left_alone(tmp_path: Path) -> None:
    """Whatever file already sits at the key path, creation refuses and does not touch it."""
    path = _write(tmp_path / "master.key", b"operator's notes", mode=0o644)
    with pytest.raises(MasterKeyError, match="refusing to overwrite"):
        create_master_key_file(path)
    assert path.read_bytes() == b"operator's notes"


def test_dangling_symlink_at_the_key_path_is_not_followed(tmp_path: Path) -> None:
    """A symbolic link at the key path is not followed to create a key file elsewhere."""
    target = tmp_path / "elsewhere.key"
    (tmp_path / "master.key").symlink_to(target)
    with pytest.raises(MasterKeyError):
        create_master_key_file(tmp_path / "master.key")
    assert not target.exists()


def test_creation_in_a_missing_directory_explains(tmp_path: Path) -> None:
    """Creating a key file in a directory that does not exist fails with advice, creating nothing."""
    with pytest.raises(MasterKeyError, match="does not exist"):
        create_master_key_file(tmp_path / "absent" / "master.key")
    assert not (tmp_path / "absent").exists()


def test_missing_key_file_says_run_init_and_creates_nothing(tmp_path: Path) -> None:
    """A missing key file is reported with the advice to run `photobot init`, and nothing is created."""
    path = tmp_path / "master.key"
    with pytest.raises(MasterKeyError, match=r"run `photobot init`") as raised:
        load_master_key_file(path)
    assert str(path) in str(raised.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o606, 0o666])
def test_world_accessible_key_file_is_refused_with_chmod_advice(tmp_path: Path, mode: int) -> None:
    """A key file that other users can read or write is refused, with the exact chmod to run."""
    path = _write(tmp_path / "master.key", VALID_LINE.encode(), mode=mode)
    with pytest.raises(MasterKeyError) as raised:
        load_master_key_file(path)
    assert f"chmod 600 {path}" in str(raised.value)
    assert path.stat().st_mode & 0o777 == mode  # reported, not silently "fixed"


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o660])
def test_group_accessible_key_file_is_refused(tmp_path: Path, mode: int) -> None:
    """A key file that its group can read or write is refused too."""
    path = _write(tmp_path / "master.key", VALID_LINE.encode(), mode=mode)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key_file(path)


def test_owner_read_only_key_file_is_accepted(tmp_path: Path) -> None:
    """A key file made read-only for its owner (0400) loads."""
    path = _write(tmp_path / "master.key", VALID_LINE.encode(), mode=0o400)
    key = load_master_key_file(path)
    assert key.key_id == "mk-0123abcd"
    assert key.secret == bytes(range(32))


def test_key_file_reached_through_a_symlink_loads(tmp_path: Path) -> None:
    """A key file mounted as a symbolic link (as container secrets are) loads from its target."""
    target = _write(tmp_path / "real.key", VALID_LINE.encode())
    link = tmp_path / "master.key"
    link.symlink_to(target)
    assert load_master_key_file(link).key_id == "mk-0123abcd"


def test_directory_at_the_key_path_is_refused(tmp_path: Path) -> None:
    """A directory where the key file should be is refused with a clear message."""
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)
    with pytest.raises(MasterKeyError, match="directory"):
        load_master_key_file(path)


def test_fifo_at_the_key_path_is_refused_without_hanging(tmp_path: Path) -> None:
    """A named pipe at the key path is refused as not a regular file, without blocking start-up."""
    path = tmp_path / "master.key"
    os.mkfifo(path, 0o600)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        load_master_key_file(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, so 'unreadable' cannot happen")
def test_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    """A key file this user cannot read is reported with ownership advice."""
    path = _write(tmp_path / "master.key", VALID_LINE.encode(), mode=0o000)
    with pytest.raises(MasterKeyError, match="cannot be read"):
        load_master_key_file(path)


MALFORMED = {
    "empty": b"",
    "wrong header": VALID_LINE.replace("photobot-master-key", "other-key").encode(),
    "missing key": b"photobot-master-key v1 mk-0123abcd\n",
    "extra field": VALID_LINE.replace("\n", " extra\n").encode(),
    "bad key id": VALID_LINE.replace("mk-0123abcd", "mk-XYZ").encode(),
    "not base64": VALID_LINE.replace(VALID_SECRET_B64, "!" * 44).encode(),
    "short key": f"photobot-master-key v1 mk-0123abcd {base64.b64encode(bytes(16)).decode()}\n".encode(),
    "two lines": (VALID_LINE + VALID_LINE).encode(),
    "crlf": VALID_LINE.replace("\n", "\r\n").encode(),
    "non-ascii": VALID_LINE.replace("v1", "v\uff11").encode(),
    "huge": VALID_LINE.encode() + b"#" * 10_000,
    "double space": VALID_LINE.replace(" v1 ", "  v1 ").encode(),
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_key_file_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    """A key file that is not exactly the documented line is refused, and its content is not echoed."""
    path = _write(tmp_path / "master.key", content)
    with pytest.raises(MasterKeyError, match="not a valid photobot master key file") as raised:
        load_master_key_file(path)
    assert VALID_SECRET_B64 not in str(raised.value)


def test_newer_key_file_version_says_upgrade(tmp_path: Path) -> None:
    """A key file written by a newer photobot is refused with advice to upgrade, not called corrupt."""
    path = _write(tmp_path / "master.key", VALID_LINE.replace(" v1 ", " v2 ").encode())
    with pytest.raises(MasterKeyError, match="Upgrade photobot"):
        load_master_key_file(path)


def test_key_file_without_trailing_newline_loads(tmp_path: Path) -> None:
    """A key file whose final newline was lost (e.g. pasted into a secret store) still loads."""
    path = _write(tmp_path / "master.key", VALID_LINE.rstrip("\n").encode())
    assert load_master_key_file(path).secret == bytes(range(32))


def test_loaded_key_opens_what_the_created_key_sealed(tmp_path: Path) -> None:
    """A key wrapped with the key from `init` unwraps with the key loaded from the file later."""
    path = tmp_path / "master.key"
    wrapped = Keyring(create_master_key_file(path)).wrap_key(bytes(32), aad=b"image:1")
    assert Keyring(load_master_key_file(path)).unwrap_key(wrapped, aad=b"image:1") == bytes(32)
