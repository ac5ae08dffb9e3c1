"""Ordered schema migrations: (version, description, SQL), applied in order, each in one transaction.

A new install runs them all; an existing database runs those above its `PRAGMA user_version`; a database
newer than the last entry here is refused (see `storage.database`). Never edit a released migration: add one.

Columns marked "sealed" hold AES-GCM ciphertext made by `bot.keyring.Sealer`; nothing about a patient is
stored in clear. Room and event ids are random identifiers and stay in clear so rows can be found.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "bot account, sync checkpoint, handled events, outbox, rooms, conversations",
        """
        CREATE TABLE bot_account (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            user_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            access_token BLOB NOT NULL,          -- sealed
            cross_signing BLOB,                  -- sealed JSON: private master and self-signing keys
            signed_device_key TEXT,              -- the device ed25519 key last signed by the self-signing key
            created_at TEXT NOT NULL
        );
        CREATE TABLE sync_checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            next_batch TEXT NOT NULL,
            saved_at TEXT NOT NULL
        );
        CREATE TABLE handled_events (
            event_id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL,
            outcome TEXT NOT NULL,               -- 'handled' or 'failed' (an error reply was sent)
            handled_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            room_id TEXT NOT NULL,
            txn_id TEXT NOT NULL UNIQUE,         -- derived from the event answered: a replay is de-duplicated
            kind TEXT NOT NULL,                  -- 'message' or 'redaction'
            payload BLOB NOT NULL,               -- sealed JSON
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX outbox_by_room ON outbox (room_id, id);
        CREATE TABLE rooms (
            room_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,                  -- 'patient', 'clinician' or 'admin'
            member_lookup TEXT,                  -- keyed hash of the patient's user id, for look-ups
            member BLOB,                         -- sealed: the patient's user id
            joined_at TEXT NOT NULL
        );
        CREATE INDEX rooms_by_member ON rooms (member_lookup);
        CREATE TABLE conversations (
            room_id TEXT PRIMARY KEY REFERENCES rooms (room_id),
            state TEXT NOT NULL,
            data BLOB NOT NULL,                  -- sealed JSON of the conversation
            last_activity_at TEXT NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "photos, submissions and the media ledger of the patient journey",
        """
        CREATE TABLE photos (
            photo_id TEXT PRIMARY KEY,           -- derived from the event that carried it: a replay stores once
            room_id TEXT NOT NULL REFERENCES rooms (room_id),
            conversation_id TEXT NOT NULL,
            submission_id TEXT REFERENCES submissions (submission_id),
            wrapped_key BLOB NOT NULL,           -- the image key wrapped by the master key; deleting it shreds
            size INTEGER NOT NULL,
            digest TEXT NOT NULL,                -- keyed hash, not a plain hash of the image
            mime TEXT NOT NULL,
            source_format TEXT NOT NULL,
            quality TEXT NOT NULL,               -- comma-separated quality issues, '' when none
            created_at TEXT NOT NULL
        );
        CREATE INDEX photos_by_conversation ON photos (conversation_id);
        CREATE TABLE submissions (
            submission_id TEXT PRIMARY KEY,
            reference TEXT NOT NULL UNIQUE,
            room_id TEXT NOT NULL REFERENCES rooms (room_id),
            nhs_number BLOB NOT NULL,            -- sealed
            nhs_lookup TEXT NOT NULL,            -- keyed hash, to find a patient's submissions
            keep_in_record INTEGER NOT NULL,
            intimate INTEGER NOT NULL,
            acting_for_someone INTEGER NOT NULL,
            details BLOB NOT NULL,               -- sealed JSON: the patient's notes, the requested area
            status TEXT NOT NULL,                -- 'new', 'claimed', 'done', 'deleted'
            created_at TEXT NOT NULL
        );
        CREATE INDEX submissions_by_nhs ON submissions (nhs_lookup);
        CREATE TABLE media_ledger (
            id INTEGER PRIMARY KEY,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            media_lookup TEXT NOT NULL UNIQUE,   -- keyed hash of the URL: each upload is listed once
            media BLOB NOT NULL,                 -- sealed mxc:// URL
            status TEXT NOT NULL,                -- 'pending', 'deleted', 'already gone', 'not configured', 'failed'
            attempts INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX media_ledger_by_status ON media_ledger (status);
        """,
    ),
)
