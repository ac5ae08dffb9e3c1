"""Web chat links as plain functions: the token's shape, its hash, the username, when an account closes, and
the per-address limiter."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from bot.web_chat.links import (
    USERNAME_PREFIX,
    AddressLimiter,
    SubmissionFacts,
    closing_reason,
    mint_token,
    new_username,
    token_hash,
    well_formed,
)

NOW = datetime(2031, 5, 6, 10, 0, tzinfo=UTC)
GRACE = timedelta(minutes=30)


def test_tokens_are_long_random_and_url_safe() -> None:
    """Each minted token is new, at least 128 bits, usable in a URL fragment, and of the accepted shape."""
    tokens = {mint_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) * 6 >= 128
        assert well_formed(token)
        assert token.replace("-", "").replace("_", "").isalnum()


def test_only_the_minted_shape_is_accepted() -> None:
    """Garbage, truncated, padded, non-ASCII or non-string tokens are refused before any look-up."""
    token = mint_token()
    for bad in ("", "x", token[:-1], token + "A", token[:-1] + "=", token[:-1] + "é", None, 42, [token]):
        assert not well_formed(bad)


def test_only_the_hash_is_kept_and_it_is_sha256() -> None:
    """The stored key is the SHA-256 of the token, and it does not contain the token."""
    token = mint_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in token_hash(token)


def test_usernames_are_random_lower_case_localparts() -> None:
    """The bot chooses a fresh throwaway username each time, valid as a Matrix localpart."""
    names = {new_username() for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert name.startswith(USERNAME_PREFIX)
        assert name == name.lower()
        assert all(c.isalnum() or c == "-" for c in name)


def reason(
    state: str | None,
    submission: SubmissionFacts | None = None,
    *,
    ended: datetime = NOW - GRACE,
    until: datetime = NOW + timedelta(days=1),
) -> str | None:
    return closing_reason(
        conversation_state=state,
        submission=submission,
        account_until=until,
        last_activity=ended,
        end_grace=GRACE,
        now=NOW,
    )


def test_an_account_stays_open_while_the_practice_may_still_need_the_chat() -> None:
    """A running journey, a submission with the clinician, one kept but not yet exported, and one with a
    consent question waiting for the patient keep the account."""
    assert reason(None) is None
    assert reason("awaiting_nhs_number") is None
    assert reason("awaiting_photos") is None
    assert reason("submitted", SubmissionFacts("new")) is None
    assert reason("submitted", SubmissionFacts("claimed")) is None
    assert reason("submitted", SubmissionFacts("done")) is None  # kept, not exported yet
    assert reason("submitted", SubmissionFacts("done", exported=True, consent_pending=True)) is None
    assert reason("submitted", SubmissionFacts("done", images_destroyed=True, consent_pending=True)) is None


def test_an_account_closes_when_its_submission_is_closed_or_its_journey_ended() -> None:
    """Deleted, viewed-and-destroyed, kept-and-exported submissions and cancelled, expired and refused
    journeys close the account."""
    assert reason("submitted", SubmissionFacts("deleted", consent_pending=True)) == "submission deleted"
    assert (
        reason("submitted", SubmissionFacts("done", images_destroyed=True))
        == "submission viewed and destroyed"
    )
    assert reason("submitted", SubmissionFacts("done", exported=True)) == "submission kept and exported"
    for state in ("cancelled", "expired", "refused"):
        assert reason(state) == f"journey {state}"


def test_a_cancelled_journey_keeps_its_account_for_the_grace_so_the_patient_can_start_again() -> None:
    """Within the grace after a cancel the account stays (the patient may reply START); after it, it closes;
    a deleted submission closes at once."""
    assert reason("cancelled", ended=NOW - GRACE + timedelta(seconds=1)) is None
    assert reason("cancelled", ended=NOW - GRACE) == "journey cancelled"
    assert reason("submitted", SubmissionFacts("deleted"), ended=NOW) == "submission deleted"


def test_an_account_closes_at_the_end_of_its_period_whatever_the_chat() -> None:
    """After the configured period the account closes even with the submission still waiting."""
    assert reason("submitted", SubmissionFacts("new"), until=NOW) == "period ended"


def test_the_limiter_allows_the_limit_per_address_then_refuses_until_the_window_moves() -> None:
    """Five per hour from one address: the sixth is refused, another address is not, and an hour later
    the first may again."""
    limiter = AddressLimiter(limit=5, window=timedelta(hours=1))
    granted = [limiter.allow("198.51.100.7", NOW + timedelta(seconds=i)) for i in range(50)]
    assert granted == [True] * 5 + [False] * 45
    assert limiter.retry_after("198.51.100.7", NOW + timedelta(seconds=50)) == timedelta(
        minutes=59, seconds=10
    )
    assert limiter.allow("203.0.113.9", NOW)
    assert limiter.allow("198.51.100.7", NOW + timedelta(hours=1))


def test_the_limiter_forgets_the_oldest_addresses_beyond_its_bound() -> None:
    """A flood from many addresses cannot grow the limiter's memory past its bound."""
    limiter = AddressLimiter(limit=1, max_addresses=100)
    for i in range(1000):
        assert limiter.allow(f"10.0.{i // 256}.{i % 256}", NOW)
    assert len(limiter._grants) == 100
