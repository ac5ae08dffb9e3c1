"""Which of a user's devices count as cross-signed by that user, from a /keys/query response."""

from __future__ import annotations

import copy
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cross_signing import (
    CrossSigningKeys,
    JsonObject,
    device_signature_upload,
    device_signing_upload,
    sign_json,
    unpadded_b64,
)
from bot.device_signatures import SigningStatus, signing_status

ALICE = "@alice:gp.example"
MALLORY = "@mallory:gp.example"
ALICE_KEYS = CrossSigningKeys.generate()


def device_object(user_id: str, device_id: str) -> JsonObject:
    """A device key object as a client uploads it: its keys, signed by the device's own ed25519 key."""
    device_key = Ed25519PrivateKey.generate()
    device_public = device_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device_id}": unpadded_b64(secrets.token_bytes(32)),
            f"ed25519:{device_id}": unpadded_b64(device_public),
        },
    }
    return sign_json(
        device, seed=device_key.private_bytes_raw(), user_id=user_id, key_id=f"ed25519:{device_id}"
    )


def cross_signed(device: JsonObject, keys: CrossSigningKeys = ALICE_KEYS, user_id: str = ALICE) -> JsonObject:
    """The device object with a signature by `keys`' self-signing key, as the homeserver returns it."""
    signed = sign_json(
        device, seed=keys.self_signing_seed, user_id=user_id, key_id=f"ed25519:{keys.self_signing_public}"
    )
    return {**signed, "unsigned": {"device_display_name": "Synthetic phone"}}


def keys_query(devices: JsonObject, keys: CrossSigningKeys | None = ALICE_KEYS) -> JsonObject:
    """A /keys/query response for Alice with the given devices and, if `keys`, her cross-signing keys."""
    response: JsonObject = {"failures": {}, "device_keys": {ALICE: devices}}
    if keys is not None:
        upload = device_signing_upload(ALICE, keys)
        response["master_keys"] = {ALICE: upload["master_key"]}
        response["self_signing_keys"] = {ALICE: upload["self_signing_key"]}
    return response


def valid_response() -> JsonObject:
    return keys_query(
        {
            "PHONE": cross_signed(device_object(ALICE, "PHONE")),
            "LAPTOP": device_object(ALICE, "LAPTOP"),
        }
    )


def assert_trusts_none(status: SigningStatus) -> None:
    assert status.has_identity
    assert status.signed_devices == frozenset()
    assert status.problems


def test_a_device_the_user_signed_is_trusted() -> None:
    """A device whose key object carries a valid signature by the user's self-signing key is trusted."""
    status = signing_status(valid_response(), ALICE)
    assert status.has_identity
    assert "PHONE" in status.signed_devices


def test_a_device_the_user_did_not_sign_is_not_trusted() -> None:
    """A device without the user's self-signing signature is not trusted, and the operator is told why."""
    status = signing_status(valid_response(), ALICE)
    assert status.signed_devices == frozenset({"PHONE"})
    assert status.problems == ("device 'LAPTOP': not signed by the user's self-signing key",)


def test_a_fully_signed_user_has_no_problems() -> None:
    """When every device is signed and the chain is whole, nothing is reported."""
    response = keys_query({"PHONE": cross_signed(device_object(ALICE, "PHONE"))})
    expected = SigningStatus(True, frozenset({"PHONE"}), (), master_key=ALICE_KEYS.master_public)
    assert signing_status(response, ALICE) == expected


def test_a_device_signed_by_another_users_self_signing_key_is_not_trusted() -> None:
    """A device signed by some other self-signing key, under that key's own id, is not trusted."""
    other = CrossSigningKeys.generate()
    response = keys_query({"PHONE": cross_signed(device_object(ALICE, "PHONE"), keys=other)})
    assert signing_status(response, ALICE).signed_devices == frozenset()


def test_a_forged_signature_under_the_users_key_id_is_not_trusted() -> None:
    """A signature made with another key but filed under the user's self-signing key id is not trusted."""
    device = device_object(ALICE, "PHONE")
    forged = sign_json(
        device,
        seed=CrossSigningKeys.generate().self_signing_seed,
        user_id=ALICE,
        key_id=f"ed25519:{ALICE_KEYS.self_signing_public}",
    )
    status = signing_status(keys_query({"PHONE": forged}), ALICE)
    assert status.signed_devices == frozenset()
    assert status.problems == ("device 'PHONE': its self-signing signature does not verify",)


def test_a_self_signing_key_not_signed_by_the_master_key_makes_nothing_trusted() -> None:
    """If the master key did not sign the self-signing key, no device is trusted, signed or not."""
    response = valid_response()
    response["self_signing_keys"][ALICE]["signatures"] = {}
    status = signing_status(response, ALICE)
    assert_trusts_none(status)
    assert status.problems == ("self-signing key not signed by the master key",)


def test_a_self_signing_key_signed_by_another_master_key_makes_nothing_trusted() -> None:
    """A self-signing key signed by a master key other than the published one breaks the chain."""
    response = valid_response()
    other = CrossSigningKeys.generate()
    response["master_keys"][ALICE] = device_signing_upload(ALICE, other)["master_key"]
    assert_trusts_none(signing_status(response, ALICE))


def test_a_master_key_without_a_self_signing_key_makes_nothing_trusted() -> None:
    """A user who published a master key but no self-signing key has no device trusted."""
    response = valid_response()
    del response["self_signing_keys"]
    status = signing_status(response, ALICE)
    assert_trusts_none(status)
    assert status.problems == ("the user has a master key but no self-signing key",)


def test_a_device_key_changed_after_signing_is_not_trusted() -> None:
    """A device whose curve25519 key was swapped after it was signed is not trusted."""
    response = valid_response()
    phone = response["device_keys"][ALICE]["PHONE"]
    phone["keys"]["curve25519:PHONE"] = unpadded_b64(secrets.token_bytes(32))
    assert "PHONE" not in signing_status(response, ALICE).signed_devices


def test_a_signed_device_object_filed_under_another_device_id_is_not_trusted() -> None:
    """A validly signed key object listed under a different device id is not trusted under either id."""
    response = keys_query({"NEWPHONE": cross_signed(device_object(ALICE, "PHONE"))})
    status = signing_status(response, ALICE)
    assert status.signed_devices == frozenset()
    assert status.problems == ("device 'NEWPHONE': its key object names another user or device",)


def test_a_signed_device_object_naming_another_user_is_not_trusted() -> None:
    """A device object that names another user is not trusted, even with a valid signature by the user."""
    response = keys_query({"PHONE": cross_signed(device_object(MALLORY, "PHONE"))})
    assert signing_status(response, ALICE).signed_devices == frozenset()


def test_a_user_without_a_master_key_has_no_identity() -> None:
    """A user listed with devices but no master key has no identity, and no device counts as signed."""
    response = keys_query({"PHONE": device_object(ALICE, "PHONE")}, keys=None)
    response["master_keys"] = {}
    assert signing_status(response, ALICE) == SigningStatus(False, frozenset(), ())


def test_a_response_from_a_server_without_cross_signing_has_no_identity() -> None:
    """A response with no master_keys field at all means the user has no identity."""
    response = keys_query({"PHONE": device_object(ALICE, "PHONE")}, keys=None)
    assert not signing_status(response, ALICE).has_identity


def test_a_response_that_does_not_cover_the_user_trusts_nothing() -> None:
    """If the user is missing from the response, the bot cannot know they lack an identity: trust none."""
    response = keys_query({}, keys=None)
    response["device_keys"] = {MALLORY: {}}
    assert_trusts_none(signing_status(response, ALICE))


def test_a_user_whose_homeserver_failed_to_answer_trusts_nothing() -> None:
    """If the user's homeserver is listed in failures, no device is trusted and the identity is unknown."""
    response = valid_response()
    response["failures"] = {"gp.example": {"errcode": "M_UNKNOWN"}}
    status = signing_status(response, ALICE)
    assert_trusts_none(status)
    assert status.problems == ("the user's homeserver did not answer the key query",)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("usage", ["self_signing"], "the master key is not marked for master use"),
        ("user_id", MALLORY, "the master key belongs to another user"),
        ("keys", {}, "the master key does not hold exactly one public key"),
        ("keys", {"ed25519:QUJD": "QUJD"}, "the master key is not a well-formed ed25519 key"),
        ("keys", {"curve25519:QUJD": "QUJD"}, "the master key is not a well-formed ed25519 key"),
        (
            "keys",
            {"ed25519:" + "A" * 43: ALICE_KEYS.master_public},
            "the master key is not a well-formed ed25519 key",
        ),
        (
            "keys",
            {f"ed25519:{ALICE_KEYS.master_public}=": f"{ALICE_KEYS.master_public}="},
            "the master key is not a well-formed ed25519 key",
        ),
    ],
)
def test_a_malformed_master_key_trusts_nothing(field: str, value: object, problem: str) -> None:
    """A master key with the wrong usage, owner or key list breaks the chain and is reported."""
    response = valid_response()
    response["master_keys"][ALICE][field] = value
    status = signing_status(response, ALICE)
    assert_trusts_none(status)
    assert status.problems == (problem,)


def test_a_master_key_holding_two_keys_trusts_nothing() -> None:
    """A master key object with a second public key in it is refused, though the real key signed the chain."""
    response = valid_response()
    extra = CrossSigningKeys.generate().master_public
    response["master_keys"][ALICE]["keys"][f"ed25519:{extra}"] = extra
    status = signing_status(response, ALICE)
    assert_trusts_none(status)
    assert status.problems == ("the master key does not hold exactly one public key",)


def test_problems_never_carry_key_material() -> None:
    """Problem texts name devices but contain no public key or signature from the response."""
    response = valid_response()
    response["self_signing_keys"][ALICE]["signatures"][ALICE] = {
        f"ed25519:{ALICE_KEYS.master_public}": unpadded_b64(secrets.token_bytes(64))
    }
    broken = signing_status(response, ALICE)
    partial = signing_status(valid_response(), ALICE)
    text = " ".join(broken.problems + partial.problems)
    assert text
    for secretish in (ALICE_KEYS.master_public, ALICE_KEYS.self_signing_public):
        assert secretish not in text
    assert "ed25519" not in text


def test_a_device_id_with_control_characters_is_escaped_in_problems() -> None:
    """A hostile device id cannot put a line break into the operator's log."""
    device_id = "EVIL\nlog line " + "x" * 100
    response = keys_query({device_id: device_object(ALICE, device_id)})
    (problem,) = signing_status(response, ALICE).problems
    assert "\n" not in problem
    assert "x" * 50 not in problem


def test_the_bots_own_uploaded_identity_verifies() -> None:
    """The bot's own cross-signing upload and device signature, merged as the homeserver does, verify."""
    bot_user = "@photobot:gp.example"
    keys = CrossSigningKeys.generate()
    device = {**device_object(bot_user, "BOTDEVICE"), "unsigned": {"device_display_name": "GP Photo Bot"}}
    identity = device_signing_upload(bot_user, keys)
    signature = device_signature_upload(bot_user, device, keys)[bot_user]["BOTDEVICE"]
    merged = copy.deepcopy(device)
    for signer, by_key in signature["signatures"].items():
        merged["signatures"].setdefault(signer, {}).update(by_key)
    response = {
        "failures": {},
        "device_keys": {bot_user: {"BOTDEVICE": merged}},
        "master_keys": {bot_user: identity["master_key"]},
        "self_signing_keys": {bot_user: identity["self_signing_key"]},
    }
    expected = SigningStatus(True, frozenset({"BOTDEVICE"}), (), master_key=keys.master_public)
    assert signing_status(response, bot_user) == expected


GARBAGE: list[Any] = [
    None,
    [],
    "text",
    42,
    {"device_keys": None},
    {"device_keys": {ALICE: []}},
    {"device_keys": {ALICE: {}}, "master_keys": []},
    {"device_keys": {ALICE: {}}, "master_keys": {ALICE: None}},
    {"device_keys": {ALICE: {}}, "master_keys": {ALICE: {"user_id": ALICE, "usage": "master"}}},
    {"device_keys": {ALICE: {}}, "master_keys": {ALICE: {"user_id": ALICE, "usage": ["master"], "keys": []}}},
    {
        "device_keys": {ALICE: {}},
        "master_keys": {ALICE: {"user_id": ALICE, "usage": ["master"], "keys": {"ed25519:!!!": "!!!"}}},
    },
    {"failures": [ALICE], "device_keys": {ALICE: {}}, "master_keys": {ALICE: 7}},
]


@pytest.mark.parametrize("response", GARBAGE)
def test_garbage_responses_fail_closed_without_raising(response: Any) -> None:
    """An unreadable or incomplete response never raises and never yields a trusted device."""
    status = signing_status(response, ALICE)
    assert status.signed_devices == frozenset()
    assert status.has_identity
    assert status.problems


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("self_signing_keys", ALICE, "signatures", ALICE), "not a map"),
        (("self_signing_keys", ALICE, "signatures"), None),
        (("self_signing_keys", ALICE, "keys"), {"ed25519:not base64!": "not base64!"}),
        (("device_keys", ALICE, "PHONE", "signatures", ALICE), {"ed25519:x": 5}),
        (("device_keys", ALICE, "PHONE", "signatures"), ["a", "b"]),
        (("device_keys", ALICE, "PHONE", "keys"), {1, 2}),
        (("device_keys", ALICE, "PHONE"), "just a string"),
    ],
)
def test_a_damaged_field_fails_closed_without_raising(path: tuple[str, ...], value: object) -> None:
    """Replacing any one field with a wrong type or bad base64 never raises and trusts nothing extra."""
    response = valid_response()
    target = response
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    status = signing_status(response, ALICE)
    assert status.signed_devices == frozenset()
    assert status.problems


def test_a_bad_self_signing_signature_in_base64_fails_closed() -> None:
    """A self-signing signature that is not base64 breaks the chain instead of raising."""
    response = valid_response()
    response["self_signing_keys"][ALICE]["signatures"][ALICE] = {
        f"ed25519:{ALICE_KEYS.master_public}": "%%% not base64 ééé"
    }
    assert_trusts_none(signing_status(response, ALICE))


def test_absurdly_nested_device_objects_fail_closed_without_raising() -> None:
    """A device object nested deeper than Python can serialise is refused alone; other devices still count."""
    nested: JsonObject = {}
    inner = nested
    for _ in range(100_000):
        inner["x"] = {}
        inner = inner["x"]
    response = valid_response()
    response["device_keys"][ALICE]["TABLET"] = cross_signed(device_object(ALICE, "TABLET"))
    response["device_keys"][ALICE]["PHONE"]["deep"] = nested
    status = signing_status(response, ALICE)
    assert status.signed_devices == frozenset({"TABLET"})


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    return found


@settings(max_examples=200, deadline=None)
@given(data=st.data(), replacement=JSON_VALUES)
def test_any_field_replaced_by_any_json_never_raises_or_adds_trust(
    data: st.DataObject, replacement: Any
) -> None:
    """Whatever single field of a valid response is replaced by arbitrary JSON, only PHONE can stay trusted."""
    response = valid_response()
    path = data.draw(st.sampled_from(_paths(response)))
    target = response
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    status = signing_status(response, ALICE)
    assert status.signed_devices <= {"PHONE"}
