"""Which of a user's devices that user has cross-signed, read from a `/keys/query` response.

matrix-nio 0.26 has no cross-signing, so the bot checks the chain itself before it shares a room key in a
clinician room: the user's master key signs their self-signing key, and the self-signing key signs each
device key object (the Matrix spec's "Signing JSON", as in `bot.cross_signing`).

The rule is fail closed. `has_identity` is False only when the response positively shows that the user
has no master key (the user is in `device_keys` and absent from `master_keys`); the caller may then trust
the allowlisted user's devices on first use. In every other case, a broken chain or a malformed or
incomplete response included, `has_identity` is True and only `signed_devices` may be trusted, which may
be none. Problems are short sentences for the operator's log: they name device ids (quoted) but never
carry key material or signatures.

The signed device object is the one in this response: before trusting a device, the caller should check
that the ed25519 key nio holds for it is the key in `device_keys[user_id][device_id]` here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.cross_signing import verify_json
from bot.ids import UserID, server_name

_ED25519_PUBLIC_KEY_BYTES = 32
_SHOWN_DEVICE_ID_CHARS = 40


@dataclass(frozen=True)
class SigningStatus:
    """What a `/keys/query` response says about one user's cross-signing.

    has_identity: the user has, or may have, a cross-signing identity, so only `signed_devices` are to be
        trusted. True for a verified identity, and also for a broken chain or an unreadable response.
    signed_devices: ids of the devices whose key object carries a valid signature by the user's
        self-signing key, itself signed by the user's master key.
    problems: what was wrong or missing, without key material.
    master_key: the user's master public key when the chain up to it verified (to pin it), else None.
    """

    has_identity: bool
    signed_devices: frozenset[str]
    problems: tuple[str, ...]
    master_key: str | None = None


class _ChainBrokenError(Exception):
    """The user's master or self-signing key cannot be used; the message is the problem to report."""


def signing_status(keys_query: Mapping[str, Any], user_id: str) -> SigningStatus:
    """Check `user_id`'s master key, self-signing key and device signatures in a `/keys/query` response.

    Never raises on malformed input: anything unreadable fails closed with a problem.
    """
    if not isinstance(keys_query, Mapping):
        return _trust_none("the keys/query response is not an object")
    try:
        failures = keys_query.get("failures")
        if isinstance(failures, Mapping) and server_name(UserID(user_id)) in failures:
            return _trust_none("the user's homeserver did not answer the key query")
        devices = keys_query.get("device_keys", {})
        if not isinstance(devices, Mapping) or user_id not in devices:
            return _trust_none("the response has no device list for the user")
        user_devices = devices[user_id]
        if not isinstance(user_devices, Mapping):
            return _trust_none("the user's device list is not an object")
        master_keys = keys_query.get("master_keys", {})
        if not isinstance(master_keys, Mapping):
            return _trust_none("master_keys is not an object")
        if user_id not in master_keys:
            return SigningStatus(has_identity=False, signed_devices=frozenset(), problems=())
        master_public = _cross_signing_public_key(master_keys[user_id], user_id, "master")
        self_signing_public = _self_signing_public_key(keys_query, user_id, master_public)
        status = _signed_devices(user_devices, user_id, self_signing_public)
        return replace(status, master_key=master_public)
    except _ChainBrokenError as error:
        return _trust_none(str(error))
    except (TypeError, ValueError, RecursionError):
        # Unhashable keys, odd mapping types, absurd nesting: the response cannot be read, so trust none.
        return _trust_none("the keys/query response could not be read")


def _trust_none(problem: str) -> SigningStatus:
    return SigningStatus(has_identity=True, signed_devices=frozenset(), problems=(problem,))


def _self_signing_public_key(keys_query: Mapping[str, Any], user_id: str, master_public: str) -> str:
    self_signing_keys = keys_query.get("self_signing_keys", {})
    if not isinstance(self_signing_keys, Mapping) or user_id not in self_signing_keys:
        raise _ChainBrokenError("the user has a master key but no self-signing key")
    self_signing = self_signing_keys[user_id]
    public = _cross_signing_public_key(self_signing, user_id, "self_signing")
    if not _verifies(self_signing, user_id, master_public):
        raise _ChainBrokenError("self-signing key not signed by the master key")
    return public


def _cross_signing_public_key(key: object, user_id: str, usage: str) -> str:
    """The unpadded base64 ed25519 public key of a CrossSigningKey object, checked against the spec."""
    name = usage.replace("_", "-")
    if not isinstance(key, Mapping):
        raise _ChainBrokenError(f"the {name} key is not an object")
    if key.get("user_id") != user_id:
        raise _ChainBrokenError(f"the {name} key belongs to another user")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        raise _ChainBrokenError(f"the {name} key is not marked for {name} use")
    keys = key.get("keys")
    if not isinstance(keys, Mapping) or len(keys) != 1:
        raise _ChainBrokenError(f"the {name} key does not hold exactly one public key")
    ((key_id, public),) = keys.items()
    if not isinstance(public, str) or key_id != f"ed25519:{public}" or not _is_ed25519_public_key(public):
        raise _ChainBrokenError(f"the {name} key is not a well-formed ed25519 key")
    return public


def _is_ed25519_public_key(text: str) -> bool:
    """True for the strict unpadded base64 of 32 bytes (lenient decoding would let two ids name one key)."""
    if text.endswith("="):
        return False
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == _ED25519_PUBLIC_KEY_BYTES


def _signed_devices(devices: Mapping[Any, Any], user_id: str, self_signing_public: str) -> SigningStatus:
    key_id = f"ed25519:{self_signing_public}"
    signed: set[str] = set()
    problems: list[str] = []
    for device_id, device in devices.items():
        shown = _shown(device_id)
        if not isinstance(device_id, str) or not isinstance(device, Mapping):
            problems.append(f"device {shown}: its key object is not readable")
        elif device.get("user_id") != user_id or device.get("device_id") != device_id:
            problems.append(f"device {shown}: its key object names another user or device")
        elif not _has_signature(device, user_id, key_id):
            problems.append(f"device {shown}: not signed by the user's self-signing key")
        elif not _verifies(device, user_id, self_signing_public):
            problems.append(f"device {shown}: its self-signing signature does not verify")
        else:
            signed.add(device_id)
    return SigningStatus(has_identity=True, signed_devices=frozenset(signed), problems=tuple(problems))


def _has_signature(value: Mapping[Any, Any], user_id: str, key_id: str) -> bool:
    signatures = value.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    by_user = signatures.get(user_id)
    return isinstance(by_user, Mapping) and key_id in by_user


def _verifies(value: object, user_id: str, public_key: str) -> bool:
    """True if `value` carries a valid signature by `public_key` (key id `ed25519:<public_key>`)."""
    if not isinstance(value, Mapping):
        return False
    try:
        return verify_json(
            dict(value), user_id=user_id, key_id=f"ed25519:{public_key}", public_key=public_key
        )
    except RecursionError:
        return False


def _shown(device_id: object) -> str:
    """A device id fit for a log line: quoted, escaped and cut short (it is chosen by the device's owner)."""
    text = repr(device_id) if isinstance(device_id, str) else f"<{type(device_id).__name__}>"
    if len(text) > _SHOWN_DEVICE_ID_CHARS:
        return text[: _SHOWN_DEVICE_ID_CHARS - 3] + "..."
    return text
