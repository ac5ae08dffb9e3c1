"""What counts as a credential typed into a chat by mistake."""

from __future__ import annotations

from bot.credential_slips import looks_like_credential

SYNAPSE_TOKEN = "syt_cHJhY3RpY2VhZG1pbg_QzBqLmVhUWdKYWxTeHVTa2Vp_0kZ7pP"


def test_a_synapse_token_is_a_credential_however_it_is_framed() -> None:
    """A Synapse access token counts, alone, in a sentence or after a mistyped setting name."""
    assert looks_like_credential(SYNAPSE_TOKEN)
    assert looks_like_credential(f"!set homeserver_admin_tokn {SYNAPSE_TOKEN}")
    assert looks_like_credential(f"here you go: {SYNAPSE_TOKEN} thanks")


def test_a_secret_the_practice_holds_is_found_anywhere() -> None:
    """The configured token counts whatever its shape, even glued to other text."""
    assert looks_like_credential("tokenABCDEFGH12345678xyz", ["ABCDEFGH12345678"])
    assert not looks_like_credential("hello", [""])  # no configured secret matches everything


def test_a_password_word_with_an_opaque_value_counts() -> None:
    """A word like password or token beside a long mix of letters and digits counts."""
    assert looks_like_credential("my password is Xk29dLq0pZ77wTr4")
    assert looks_like_credential("API key: 9f8e7d6c5b4a39281716aabb")


def test_ordinary_messages_are_not_credentials() -> None:
    """Commands, NHS numbers, references and words about passwords without a value are left alone."""
    for text in (
        "!view PB-7K3Q",
        "999 765 4323",
        "I forgot my password",
        "!request @pat:practice.example the rash on your left forearm",
        "see https://www.nhs.uk/conditions/eczema-atopic-dermatitis/",
        "!set homeserver_admin_token none",
    ):
        assert not looks_like_credential(text), text
