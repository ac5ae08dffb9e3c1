"""A photo's id names its file or S3 object: it must not be linkable to the Matrix event it came from."""

from __future__ import annotations

import base64
import hashlib

from bot.ids import EventID
from bot.keyring import Keyring, MasterKey
from handlers.photo_intake import photo_id_for
from storage.vault import IMAGE_ID_PATTERN

KEY = MasterKey(key_id="mk-0000000a", secret=bytes(range(32)))
OTHER = MasterKey(key_id="mk-0000000b", secret=bytes(range(100, 132)))
EVENT = EventID("$synthetic-event-0001:example.org")


def _unkeyed_guesses(event_id: str) -> set[str]:
    """What someone who knows only the event id could compute: plain hashes of it, in the id's alphabet."""
    guesses = set()
    for data in (event_id.encode(), b"photo\x00" + event_id.encode()):
        for digest in (
            hashlib.sha256(data).digest(),
            hashlib.sha512(data).digest(),
            hashlib.blake2b(data).digest(),
        ):
            guesses.add(base64.b32encode(digest[:20]).decode().rstrip("=").lower())
            guesses.add(digest.hex()[:32])
    return guesses


def test_a_photo_id_is_stable_for_its_event_and_a_safe_name() -> None:
    """A replay of the same event gets the same id (it overwrites, never duplicates)."""
    keyring = Keyring(KEY)
    assert photo_id_for(EVENT, keyring) == photo_id_for(EVENT, Keyring(KEY))
    assert photo_id_for(EVENT, keyring) != photo_id_for(EventID("$synthetic-event-0002:example.org"), keyring)
    assert IMAGE_ID_PATTERN.fullmatch(photo_id_for(EVENT, keyring))


def test_a_photo_id_cannot_be_computed_from_the_event_id_without_the_master_key() -> None:
    """The object store's operator (or anyone in the room) knows event ids; the names it sees are keyed."""
    assert photo_id_for(EVENT, Keyring(KEY)) not in _unkeyed_guesses(EVENT)
    assert photo_id_for(EVENT, Keyring(KEY)) != photo_id_for(EVENT, Keyring(OTHER))
