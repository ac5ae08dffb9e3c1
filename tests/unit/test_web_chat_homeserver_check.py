"""`photobot check` on the web chat's homeserver: registration must be on, and only with a token."""

from __future__ import annotations

from bot.web_chat.homeserver_check import registration_verdict

URL = "https://matrix.practice.example"


def test_token_only_registration_passes() -> None:
    """Synapse with registration_requires_token answers flows that all need the token: no problem."""
    body = {"session": "s", "flows": [{"stages": ["m.login.registration_token", "m.login.dummy"]}]}
    assert registration_verdict(URL, 401, body) is None


def test_open_registration_is_a_problem() -> None:
    """A flow without the token stage means anyone can make accounts: the operator is told how to fix it."""
    body = {"flows": [{"stages": ["m.login.dummy"]}, {"stages": ["m.login.registration_token"]}]}
    verdict = registration_verdict(URL, 401, body)
    assert verdict is not None
    assert "Anyone can register" in verdict
    assert "registration_requires_token: true" in verdict


def test_registration_off_is_a_problem() -> None:
    """Registration disabled means no patient can get an account: the operator is told what to set."""
    verdict = registration_verdict(
        URL, 403, {"errcode": "M_FORBIDDEN", "error": "Registration has been disabled"}
    )
    assert verdict is not None
    assert "enable_registration: true" in verdict
