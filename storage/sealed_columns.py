"""Every column that holds a value sealed or wrapped under the master key, and the look-up hashes beside them.

A master-key rotation re-seals each value here under the new key, recomputes each look-up hash from the
value it was made from (a keyed hash has no key id inside, so the row's sealed value is what tells whether
the row is done: both change in one transaction), and finally checks that no value under the old key is left
anywhere (`columns_under_key`), in these columns or in any other: a sealed column added later without an
entry here is found by that scan, and the old key is then kept, not destroyed.

The context of each sealed value is the one its repository seals it with (see `bot.keyring.Sealer`);
`{}` stands for the row's key. Image keys (`photos.wrapped_key`, `photos.record_wrapped_key`) and the
audit key (`audit_key.wrapped_key`) are wrapped keys, re-wrapped by the vault and the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.keyring import CryptoError, Keyring, Sealer
from storage.sql import Connection, Database, Dialect, holds_bytes

BATCH_ROWS = 200


@dataclass(frozen=True)
class SealedColumn:
    table: str
    row_key: str  # the column naming the row
    column: str
    context: str  # the Sealer context; "{}" is replaced by the row's key
    lookup_column: str | None = None  # a keyed hash of the same plaintext, for look-ups
    lookup_purpose: str | None = None
    only_where: str = ""  # rows of this table that are sealed at all

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    def context_of(self, row_key: object) -> str:
        return self.context.replace("{}", str(row_key))

    def sealed_rows(self, dialect: Dialect) -> str:
        """An SQL condition: the rows of the table whose column holds a sealed value."""
        condition = f"{holds_bytes(self.column, dialect)} AND length({self.column}) > 0"
        return f"{condition} AND {self.only_where}" if self.only_where else condition


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("bot_account", "id", "access_token", "bot-account:token"),
    SealedColumn("bot_account", "id", "cross_signing", "bot-account:cross-signing"),
    SealedColumn("outbox", "txn_id", "payload", "outbox:{}"),
    SealedColumn("rooms", "room_id", "member", "room-member:{}", "member_lookup", "room-member"),
    SealedColumn("conversations", "room_id", "data", "conversation:{}"),
    SealedColumn(
        "submissions", "submission_id", "nhs_number", "submission-nhs:{}", "nhs_lookup", "nhs-number"
    ),
    SealedColumn("submissions", "submission_id", "details", "submission-details:{}"),
    SealedColumn("submissions", "submission_id", "decision", "submission-decision:{}"),
    SealedColumn("submissions", "submission_id", "description", "submission-description:{}"),
    SealedColumn("photos", "photo_id", "caption", "photo-caption:{}"),
    SealedColumn("pending_commands", "key", "command", "pending-command:{}"),
    SealedColumn("media_ledger", "id", "media", "media", "media_lookup", "media"),
    SealedColumn("media_ledger", "id", "owner", "media-owner"),
    SealedColumn("practice_config", "key", "value", "practice_config:{}", only_where="sealed = 1"),
    SealedColumn("postings", "txn_id", "content", "posting:{}"),
    SealedColumn("postings", "txn_id", "upload", "posting-upload:{}"),
    SealedColumn(
        "photo_requests",
        "request_id",
        "patient",
        "photo-request-patient:{}",
        "patient_lookup",
        "room-member",
    ),
    SealedColumn("photo_requests", "request_id", "details", "photo-request:{}"),
)

# Wrapped keys, re-wrapped elsewhere (the vault and the audit log), so known to the scan.
WRAPPED_KEY_COLUMNS = ("photos.wrapped_key", "photos.record_wrapped_key", "audit_key.wrapped_key")


@dataclass(frozen=True)
class ResealReport:
    resealed: int  # values sealed again under the current key
    lookups: int  # look-up hashes recomputed with them
    unreadable: tuple[str, ...]  # "table.column[row]" that opened under no held key (left as they were)


def _pending_rows_sql(column: SealedColumn, dialect: Dialect) -> str:
    return (
        f"SELECT {column.row_key} AS row_key, {column.column} AS sealed FROM {column.table}"  # noqa: S608
        f" WHERE {column.sealed_rows(dialect)}"  # names from the registry
        f" AND substr({column.column}, 1, ?) != ? AND {column.row_key} > ?"
        f" ORDER BY {column.row_key} LIMIT {BATCH_ROWS:d}"
    )


async def reseal_all(database: Database, keyring: Keyring) -> ResealReport:
    """Re-seal every value not yet under the keyring's current key, in batches; resumable at any point.

    `keyring` holds the new key as current and the old one as previous.
    """
    sealer = Sealer(keyring)
    prefix = Keyring.blob_prefix(keyring.current_key_id)
    resealed = lookups = 0
    unreadable: list[str] = []
    for column in SEALED_COLUMNS:
        after: object = ""
        if column.row_key == "id":
            after = -1
        while True:
            async with database.connection.execute(
                _pending_rows_sql(column, database.dialect), (len(prefix), prefix, after)
            ) as cursor:
                rows = await cursor.fetchall()
            if not rows:
                break
            async with database.transaction() as db:
                for row in rows:
                    row_key, sealed = row["row_key"], bytes(row["sealed"])
                    after = row_key
                    context = column.context_of(row_key)
                    try:
                        plaintext = sealer.open(sealed, context=context)
                    except CryptoError:
                        unreadable.append(f"{column.name}[{row_key}]")
                        continue
                    updates: dict[str, str | bytes] = {column.column: sealer.seal(plaintext, context=context)}
                    if column.lookup_column and column.lookup_purpose:
                        updates[column.lookup_column] = keyring.lookup_hash(
                            plaintext.decode("utf-8"), purpose=column.lookup_purpose
                        )
                        lookups += 1
                    await _update(db, column, row_key, sealed, updates)
                    resealed += 1
    return ResealReport(resealed, lookups, tuple(unreadable))


async def _update(
    db: Connection,
    column: SealedColumn,
    row_key: object,
    old_value: bytes,
    updates: dict[str, str | bytes],
) -> None:
    assignments = ", ".join(f"{name} = ?" for name in updates)
    await db.execute(
        f"UPDATE {column.table} SET {assignments}"  # noqa: S608 - names from the registry
        f" WHERE {column.row_key} = ? AND {column.column} = ?",
        (*updates.values(), row_key, old_value),
    )


async def check_all(database: Database, keyring: Keyring) -> list[str]:
    """Problems with any sealed value or look-up hash under `keyring` (give it the new key alone)."""
    sealer = Sealer(keyring)
    problems: list[str] = []
    for column in SEALED_COLUMNS:
        lookup = column.lookup_column or "NULL"
        async with database.connection.execute(
            f"SELECT {column.row_key} AS row_key, {column.column} AS sealed, {lookup} AS lookup"  # noqa: S608
            f" FROM {column.table} WHERE {column.sealed_rows(database.dialect)}"  # names from the registry
        ) as cursor:
            rows = await cursor.fetchall()
        for row in rows:
            where = f"{column.name}[{row['row_key']}]"
            try:
                plaintext = sealer.open(bytes(row["sealed"]), context=column.context_of(row["row_key"]))
            except CryptoError:
                problems.append(f"{where}: does not open under master key {keyring.current_key_id}")
                continue
            if column.lookup_purpose and row["lookup"] != keyring.lookup_hash(
                plaintext.decode("utf-8"), purpose=column.lookup_purpose
            ):
                problems.append(f"{where}: its look-up hash is not the new key's")
    return problems


async def columns_under_key(
    database: Database, key_id: str, *, ignore: Callable[[str], bool] = lambda name: False
) -> dict[str, int]:
    """How many values in each column of every table (as "table.column") were made under `key_id`.

    A value counts if it is a blob that starts like a wrapped key or sealed value of that key
    (`Keyring.blob_prefix`): this finds sealed columns that the registry above does not know.
    """
    prefix = Keyring.blob_prefix(key_id)
    found: dict[str, int] = {}
    for table, column in await _columns_that_may_hold_bytes(database):
        name = f"{table}.{column}"
        if ignore(name):
            continue
        quoted = f'"{column}"'
        async with database.connection.execute(
            f'SELECT COUNT(*) FROM "{table}" WHERE {holds_bytes(quoted, database.dialect)}'  # noqa: S608
            f" AND substr({quoted}, 1, ?) = ?",  # names read from the schema itself
            (len(prefix), prefix),
        ) as cursor:
            row = await cursor.fetchone()
        count = int(row[0]) if row is not None else 0
        if count:
            found[name] = count
    return found


async def _columns_that_may_hold_bytes(database: Database) -> list[tuple[str, str]]:
    """(table, column) of every column that can hold bytes: on SQLite any column of any table; on
    PostgreSQL the bytea columns of the database's schema (a text column there cannot hold bytes)."""
    if database.dialect == "postgresql":
        async with database.connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'bytea' ORDER BY table_name, ordinal_position"
        ) as cursor:
            return [(str(row[0]), str(row[1])) for row in await cursor.fetchall()]
    async with database.connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ) as cursor:
        tables = [str(row[0]) for row in await cursor.fetchall()]
    found: list[tuple[str, str]] = []
    for table in tables:
        async with database.connection.execute(f'PRAGMA table_info("{table}")') as cursor:
            found += [(table, str(row["name"])) for row in await cursor.fetchall()]
    return found


def known_column(name: str) -> bool:
    """True for a column this module or the vault and audit log re-key."""
    return name in WRAPPED_KEY_COLUMNS or any(column.name == name for column in SEALED_COLUMNS)
