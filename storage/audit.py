"""The tamper-evident audit log: who did what to which submission, when, in an append-only HMAC chain.

Keys. The log has its own random 32-byte key (the *audit key*), made on the first `append` and stored in
`audit_key`, wrapped by the master key (`Keyring.wrap_key`, associated data ``photobot/audit-key/v1``).
A master-key rotation therefore re-wraps this one key (`rewrap`) and touches no entry. Two keys are
derived from the audit key with HKDF-SHA256 (no salt: the input is already uniformly random)::

    audit key ── HKDF info "photobot/audit/mac/v1"      HMAC-SHA256 key of the chain
              └─ HKDF info "photobot/audit/details/v1"  AES-256-GCM key of each entry's details

Entries. Each row of `audit_log` holds seq (1, 2, 3 ... without gaps), at (ISO time from the clock),
actor, action and subject in clear (so a submission's trail can be found), the details as sealed JSON::

    version (1 byte, = 1) | nonce (12 bytes) | AES-256-GCM ciphertext + tag (16 bytes)

with ``photobot/audit-details/v1:<seq>`` as associated data, so details moved to another entry do not
open; then prev_mac (the mac of the entry before, or `GENESIS_MAC` for entry 1) and mac, the hex
HMAC-SHA256 of the canonical encoding of (seq, at, actor, action, subject, details, prev_mac): a domain
tag, then for each field its SQLite type name and its bytes, each length-prefixed (8 bytes, big-endian).
Because the type is part of the encoding, storing the same bytes as a BLOB instead of TEXT is an edit too.
`audit_head` holds the seq and mac of the last entry, written in the same transaction as the entry.

`append` runs inside the caller's transaction, so the state change and its audit entry land together or
not at all. It chains to `audit_head`, not to the last row present: after a tail entry is removed the next
entry still chains to the removed one, and the removal stays visible.

What `verify` detects, with an attacker who can edit the database file (drop the append-only triggers,
then UPDATE, DELETE or INSERT) but does not hold the master key:

- any column of any entry edited (the mac no longer matches; details moved between entries or altered also
  fail to decrypt);
- an entry removed: first, middle (a gap in seq, and the next entry's prev_mac does not chain) or last
  (`audit_head` names an entry that is not there);
- entries swapped, or contents moved to another seq (seq is inside the mac and the details' AAD);
- an entry inserted or forged, anywhere (without the audit key its mac cannot be right);
- `audit_head` removed or edited, the audit key removed or replaced.

Limits, by design:

- Anyone holding the master key can unwrap the audit key and rewrite the whole chain consistently. The
  log is evidence against someone with the database file alone, not against the key holder.
- Removing the last entries AND rewinding `audit_head` to an earlier entry's seq and mac leaves a shorter
  chain that is valid in itself: a rollback. Only a copy of the head kept outside this database (noted at
  each verification, or sent elsewhere) can show it.
- actor, action, subject and at are in clear (they are ids, a reference and a time, never a patient's
  data); the details, which can hold a clinician's reasons, are sealed. Nothing here is ever logged, and
  the problems `verify` reports name seq numbers and what is wrong, never any details.
- `at` comes from the clock and is covered by the mac but not checked for order: a wall clock may step
  back legitimately.

Exceptions::

    AuditLogError      the log cannot be appended to or read as it is (tampered, or its key unavailable)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.clock import Clock, iso
from bot.keyring import DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES, CryptoError, Keyring
from storage.sql import Connection, Database, Dialect, Row

GENESIS_MAC = "photobot-audit-genesis-v1"
"""The prev_mac of entry 1."""

_KEY_AAD = b"photobot/audit-key/v1"
_MAC_INFO = b"photobot/audit/mac/v1"
_DETAILS_INFO = b"photobot/audit/details/v1"
_DETAILS_AAD_PREFIX = b"photobot/audit-details/v1:"
_MAC_DOMAIN = b"photobot/audit-entry/v1"
_DETAILS_VERSION = 1
_VERIFY_PAGE = 1000  # entries read per query by `verify`: memory stays flat however long the log


class AuditAction(StrEnum):
    """What an audit entry records; stored as its value."""

    VIEW = "view"
    CLAIM = "claim"
    KEEP = "keep"
    DESCRIBE = "describe"
    EDIT = "edit"
    EXPORT = "export"
    SHARE = "share"
    DELETE = "delete"
    DESTROY = "destroy"
    CONSENT_ASKED = "consent_asked"
    CONSENT_ANSWERED = "consent_answered"
    REQUEST = "request"
    CONFIG = "config"
    RETENTION_WARNING = "retention_warning"
    RETENTION_DESTROY = "retention_destroy"
    RETENTION_REFUSED = "retention_refused"
    IMAGES_DESTROYED = "images_destroyed"
    UNDO = "undo"  # a clinician kept the photos a description was about to destroy
    IDENTITY_SHOWN = "identity_shown"  # a clinician was shown the NHS number (the `!view` header)
    WEB_LINK = "web_link"  # a clinician made a web chat link for a photo request
    WEB_ACCOUNT_OPENED = "web_account_opened"  # a web chat link's throwaway account got its chat
    WEB_ACCOUNT_CLOSED = "web_account_closed"  # a web chat account was deactivated and erased


class AuditLogError(Exception):
    """The audit log cannot be appended to or read as it is; run `AuditLog.verify` for the full picture."""


@dataclass(frozen=True)
class AuditEntry:
    """One entry, as `AuditLog.entries` returns it (details decrypted)."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, object] = field(repr=False)


@dataclass(frozen=True)
class AuditReport:
    """The outcome of `AuditLog.verify`: each problem names a seq and what is wrong, never any details."""

    ok: bool
    entries: int
    problems: list[str]


@dataclass(frozen=True, repr=False)
class _AuditKeys:
    mac_key: bytes
    details_key: AESGCM


def _derive(audit_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(audit_key)


def _audit_keys(audit_key: bytes) -> _AuditKeys:
    return _AuditKeys(
        mac_key=_derive(audit_key, _MAC_INFO), details_key=AESGCM(_derive(audit_key, _DETAILS_INFO))
    )


def _details_aad(seq: int) -> bytes:
    return _DETAILS_AAD_PREFIX + str(seq).encode("ascii")


def _seal_details(keys: _AuditKeys, seq: int, details: Mapping[str, object]) -> bytes:
    text = json.dumps(dict(details), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = keys.details_key.encrypt(nonce, text.encode("utf-8"), _details_aad(seq))
    return bytes((_DETAILS_VERSION,)) + nonce + ciphertext


def _open_details(keys: _AuditKeys, seq: int, sealed: bytes) -> dict[str, object] | None:
    """The details sealed in `sealed`, or None if they do not open as this entry's details."""
    body = 1 + NONCE_BYTES
    if len(sealed) < body + TAG_BYTES or sealed[0] != _DETAILS_VERSION:
        return None
    try:
        plaintext = keys.details_key.decrypt(sealed[1:body], sealed[body:], _details_aad(seq))
    except InvalidTag:
        return None
    value = json.loads(plaintext)
    return value if isinstance(value, dict) else None


# A field as the MAC sees it: its SQLite type name (typeof) and its bytes (CAST AS BLOB).
_Field = tuple[str, bytes]


def _text(value: str) -> _Field:
    return ("text", value.encode("utf-8"))


def _mac(keys: _AuditKeys, fields: Sequence[_Field]) -> str:
    """HMAC-SHA256 of the canonical encoding of (seq, at, actor, action, subject, details, prev_mac)."""
    parts = [_MAC_DOMAIN]
    for type_name, data in fields:
        for piece in (type_name.encode("ascii"), data):
            parts.append(len(piece).to_bytes(8, "big"))
            parts.append(piece)
    return hmac.new(keys.mac_key, b"".join(parts), hashlib.sha256).hexdigest()


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"entry {first}: missing (removed)"
    return f"entries {first} to {last}: missing (removed)"


# Every column of an entry as (typeof, bytes), so that verify neither crashes on nor is fooled by a value
# of another type or invalid UTF-8 written by someone editing the file.
# On PostgreSQL a column holds only its declared type, so the type names are the schema's own and the
# bytes are the text's UTF-8 (or the bytea itself): the same (type, bytes) pairs SQLite gives for valid rows.
_ENTRY_COLUMN_TYPES = {
    "at": "text",
    "actor": "text",
    "action": "text",
    "subject": "text",
    "details": "blob",
    "prev_mac": "text",
    "mac": "text",
}
_RAW_ENTRY_COLUMNS: dict[Dialect, str] = {
    "sqlite": ", ".join(
        f"typeof({column}) AS {column}_type, CAST({column} AS BLOB) AS {column}"
        for column in _ENTRY_COLUMN_TYPES
    ),
    "postgresql": ", ".join(
        f"'{kind}' AS {column}_type, "
        + (column if kind == "blob" else f"convert_to({column}, 'UTF8')")
        + f" AS {column}"
        for column, kind in _ENTRY_COLUMN_TYPES.items()
    ),
}
_STATE_QUERY: dict[Dialect, str] = {
    "sqlite": "SELECT (SELECT CAST(wrapped_key AS BLOB) FROM audit_key WHERE id = 1),"
    " (SELECT typeof(seq) FROM audit_head WHERE id = 1), (SELECT seq FROM audit_head WHERE id = 1),"
    " (SELECT typeof(mac) FROM audit_head WHERE id = 1),"
    " (SELECT CAST(mac AS BLOB) FROM audit_head WHERE id = 1),"
    " (SELECT MAX(seq) FROM audit_log)",
    "postgresql": "SELECT (SELECT wrapped_key FROM audit_key WHERE id = 1),"
    " (SELECT 'integer' FROM audit_head WHERE id = 1), (SELECT seq FROM audit_head WHERE id = 1),"
    " (SELECT 'text' FROM audit_head WHERE id = 1),"
    " (SELECT convert_to(mac, 'UTF8') FROM audit_head WHERE id = 1),"
    " (SELECT MAX(seq) FROM audit_log)",
}


class AuditLog:
    """The audit log of one practice database. Build it once at start-up and share it.

    `append` writes inside the caller's transaction; `entries`, `verify` and `rewrap` must be called
    outside one (`verify` and `rewrap` take the database's write lock, briefly).
    """

    def __init__(self, database: Database, keyring: Keyring, clock: Clock) -> None:
        self._db = database
        self._keyring = keyring
        self._clock = clock
        # The derived keys of the last wrapped key seen. Keyed by the wrapped bytes, read again from the
        # database each time: a key made in a transaction that was rolled back is never used again.
        self._cached: tuple[bytes, _AuditKeys] | None = None

    def _keys_for(self, wrapped: bytes) -> _AuditKeys:
        if self._cached is not None and self._cached[0] == wrapped:
            return self._cached[1]
        try:
            audit_key = self._keyring.unwrap_key(wrapped, aad=_KEY_AAD)
        except CryptoError as error:
            raise AuditLogError(f"the audit key cannot be unwrapped: {error}") from None
        keys = _audit_keys(audit_key)
        self._cached = (wrapped, keys)
        return keys

    async def append(
        self,
        db: Connection,
        *,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, object] | None = None,
    ) -> int:
        """Add an entry inside the caller's transaction `db` and return its seq.

        Pass an `AuditAction` as `action`. `details` must be JSON-serialisable; never put an NHS number or
        image bytes in them. Raises `AuditLogError` if the log cannot be chained to (its head or key was
        removed, or entries were added past its head): the caller's transaction then rolls back.
        """
        actor, action, subject = str(actor), str(action), str(subject)
        if not actor or not action:
            raise ValueError("an audit entry needs an actor and an action")
        state = await _read_state(db, self._db.dialect)
        if state.head_malformed:
            raise AuditLogError("the audit head is malformed; run verify")
        if state.head_seq is None or state.head_mac is None:
            if state.last_seq is not None:
                raise AuditLogError("the audit head is missing but the log holds entries; run verify")
            head_seq, head_mac = 0, GENESIS_MAC
        else:
            head_seq, head_mac = state.head_seq, state.head_mac
            if state.last_seq is not None and state.last_seq > head_seq:
                raise AuditLogError("the audit log holds entries past its head; run verify")
        wrapped = state.wrapped_key
        if wrapped is None:
            if head_seq != 0:
                raise AuditLogError("the audit key is missing but the log holds entries; run verify")
            wrapped = self._keyring.wrap_key(secrets.token_bytes(DATA_KEY_BYTES), aad=_KEY_AAD)
            await db.execute(
                "INSERT INTO audit_key (id, wrapped_key, created_at) VALUES (1, ?, ?)",
                (wrapped, iso(self._clock.now())),
            )
        keys = self._keys_for(wrapped)
        seq = head_seq + 1
        at = iso(self._clock.now())
        sealed = _seal_details(keys, seq, details or {})
        mac = _mac(
            keys,
            [
                ("integer", str(seq).encode("ascii")),
                _text(at),
                _text(actor),
                _text(action),
                _text(subject),
                ("blob", sealed),
                _text(head_mac),
            ],
        )
        await db.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_mac, mac)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, actor, action, subject, sealed, head_mac, mac),
        )
        await db.execute(
            "INSERT INTO audit_head (id, seq, mac) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac",
            (seq, mac),
        )
        return seq

    async def entries(self, subject: str | None = None) -> list[AuditEntry]:
        """Every entry (or those about `subject`), decrypted, in order.

        Raises `AuditLogError` if an entry's details do not open or its time is unreadable: the log was
        tampered with (see `verify`), or its key is unavailable.
        """
        connection = self._db.connection
        async with connection.execute("SELECT wrapped_key FROM audit_key WHERE id = 1") as cursor:
            key_row = await cursor.fetchone()
        query = "SELECT seq, at, actor, action, subject, details FROM audit_log"
        params: tuple[str, ...] = ()
        if subject is not None:
            query += " WHERE subject = ?"
            params = (subject,)
        async with connection.execute(query + " ORDER BY seq", params) as cursor:
            rows = await cursor.fetchall()
        if not rows:
            return []
        if key_row is None:
            raise AuditLogError("the audit key is missing but the log holds entries; run verify")
        keys = self._keys_for(key_row["wrapped_key"])
        result: list[AuditEntry] = []
        for row in rows:
            seq = row["seq"]
            sealed = row["details"]
            details = _open_details(keys, seq, sealed) if isinstance(sealed, bytes) else None
            if details is None:
                raise AuditLogError(f"entry {seq}: details do not decrypt; run verify")
            try:
                at = datetime.fromisoformat(row["at"])
            except (TypeError, ValueError):
                raise AuditLogError(f"entry {seq}: its time is unreadable; run verify") from None
            result.append(
                AuditEntry(
                    seq=seq,
                    at=at,
                    actor=str(row["actor"]),
                    action=str(row["action"]),
                    subject=str(row["subject"]),
                    details=details,
                )
            )
        return result

    async def verify(self) -> AuditReport:
        """Walk every entry and report each break of the chain; ok only if there is none.

        The head, the key and the last seq are read together under the write lock (a consistent,
        committed state); the entries up to that seq are then read and checked in pages without it, which
        is safe because honest writers only ever add entries after it.
        """
        async with self._db.transaction() as db:
            state = await _read_state(db, self._db.dialect)
        last_seq = state.last_seq
        problems: list[str] = []
        keys: _AuditKeys | None = None
        if state.wrapped_key is None:
            if last_seq is not None or state.head_seq is not None:
                problems.append("the audit key is missing: no entry's mac or details can be checked")
        else:
            try:
                keys = self._keys_for(state.wrapped_key)
            except AuditLogError as error:
                problems.append(f"{error}: no entry's mac or details can be checked")

        walked, last_mac, expected = 0, None, 1
        previous_mac = GENESIS_MAC
        after: int | None = None
        while last_seq is not None:
            where, params = "seq <= ?", [last_seq]
            if after is not None:
                where, params = "seq > ? AND seq <= ?", [after, last_seq]
            async with self._db.connection.execute(
                f"SELECT seq, {_RAW_ENTRY_COLUMNS[self._db.dialect]} FROM audit_log"  # noqa: S608 -- fixed list
                f" WHERE {where} ORDER BY seq LIMIT {_VERIFY_PAGE:d}",
                params,
            ) as cursor:
                rows = list(await cursor.fetchall())
            for row in rows:
                seq = int(row["seq"])
                walked += 1
                if seq > expected:
                    problems.append(_missing(expected, seq - 1))
                elif seq < expected:
                    problems.append(f"entry {seq}: not a valid seq (entries start at 1)")
                expected = max(expected, seq + 1)
                problems.extend(_check_entry(keys, seq, row, previous_mac))
                previous_mac = _as_text(row["mac_type"], row["mac"])
                last_mac = previous_mac
                after = seq
            if len(rows) < _VERIFY_PAGE:
                break
        problems.extend(_check_head(state, after, last_mac))
        return AuditReport(ok=not problems, entries=walked, problems=problems)

    async def rewrap(self) -> None:
        """Re-wrap the audit key under the keyring's current master key, if an older one wrapped it.

        Run during a master-key rotation, with a keyring that still holds the old key. No entry changes.
        """
        async with self._db.transaction() as db:
            async with db.execute("SELECT wrapped_key FROM audit_key WHERE id = 1") as cursor:
                row = await cursor.fetchone()
            if row is None:
                return
            wrapped = bytes(row["wrapped_key"])
            try:
                if not self._keyring.needs_rewrap(wrapped):
                    return
                audit_key = self._keyring.unwrap_key(wrapped, aad=_KEY_AAD)
            except CryptoError as error:
                raise AuditLogError(f"the audit key cannot be unwrapped: {error}") from None
            rewrapped = self._keyring.wrap_key(audit_key, aad=_KEY_AAD)
            await db.execute("UPDATE audit_key SET wrapped_key = ? WHERE id = 1", (rewrapped,))


@dataclass(frozen=True, repr=False)
class _LogState:
    wrapped_key: bytes | None  # None: no audit key yet
    head_seq: int | None  # None: no head yet
    head_mac: str | None
    head_malformed: bool  # the head row holds values of the wrong type (edited in the file)
    last_seq: int | None  # None: no entry


async def _read_state(db: Connection, dialect: Dialect) -> _LogState:
    """The audit key, the head and the last seq present, read in one query (one consistent view)."""
    async with db.execute(_STATE_QUERY[dialect]) as cursor:
        row = await cursor.fetchone()
    assert row is not None  # a SELECT without FROM always returns one row
    wrapped, seq_type, seq, mac_type, mac, last_seq = tuple(row)
    if seq_type is None:
        return _LogState(wrapped, None, None, head_malformed=False, last_seq=last_seq)
    malformed = seq_type != "integer" or mac_type != "text"
    return _LogState(
        wrapped,
        seq if seq_type == "integer" else None,
        _as_text(mac_type, mac),
        head_malformed=malformed,
        last_seq=last_seq,
    )


def _same(first: str, second: str) -> bool:
    """Constant-time equality of two strings (any characters: an edited column may hold non-ASCII)."""
    return hmac.compare_digest(first.encode("utf-8"), second.encode("utf-8"))


def _as_text(type_name: str, data: bytes) -> str:
    """A raw column as text for comparisons: a non-text value never equals a real mac."""
    if type_name != "text":
        return f"<{type_name}>"
    return data.decode("utf-8", errors="replace")


def _check_entry(keys: _AuditKeys | None, seq: int, row: Row, previous_mac: str) -> list[str]:
    problems: list[str] = []
    prev_mac = _as_text(row["prev_mac_type"], row["prev_mac"])
    if not _same(prev_mac, previous_mac):
        problems.append(
            f"entry {seq}: prev_mac does not chain to the entry before it (an entry was removed, reordered "
            "or inserted)"
        )
    if keys is None:
        return problems
    fields: list[_Field] = [("integer", str(seq).encode("ascii"))]
    fields += [
        (row[f"{column}_type"], bytes(row[column] or b""))
        for column in ("at", "actor", "action", "subject", "details", "prev_mac")
    ]
    if not _same(_mac(keys, fields), _as_text(row["mac_type"], row["mac"])):
        problems.append(f"entry {seq}: mac mismatch (the entry was edited, moved or forged)")
    details = row["details"]
    if row["details_type"] != "blob" or _open_details(keys, seq, bytes(details)) is None:
        problems.append(f"entry {seq}: details do not decrypt")
    return problems


def _check_head(state: _LogState, last_seq: int | None, last_mac: str | None) -> list[str]:
    if state.head_malformed:
        return ["head mismatch: the head holds values of the wrong type (edited)"]
    head_seq = state.head_seq
    if head_seq is None:
        return [] if last_seq is None else ["head mismatch: the audit head is missing"]
    if last_seq is None:
        return [f"head mismatch: the head names entry {head_seq} but the log is empty (entries removed)"]
    if head_seq > last_seq:
        removed = _missing(last_seq + 1, head_seq)
        return [
            f"head mismatch: the head names entry {head_seq} but the log ends at entry {last_seq}; {removed}"
        ]
    if head_seq < last_seq:
        return [
            f"head mismatch: the log continues past the head (entry {head_seq}) to entry {last_seq} "
            "(entries added outside the log)"
        ]
    if state.head_mac is None or last_mac is None or not _same(state.head_mac, last_mac):
        return [f"head mismatch: the head's mac is not entry {head_seq}'s mac"]
    return []
