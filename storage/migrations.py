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
    Migration(
        3,
        "clinician workspace: run-time configuration, decisions, record versions, postings, consent,"
        " photo requests, the audit log and the retention job's clock",
        """
        CREATE TABLE practice_config (
            key TEXT PRIMARY KEY,                -- a setting's name, e.g. 'clinicians', 'max_photos'
            value BLOB NOT NULL,                 -- JSON; sealed JSON when `sealed` (the admin credential)
            sealed INTEGER NOT NULL DEFAULT 0,
            updated_by TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        ALTER TABLE submissions ADD COLUMN request_id TEXT;
        ALTER TABLE submissions ADD COLUMN claimed_by TEXT;
        ALTER TABLE submissions ADD COLUMN first_viewed_at TEXT;
        ALTER TABLE submissions ADD COLUMN decision BLOB;          -- sealed JSON: kept, reason, who, when
        ALTER TABLE submissions ADD COLUMN description BLOB;       -- sealed: the clinician's description
        ALTER TABLE submissions ADD COLUMN retention_warned_at TEXT;
        ALTER TABLE submissions ADD COLUMN images_destroyed_at TEXT;
        ALTER TABLE submissions ADD COLUMN updated_at TEXT;
        CREATE INDEX submissions_by_status ON submissions (status, created_at);
        ALTER TABLE photos ADD COLUMN record_image_id TEXT;        -- vault id of the record version
        ALTER TABLE photos ADD COLUMN record_wrapped_key BLOB;
        ALTER TABLE photos ADD COLUMN record_size INTEGER;
        ALTER TABLE photos ADD COLUMN record_digest TEXT;
        ALTER TABLE photos ADD COLUMN record_edits TEXT;           -- JSON list of the edits, in order
        ALTER TABLE photos ADD COLUMN original_destroyed_at TEXT;  -- the original's key and file are gone
        CREATE TABLE postings (
            id INTEGER PRIMARY KEY,
            submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
            room_id TEXT NOT NULL,
            txn_id TEXT NOT NULL UNIQUE,         -- derived from the command: a replay posts once
            kind TEXT NOT NULL,                  -- 'view' (a photo) or 'export' (a record package)
            content BLOB NOT NULL,               -- sealed JSON: what to post
            upload BLOB,                         -- sealed JSON: the uploaded encrypted file (URL and keys)
            event_id TEXT,                       -- the bot's message, once sent
            status TEXT NOT NULL,                -- 'pending', 'posted', 'retracted'
            expires_at TEXT NOT NULL,            -- end of the viewing window: redacted and purged then
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX postings_by_status ON postings (status, expires_at);
        CREATE INDEX postings_by_submission ON postings (submission_id);
        CREATE TABLE consents (
            consent_id TEXT PRIMARY KEY,
            submission_id TEXT NOT NULL REFERENCES submissions (submission_id),
            purpose TEXT NOT NULL,               -- 'second-opinion' or 'teaching'
            asked_by TEXT NOT NULL,
            asked_at TEXT NOT NULL,
            answer TEXT,                         -- NULL until answered, then 'yes' or 'no'
            given_by TEXT,                       -- 'patient' or 'legal-authority'
            answered_at TEXT
        );
        CREATE INDEX consents_by_submission ON consents (submission_id, purpose);
        CREATE TABLE photo_requests (
            request_id TEXT PRIMARY KEY,
            room_id TEXT,                        -- the chat the bot opened, once created
            patient_lookup TEXT NOT NULL,        -- keyed hash of the patient's user id
            patient BLOB NOT NULL,               -- sealed user id
            requested_by TEXT NOT NULL,
            details BLOB NOT NULL,               -- sealed JSON: the area, the note, who asked (display)
            status TEXT NOT NULL,                -- 'opening', 'open', 'answered', 'expired'
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE TABLE audit_key (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            wrapped_key BLOB NOT NULL,           -- the audit log's own key, wrapped by the master key
            created_at TEXT NOT NULL
        );
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,             -- 1, 2, 3 ... without gaps
            at TEXT NOT NULL,
            actor TEXT NOT NULL,                 -- a staff Matrix id, 'patient', 'bot' or 'cli:<login>'
            action TEXT NOT NULL,
            subject TEXT NOT NULL,               -- a submission reference, a configured setting, or ''
            details BLOB NOT NULL,               -- sealed JSON, under the audit key
            prev_mac TEXT NOT NULL,
            mac TEXT NOT NULL                    -- HMAC over this entry and prev_mac, under the audit key
        );
        CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,                -- the last entry: a removed tail entry is detected
            mac TEXT NOT NULL
        );
        CREATE TABLE job_runs (
            job TEXT PRIMARY KEY,                -- e.g. 'retention'
            last_run_at TEXT NOT NULL            -- clock jumps are judged against it
        );
        """,
    ),
    Migration(
        4,
        "master-key rotations and their progress; the deletion-ledger entries this database reflects",
        """
        CREATE TABLE key_rotations (
            rotation_id INTEGER PRIMARY KEY,
            old_key_id TEXT NOT NULL,
            new_key_id TEXT NOT NULL,
            phase TEXT NOT NULL,                 -- 're-wrapping', 'verified', 'new key installed', 'finished'
            images_rewrapped INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT                     -- NULL while unfinished: the bot refuses to start
        );
        CREATE UNIQUE INDEX key_rotations_one_unfinished ON key_rotations ((finished_at IS NULL))
            WHERE finished_at IS NULL;
        CREATE TABLE deletion_ledger_applied (
            entry_id TEXT PRIMARY KEY,           -- an entry of the deletion ledger file, already carried out here
            applied_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        5,
        "restores of a backup, so the next start skips to the homeserver's present and reports roll-backs",
        """
        CREATE TABLE restores (
            restore_id INTEGER PRIMARY KEY,
            restored_at TEXT NOT NULL,           -- events sent before this were handled (or not) before the
            backup_made_at TEXT NOT NULL,        -- restore; they are not handled again
            rolled_back TEXT NOT NULL,           -- JSON list of run-time settings the restore rolled back
            caught_up_at TEXT                    -- NULL until the bot has skipped to the homeserver's present
        );
        """,
    ),
    Migration(
        6,
        "patient rooms the bot closed (not private, or it could not make them safe) and left",
        """
        ALTER TABLE rooms ADD COLUMN closed_at TEXT;      -- NULL while the bot serves the room
        ALTER TABLE rooms ADD COLUMN closed_reason TEXT;  -- 'not_private', 'cannot_remove', 'not_encrypted'...
        """,
    ),
    Migration(
        7,
        "each staff member's cross-signing identity, pinned on first sight; a changed one awaits an admin",
        """
        CREATE TABLE staff_identities (
            user_id TEXT PRIMARY KEY,            -- a clinician's or admin's Matrix id
            master_key TEXT NOT NULL,            -- their cross-signing master public key, pinned
            pinned_at TEXT NOT NULL,
            changed_key TEXT,                    -- a different master key seen since: trusted for nothing
            changed_at TEXT                      -- until an admin accepts it (!identity accept)
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        8,
        "media ledger: who sent each listed upload and when, checked with the homeserver before deleting",
        """
        ALTER TABLE media_ledger ADD COLUMN owner BLOB;          -- sealed user id of the message's sender
        ALTER TABLE media_ledger ADD COLUMN sent_at_ms INTEGER;  -- the message's server timestamp
        """,
    ),
    Migration(
        9,
        "the bot's own messages that show a private detail (an NHS number read back), redacted later",
        """
        CREATE TABLE private_sent (
            room_id TEXT NOT NULL,
            tag TEXT NOT NULL,                   -- what the message shows, e.g. 'nhs_number'
            event_id TEXT NOT NULL,
            PRIMARY KEY (room_id, event_id)
        );                                       -- a rowid table: SQLite 3.40's quick_check reports a
                                                 -- WITHOUT ROWID table's NOT NULL column after its key as NULL
        """,
    ),
    Migration(
        10,
        "invitations refused because the patient's homeserver is not allowed: a count and a rate limit per server",
        """
        CREATE TABLE refused_invites (
            server TEXT PRIMARY KEY,
            refusals INTEGER NOT NULL,
            last_told_at TEXT                    -- the last explanation sent to someone on this server
        );
        """,
    ),
    Migration(
        11,
        "photo captions: the patient's words sent with a photo, shown to the clinician and in the package",
        """
        ALTER TABLE photos ADD COLUMN caption BLOB;  -- sealed: the image event's caption, or NULL
        """,
    ),
    Migration(
        12,
        "reminders of unclaimed requests: when the clinician room was reminded of each",
        """
        ALTER TABLE submissions ADD COLUMN reminded_at TEXT;  -- NULL until the room is reminded of it
        """,
    ),
    Migration(
        13,
        "the alert that announced each submission in each clinician room: the root of its thread",
        """
        CREATE TABLE alert_events (
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,              -- the alert message: the root of the submission's thread
            reference TEXT NOT NULL,             -- the submission it announced
            created_at TEXT NOT NULL,
            PRIMARY KEY (room_id, event_id)
        ) WITHOUT ROWID;
        CREATE INDEX alert_events_by_reference ON alert_events (reference);
        """,
    ),
    Migration(
        14,
        "destructive commands waiting for confirmation; a described view-then-delete's undo window",
        """
        CREATE TABLE pending_commands (
            key TEXT PRIMARY KEY,                -- '<room id>|<clinician id>': one waiting command each
            command BLOB NOT NULL,               -- sealed: the command as typed, with its reference
            asked_at TEXT NOT NULL
        ) WITHOUT ROWID;
        ALTER TABLE submissions ADD COLUMN destroy_at TEXT;  -- described view-then-delete: photos go then
        """,
    ),
    Migration(
        15,
        "web chat links: single-use tokens (only their SHA-256) and the throwaway accounts they made",
        """
        CREATE TABLE web_links (
            token_hash TEXT PRIMARY KEY,         -- SHA-256 (hex) of the link's token; the token is never stored
            kind TEXT NOT NULL,                  -- 'request' (a clinician's !request link) or 'poster'
            details BLOB,                        -- sealed JSON of a request link: area, note, the clinician
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,            -- the link must be redeemed by then
            redeemed_at TEXT,                    -- the one redemption: a Synapse registration token was made
            username TEXT,                       -- the random localpart the bot chose (web-...), no patient data
            room_id TEXT,                        -- the chat the bot opened once the page was ready
            account_until TEXT,                  -- the account is erased then at the latest
            closed_at TEXT,                      -- the account was deactivated and erased
            closed_reason TEXT
        );                                       -- a rowid table (see private_sent)
        CREATE INDEX web_links_by_kind ON web_links (kind, created_at);
        CREATE INDEX web_links_open ON web_links (closed_at, redeemed_at);
        """,
    ),
)
