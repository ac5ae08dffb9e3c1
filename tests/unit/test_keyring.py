"""Key wrapping, sealed values and keyed hashes: what survives, what is refused, what never shows."""

from __future__ import annotations

import base64
import hashlib

import pytest

from bot.keyring import (
    CryptoError,
    IntegrityCheckError,
    Keyring,
    KeyUnavailableError,
    MasterKey,
    MasterKeyError,
    Sealer,
)

OLD_KEY = MasterKey(key_id="mk-0000000a", secret=bytes(range(32)))
NEW_KEY = MasterKey(key_id="mk-0000000b", secret=bytes(range(100, 132)))
DATA_KEY = bytes(range(200, 232))
IMAGE_AAD = b"image:IMG_synthetic_1"


def test_wrapped_key_unwraps_to_the_same_key() -> None:
    """A data key wrapped with some associated data unwraps to the same 32 bytes with that data."""
    keyring = Keyring(NEW_KEY)
    wrapped = keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD)
    assert keyring.unwrap_key(wrapped, aad=IMAGE_AAD) == DATA_KEY


def test_wrapped_key_does_not_contain_the_data_key_and_names_its_master_key() -> None:
    """A wrapped key holds no part of the data key in clear, but names the master key it was made under."""
    keyring = Keyring(NEW_KEY)
    wrapped = keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD)
    assert DATA_KEY[:8] not in wrapped
    assert DATA_KEY[-8:] not in wrapped
    assert b"mk-0000000b" in wrapped
    assert Keyring.key_id_of(wrapped) == "mk-0000000b"


def test_wrapping_twice_gives_different_bytes() -> None:
    """Wrapping the same key twice gives different blobs (a fresh nonce each time)."""
    keyring = Keyring(NEW_KEY)
    assert keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD) != keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD)


@pytest.mark.parametrize("position", range(73))
def test_any_altered_byte_of_a_wrapped_key_is_refused(position: int) -> None:
    """Changing any single byte of a wrapped key makes unwrapping fail instead of returning a key."""
    keyring = Keyring(NEW_KEY)
    wrapped = bytearray(keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD))
    assert len(wrapped) == 73
    wrapped[position] ^= 0x01
    with pytest.raises(CryptoError):
        keyring.unwrap_key(bytes(wrapped), aad=IMAGE_AAD)


@pytest.mark.parametrize("position", [-1, -16, -17, -30, 13, 24])
def test_altered_nonce_ciphertext_or_tag_is_an_integrity_failure(position: int) -> None:
    """An altered nonce, ciphertext or tag is reported as an integrity failure, not a missing key."""
    keyring = Keyring(NEW_KEY)
    wrapped = bytearray(keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD))
    wrapped[position] ^= 0x80
    with pytest.raises(IntegrityCheckError):
        keyring.unwrap_key(bytes(wrapped), aad=IMAGE_AAD)


@pytest.mark.parametrize("length", [0, 1, 2, 13, 25, 40, 72])
def test_truncated_wrapped_key_is_refused(length: int) -> None:
    """A wrapped key cut short at any point is refused as an integrity failure."""
    keyring = Keyring(NEW_KEY)
    wrapped = keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD)
    with pytest.raises(IntegrityCheckError):
        keyring.unwrap_key(wrapped[:length], aad=IMAGE_AAD)


def test_wrapped_key_with_other_associated_data_is_refused() -> None:
    """A key wrapped for one image cannot be unwrapped as the key of another image."""
    keyring = Keyring(NEW_KEY)
    wrapped = keyring.wrap_key(DATA_KEY, aad=IMAGE_AAD)
    with pytest.raises(IntegrityCheckError):
        keyring.unwrap_key(wrapped, aad=b"image:IMG_synthetic_2")


def test_wrap_refuses_a_data_key_of_the_wrong_length() -> None:
    """Only 32-byte data keys can be wrapped."""
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring(NEW_KEY).wrap_key(DATA_KEY[:16], aad=IMAGE_AAD)


def test_key_wrapped_under_a_previous_master_key_still_unwraps() -> None:
    """After rotation, a key wrapped under the previous master key unwraps while that key is held."""
    wrapped_before = Keyring(OLD_KEY).wrap_key(DATA_KEY, aad=IMAGE_AAD)
    rotated = Keyring(NEW_KEY, previous=[OLD_KEY])
    assert rotated.unwrap_key(wrapped_before, aad=IMAGE_AAD) == DATA_KEY


def test_new_wraps_use_the_current_master_key() -> None:
    """A keyring holding old and new master keys wraps new keys under the current one only."""
    rotated = Keyring(NEW_KEY, previous=[OLD_KEY])
    wrapped = rotated.wrap_key(DATA_KEY, aad=IMAGE_AAD)
    assert Keyring.key_id_of(wrapped) == "mk-0000000b"
    assert Keyring(NEW_KEY).unwrap_key(wrapped, aad=IMAGE_AAD) == DATA_KEY


def test_key_wrapped_under_a_master_key_not_held_says_which_key_is_missing() -> None:
    """Unwrapping a key made under a master key the keyring lacks names that key id."""
    wrapped_before = Keyring(OLD_KEY).wrap_key(DATA_KEY, aad=IMAGE_AAD)
    with pytest.raises(KeyUnavailableError, match="mk-0000000a"):
        Keyring(NEW_KEY).unwrap_key(wrapped_before, aad=IMAGE_AAD)


def test_a_key_with_the_same_id_but_another_secret_cannot_unwrap() -> None:
    """A master key that merely reuses a key id cannot open blobs made under the real key."""
    wrapped = Keyring(OLD_KEY).wrap_key(DATA_KEY, aad=IMAGE_AAD)
    impostor = MasterKey(key_id=OLD_KEY.key_id, secret=bytes(32))
    with pytest.raises(IntegrityCheckError):
        Keyring(impostor).unwrap_key(wrapped, aad=IMAGE_AAD)


def test_needs_rewrap_is_true_only_for_blobs_made_under_an_older_key() -> None:
    """needs_rewrap says which wrapped keys and sealed values a rotation still has to redo."""
    old_wrapped = Keyring(OLD_KEY).wrap_key(DATA_KEY, aad=IMAGE_AAD)
    old_sealed = Sealer(Keyring(OLD_KEY)).seal(b"synthetic", context="row:1")
    rotated = Keyring(NEW_KEY, previous=[OLD_KEY])
    new_wrapped = rotated.wrap_key(rotated.unwrap_key(old_wrapped, aad=IMAGE_AAD), aad=IMAGE_AAD)
    assert rotated.needs_rewrap(old_wrapped)
    assert rotated.needs_rewrap(old_sealed)
    assert not rotated.needs_rewrap(new_wrapped)
    assert Keyring(NEW_KEY).unwrap_key(new_wrapped, aad=IMAGE_AAD) == DATA_KEY


def test_needs_rewrap_refuses_something_that_is_not_a_blob() -> None:
    """needs_rewrap refuses bytes that are not a wrapped key or sealed value rather than guessing."""
    with pytest.raises(IntegrityCheckError):
        Keyring(NEW_KEY).needs_rewrap(b"\x07not a blob at all, clearly not")


def test_keyring_refuses_two_keys_with_the_same_id() -> None:
    """A keyring given two master keys with one key id refuses to start, telling the operator why."""
    with pytest.raises(MasterKeyError, match="share the key id mk-0000000a"):
        Keyring(OLD_KEY, previous=[MasterKey(key_id=OLD_KEY.key_id, secret=bytes(32))])


def test_sealed_value_opens_in_its_own_context() -> None:
    """A value sealed for a row opens again for that row."""
    sealer = Sealer(Keyring(NEW_KEY))
    sealed = sealer.seal(b"9434765919", context="conversation.nhs_number:!room1:example.org")
    assert sealer.open(sealed, context="conversation.nhs_number:!room1:example.org") == b"9434765919"
    assert b"9434765919" not in sealed


def test_sealed_value_cannot_be_opened_under_another_context() -> None:
    """A sealed value copied into another row does not open there."""
    sealer = Sealer(Keyring(NEW_KEY))
    sealed = sealer.seal(b"9434765919", context="conversation.nhs_number:!room1:example.org")
    with pytest.raises(IntegrityCheckError):
        sealer.open(sealed, context="conversation.nhs_number:!room2:example.org")


def test_sealed_value_cannot_be_passed_off_as_a_wrapped_key() -> None:
    """A sealed 32-byte value is not accepted as a wrapped key even with the same associated data."""
    keyring = Keyring(NEW_KEY)
    sealed = Sealer(keyring).seal(DATA_KEY, context="image:IMG_synthetic_1")
    with pytest.raises(IntegrityCheckError):
        keyring.unwrap_key(sealed, aad=b"image:IMG_synthetic_1")


def test_equal_values_sealed_twice_cannot_be_linked() -> None:
    """Sealing the same value twice gives different bytes, so equal NHS numbers do not show as equal."""
    sealer = Sealer(Keyring(NEW_KEY))
    assert sealer.seal(b"9434765919", context="c") != sealer.seal(b"9434765919", context="c")


def test_sealed_value_opens_after_rotation_and_reseals_under_the_new_key() -> None:
    """A value sealed before rotation opens afterwards and, resealed, opens without the old key."""
    sealed_before = Sealer(Keyring(OLD_KEY)).seal(b"queued text", context="outbox:7")
    resealed = Sealer(Keyring(NEW_KEY, previous=[OLD_KEY])).reseal(sealed_before, context="outbox:7")
    assert Sealer(Keyring(NEW_KEY)).open(resealed, context="outbox:7") == b"queued text"


def test_sealed_json_round_trips() -> None:
    """A JSON value sealed with seal_json comes back equal from open_json."""
    sealer = Sealer(Keyring(NEW_KEY))
    value = {"media": ["mxc://example.org/synthetic"], "count": 2, "note": "Zoë's left arm"}
    sealed = sealer.seal_json(value, context="submission:S1")
    assert sealer.open_json(sealed, context="submission:S1") == value
    assert b"mxc://" not in sealed


def test_seal_requires_a_context() -> None:
    """Sealing without naming the row it belongs to is refused."""
    with pytest.raises(ValueError, match="context"):
        Sealer(Keyring(NEW_KEY)).seal(b"x", context="")


def test_repr_never_shows_the_secret() -> None:
    """Printing a master key or keyring shows key ids only, never the secret in any encoding."""
    secret = NEW_KEY.secret
    shown = " ".join(
        [
            repr(NEW_KEY),
            str(NEW_KEY),
            f"{NEW_KEY}",
            repr(Keyring(NEW_KEY, previous=[OLD_KEY])),
            repr([NEW_KEY]),
        ]
    )
    assert "mk-0000000b" in shown
    assert "mk-0000000a" in shown
    for encoding in (repr(secret), secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:14]):
        assert encoding not in shown


def test_master_key_refuses_a_secret_of_the_wrong_length() -> None:
    """A master key must be exactly 32 bytes."""
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey(key_id="mk-0000000c", secret=bytes(16))


def test_generated_master_keys_are_distinct() -> None:
    """Two generated master keys differ in both key id and secret."""
    first, second = MasterKey.generate(), MasterKey.generate()
    assert first.key_id != second.key_id
    assert first.secret != second.secret
    assert len(first.secret) == 32


def test_lookup_hash_is_stable_for_the_same_key() -> None:
    """The same NHS number hashes the same way every time, and in another keyring with the same key."""
    first = Keyring(NEW_KEY).lookup_hash("9434765919", purpose="nhs-number")
    second = Keyring(NEW_KEY, previous=[OLD_KEY]).lookup_hash("9434765919", purpose="nhs-number")
    assert first == second
    assert len(first) == 64
    assert set(first) <= set("0123456789abcdef")


def test_lookup_hash_is_keyed() -> None:
    """Without the master key the look-up hash cannot be recomputed: it is not a plain hash."""
    keyed = Keyring(NEW_KEY).lookup_hash("9434765919", purpose="nhs-number")
    assert keyed != hashlib.sha256(b"9434765919").hexdigest()
    assert keyed != Keyring(OLD_KEY).lookup_hash("9434765919", purpose="nhs-number")


def test_lookup_hash_separates_values_and_purposes() -> None:
    """Different values, or the same value for a different purpose, hash differently."""
    keyring = Keyring(NEW_KEY)
    assert keyring.lookup_hash("9434765919", purpose="nhs-number") != keyring.lookup_hash(
        "9434765870", purpose="nhs-number"
    )
    assert keyring.lookup_hash("9434765919", purpose="nhs-number") != keyring.lookup_hash(
        "9434765919", purpose="reference-code"
    )


def test_lookup_hash_under_a_previous_key_matches_what_that_key_made() -> None:
    """During rotation a look-up hash can still be computed under the previous key, to re-index."""
    old_hash = Keyring(OLD_KEY).lookup_hash("9434765919", purpose="nhs-number")
    rotated = Keyring(NEW_KEY, previous=[OLD_KEY])
    assert rotated.lookup_hash("9434765919", purpose="nhs-number", key_id="mk-0000000a") == old_hash
    assert rotated.lookup_hash("9434765919", purpose="nhs-number") != old_hash


def test_derive_gives_distinct_32_byte_keys_per_purpose_and_master_key() -> None:
    """Derived keys are 32 bytes, differ per purpose and per master key, and are not the secret."""
    keyring = Keyring(NEW_KEY)
    first = keyring.derive("export")
    assert len(first) == 32
    assert first == Keyring(NEW_KEY).derive("export")
    assert first != keyring.derive("audit")
    assert first != Keyring(OLD_KEY).derive("export")
    assert first != NEW_KEY.secret


def test_derive_refuses_an_unusual_purpose() -> None:
    """A purpose must be a short lower-case label, so purposes cannot be confused."""
    with pytest.raises(ValueError, match="purpose"):
        Keyring(NEW_KEY).derive("")
    with pytest.raises(ValueError, match="purpose"):
        Keyring(NEW_KEY).derive("Nio Store")


def test_nio_pickle_passphrase_is_stable_and_secret_dependent() -> None:
    """nio's store passphrase is the same on every start and differs for another master key."""
    passphrase = Keyring(NEW_KEY).nio_pickle_passphrase()
    assert passphrase == Keyring(NEW_KEY).nio_pickle_passphrase()
    assert passphrase != Keyring(OLD_KEY).nio_pickle_passphrase()
    assert len(passphrase) == 64
    assert NEW_KEY.secret.hex() not in passphrase
