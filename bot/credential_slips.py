"""Recognising a credential typed into a chat by mistake: pure text rules, no I/O.

A homeserver-admin token pasted into the clinician room, or sent with a typo in the setting's name, stays
readable by everyone in the room (and on the homeserver) until it is removed. These rules say whether a
message looks like it carries one, so `handlers.credential_guard` can remove it wherever it was typed.

A message looks like a credential when it contains:
- a secret the practice holds (the configured homeserver-admin token), anywhere in it;
- a Synapse access or refresh token (`syt_...`, `syr_...`), a Matrix Authentication Service token
  (`mat_`, `mar_`, `mct_`...), or an old-style macaroon token (`MDAx...`);
- a word like "token", "password" or "secret" together with an opaque run of 16 or more characters that
  mixes letters and digits (a pasted key, whatever its shape).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sy[tr]_[A-Za-z0-9]+_[A-Za-z0-9]{10,}_[A-Za-z0-9]{4,}"
    r"|m[a-z][a-z]_[A-Za-z0-9]{20,}(?:_[A-Za-z0-9]+)?"
    r"|MDAx[A-Za-z0-9_\-+/=]{40,})"
)
_CREDENTIAL_WORD = re.compile(r"tok[a-z]*n|pass(?:word|wd|phrase)?|secret|credential|api[ _-]?key", re.I)
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_\-+/=.])[A-Za-z0-9_\-+/=.]{16,}")
_KNOWN_MINIMUM = 8  # a held secret shorter than this would match ordinary words


def _opaque(run: str) -> bool:
    return any(c.isdigit() for c in run) and any(c.isalpha() for c in run) and "://" not in run


def looks_like_credential(text: str, known_secrets: Iterable[str] = ()) -> bool:
    """Whether `text` appears to carry a password or access token (see the module's rules)."""
    if any(len(secret) >= _KNOWN_MINIMUM and secret in text for secret in known_secrets):
        return True
    if _TOKEN_SHAPES.search(text):
        return True
    if _CREDENTIAL_WORD.search(text):
        return any(_opaque(match.group()) for match in _OPAQUE.finditer(text))
    return False
