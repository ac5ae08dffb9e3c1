"""The bot's cross-signing identity: pure key handling and the JSON the homeserver expects.

matrix-nio has no cross-signing. Without it, Element shows every bot message with a red "not verified by
its owner" shield, and clients that exclude insecure devices (MSC4153) stop talking to the bot at all. So
the bot makes its own identity once (`photobot init`): a master key and a self-signing key (ed25519), the
self-signing key signed by the master key, and the bot's device key signed by the self-signing key. The
private halves are stored sealed under the practice's master key; losing them would mean an identity reset
that every patient's app would flag.

Signing follows the Matrix spec's "Signing JSON": canonical JSON of the object without `signatures` and
`unsigned`, signed with ed25519, the signature in unpadded base64 under `signatures[user_id][key_id]`.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

JsonObject = dict[str, Any]


def unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def decode_unpadded_b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical_json(value: JsonObject) -> bytes:
    """The spec's canonical JSON: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _public_b64(seed: bytes) -> str:
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return unpadded_b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


@dataclass(frozen=True)
class CrossSigningKeys:
    """The private seeds of the bot's master and self-signing keys. Never printed."""

    master_seed: bytes = field(repr=False)
    self_signing_seed: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))

    @property
    def master_public(self) -> str:
        return _public_b64(self.master_seed)

    @property
    def self_signing_public(self) -> str:
        return _public_b64(self.self_signing_seed)

    def to_json(self) -> JsonObject:
        return {
            "master": unpadded_b64(self.master_seed),
            "self_signing": unpadded_b64(self.self_signing_seed),
        }

    @classmethod
    def from_json(cls, value: JsonObject) -> CrossSigningKeys:
        return cls(decode_unpadded_b64(value["master"]), decode_unpadded_b64(value["self_signing"]))


def sign_json(value: JsonObject, *, seed: bytes, user_id: str, key_id: str) -> JsonObject:
    """A copy of `value` carrying our signature under signatures[user_id][key_id]."""
    unsigned = {k: v for k, v in value.items() if k not in {"signatures", "unsigned"}}
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(canonical_json(unsigned))
    signed = {k: v for k, v in value.items() if k != "unsigned"}
    signatures = {user: dict(keys) for user, keys in value.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[key_id] = unpadded_b64(signature)
    signed["signatures"] = signatures
    return signed


def verify_json(value: JsonObject, *, user_id: str, key_id: str, public_key: str) -> bool:
    """True if `value` carries a valid signature by `public_key` under signatures[user_id][key_id]."""
    try:
        signature = decode_unpadded_b64(value["signatures"][user_id][key_id])
        key = Ed25519PublicKey.from_public_bytes(decode_unpadded_b64(public_key))
        unsigned = {k: v for k, v in value.items() if k not in {"signatures", "unsigned"}}
        key.verify(signature, canonical_json(unsigned))
    except (KeyError, TypeError, ValueError, InvalidSignature):
        return False
    return True


def device_signing_upload(user_id: str, keys: CrossSigningKeys) -> JsonObject:
    """Body of POST /_matrix/client/v3/keys/device_signing/upload: master and self-signing keys."""
    master_public = keys.master_public
    master = {
        "user_id": user_id,
        "usage": ["master"],
        "keys": {f"ed25519:{master_public}": master_public},
    }
    self_signing_public = keys.self_signing_public
    self_signing = sign_json(
        {
            "user_id": user_id,
            "usage": ["self_signing"],
            "keys": {f"ed25519:{self_signing_public}": self_signing_public},
        },
        seed=keys.master_seed,
        user_id=user_id,
        key_id=f"ed25519:{master_public}",
    )
    return {"master_key": master, "self_signing_key": self_signing}


def device_signature_upload(user_id: str, device_keys: JsonObject, keys: CrossSigningKeys) -> JsonObject:
    """Body of POST /_matrix/client/v3/keys/signatures/upload: our device key signed by the self-signing key.

    `device_keys` is the device's key object as the homeserver returns it from /keys/query.
    """
    signed = sign_json(
        device_keys,
        seed=keys.self_signing_seed,
        user_id=user_id,
        key_id=f"ed25519:{keys.self_signing_public}",
    )
    return {user_id: {device_keys["device_id"]: signed}}
