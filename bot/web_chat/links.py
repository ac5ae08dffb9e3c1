"""Web chat links and their limits, as plain functions and one small in-memory limiter (no I/O).

A token is 192 random bits, URL-safe; the database keeps only its SHA-256. A token that is not of the
minted shape is refused before any look-up. The throwaway account's username is chosen by the bot.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

TOKEN_BYTES = 24  # 192 bits
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_TOKEN_LENGTH = 32  # len(secrets.token_urlsafe(24))
USERNAME_PREFIX = "web-"
_USERNAME_CHARS = "abcdefghijkmnpqrstuvwxyz23456789"  # lower case (Matrix localparts), no 0/o/1/l


class Kind(StrEnum):
    REQUEST = "request"  # a clinician's !request link: the chat asks for the requested area
    POSTER = "poster"  # the practice's poster: a new patient


class LinkState(StrEnum):
    """What `POST /api/status` answers: anything but OPEN makes the page wipe its storage."""

    OPEN = "open"
    CLOSED = "closed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def mint_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token: object) -> bool:
    """Whether `token` has the shape of a minted token (anything else is refused without a look-up)."""
    return isinstance(token, str) and len(token) == _TOKEN_LENGTH and set(token) <= _TOKEN_CHARS


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_username() -> str:
    """A random localpart for a throwaway account: nothing about the patient, ~100 bits."""
    return USERNAME_PREFIX + "".join(secrets.choice(_USERNAME_CHARS) for _ in range(20))


# Conversation states (bot.conversation.State values) that end a chat with no submission to wait for.
_ENDED_WITHOUT_SUBMISSION = frozenset({"cancelled", "expired", "refused"})


@dataclass(frozen=True)
class SubmissionFacts:
    """Where the chat's latest submission stands, as far as closing its web account goes."""

    status: str  # storage.submissions.Status values: new, claimed, done, deleted
    images_destroyed: bool = False  # every image destroyed (a described view-then-delete, or retention)
    exported: bool = False  # a clinician exported the record package
    consent_pending: bool = False  # a consent question waits for the patient's answer in the chat


def closing_reason(
    *,
    conversation_state: str | None,
    submission: SubmissionFacts | None,
    account_until: datetime | None,
    last_activity: datetime | None,
    end_grace: timedelta,
    now: datetime,
) -> str | None:
    """Why a web account should be closed now, or None while the chat may still be needed.

    Open while a journey runs and while its submission is with the clinician, who may still ask for consent
    or another photo there (a consent question waiting for its answer keeps it open). Closed when the
    submission is deleted, when it is done with nothing kept (viewed then destroyed), when it was kept and
    exported; `end_grace` after a journey was cancelled, expired or refused (so the patient can read the last
    message, or reply START); and at the end of the configured period in any case.
    """
    if account_until is not None and now >= account_until:
        return "period ended"
    if conversation_state == "submitted" and submission is not None:
        if submission.status == "deleted":
            return "submission deleted"
        if submission.status == "done" and not submission.consent_pending:
            if submission.images_destroyed:
                return "submission viewed and destroyed"
            if submission.exported:
                return "submission kept and exported"
        return None
    if conversation_state in _ENDED_WITHOUT_SUBMISSION and (
        last_activity is None or now - last_activity >= end_grace
    ):
        return f"journey {conversation_state}"
    return None


@dataclass
class AddressLimiter:
    """At most `limit` grants per client address in any `window` (a sliding window, in memory).

    Remembers at most `max_addresses` addresses (the least recently seen are forgotten first), so a flood
    from many addresses cannot grow it without bound; the per-day limit (in the database) still holds then.
    """

    limit: int
    window: timedelta = timedelta(hours=1)
    max_addresses: int = 10_000

    def __post_init__(self) -> None:
        self._grants: OrderedDict[str, deque[datetime]] = OrderedDict()

    def allow(self, address: str, now: datetime) -> bool:
        """Whether this address may have one more now; if so, it is counted."""
        grants = self._grants.pop(address, None) or deque()
        while grants and now - grants[0] >= self.window:
            grants.popleft()
        allowed = len(grants) < self.limit
        if allowed:
            grants.append(now)
        if grants:
            self._grants[address] = grants
            while len(self._grants) > self.max_addresses:
                self._grants.popitem(last=False)
        return allowed

    def retry_after(self, address: str, now: datetime) -> timedelta:
        """How long until this address may have one more (zero if it may now)."""
        grants = self._grants.get(address)
        if not grants or len(grants) < self.limit:
            return timedelta(0)
        return max(timedelta(0), grants[0] + self.window - now)
