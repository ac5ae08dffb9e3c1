"""Wiring: builds every object once from the settings, and runs the sync loop.

The sync loop is ours, not nio's `sync_forever`: a batch is fetched, handled and committed, and only then
is the checkpoint saved (exactly-once, matrix-notes #1). A batch that could not be finished (the homeserver
went away mid-way) is fetched again from the same checkpoint; handled events are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.clock import Clock, iso
from bot.conversation import AskConsent, State
from bot.cross_signing import CrossSigningKeys
from bot.errors import TransientError, error_reference
from bot.executor import CpuPool
from bot.faults import FaultInjector
from bot.ids import DeviceID, RoomID, UserID
from bot.key_rotation import refuse_unfinished_rotation
from bot.keyring import (
    CryptoError,
    Keyring,
    MasterKeyError,
    Sealer,
    create_master_key_file,
    load_master_key_file,
)
from bot.matrix.events import Incoming, ReactionMessage
from bot.matrix.gateway import (
    Credentials,
    DeviceTrust,
    MatrixError,
    MatrixGateway,
    TransientMatrixError,
    new_client,
    sync_once,
)
from bot.matrix.reachability import bounded, probe
from bot.metrics import BotGaugeSources, BotMetrics, Metrics, sample_loop_lag
from bot.production_check import run_time_changes
from bot.settings import Settings, SettingsError
from bot.startup import Banner, after_restore, come_online, restore_notice
from bot.status_server import Heartbeat, PublicBindRefusedError, health_of, start_status_server
from bot.trust_policy import DeviceVerdict, TrustPolicy
from bot.web_chat.serve import web_chat_endpoint
from handlers.admin import AdminDesk
from handlers.clinician import ClinicianDesk
from handlers.commands import Invocation
from handlers.credential_guard import CredentialGuard
from handlers.delivery import Delivery
from handlers.effects import ConsentRecords, Effects, SubmissionRecords
from handlers.media_purge import purge_pending_media
from handlers.patient import PatientHandler
from handlers.patient_policy import PolicyInForce
from handlers.photo_intake import PhotoIntake
from handlers.photo_requests import PhotoRequests
from handlers.record_packages import RecordPackages
from handlers.refusals import InviteRefusals
from handlers.reminders import ReminderJob
from handlers.request_links import request_links_for
from handlers.retention import RetentionJob
from handlers.room_guard import RoomGuard
from handlers.room_locks import RoomLocks
from handlers.router import RoomHandlers, Router
from handlers.staff import StaffRooms, command_table
from handlers.staff_media import StaffMedia
from storage.account import AccountRepository, BotAccount
from storage.alert_events import AlertEvents
from storage.audit import AuditLog
from storage.backup import refuse_interrupted_restore
from storage.checkpoint import SyncCheckpoint
from storage.confirmations import PendingConfirmations
from storage.consents import ConsentRepository
from storage.conversations import ConversationRepository
from storage.database import Database, DatabaseBusyError, DatabaseError, database_busy
from storage.deletion_ledger import DeletionLedger, DeletionReplay, ledger_path
from storage.handled_events import HandledEvents
from storage.media_ledger import AlertChange, MediaLedger
from storage.outbox import Outbox, derive_txn_id
from storage.photo_requests import PhotoRequestRepository
from storage.photo_store import PhotoStore
from storage.photos import PhotoRepository
from storage.postings import PostingRepository
from storage.practice_config import ConfigRepository, LiveConfig, defaults_from
from storage.refused_invites import RefusedInvites
from storage.restores import Restore, Restores
from storage.rooms import RoomKind, RoomRepository
from storage.staff_identities import StaffIdentities
from storage.submissions import Status, Submission, SubmissionRepository
from storage.vault import ImageKeyUnavailableError, ImageMissingError, ImageUnreadableError, Vault

log = logging.getLogger(__name__)
T = TypeVar("T")

SYNC_TIMEOUT_MS = 30_000
RETRY_SECONDS = 2.0
CLOCK_JUMP_TOLERANCE = timedelta(seconds=30)  # wall clock against monotonic, between housekeeping passes
SYNC_HEALTH_MAX_AGE = 120.0  # seconds since the last successful sync before /healthz is unhealthy
RESTORE_SYNC_TIMEOUT_MS = 1000  # an initial sync returns at once whatever its timeout
INIT_SECONDS = 60.0  # `photobot init`: logging in, uploading keys and signing, once the homeserver answers


class NotInitialisedError(Exception):
    pass


def prepare_data_dir(settings: Settings) -> None:
    """The data directory and everything in it readable by the bot's user only."""
    for directory in (settings.data_dir, settings.store_dir, settings.vault_dir):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        except OSError as error:
            raise SettingsError(
                [f"PHOTOBOT_DATA_DIR: cannot create or use {directory} ({error.strerror or error})."]
            ) from None


@dataclass
class App:
    settings: Settings
    clock: Clock
    keyring: Keyring
    database: Database
    gateway: MatrixGateway
    accounts: AccountRepository
    checkpoint: SyncCheckpoint
    delivery: Delivery
    router: Router
    pool: CpuPool
    faults: FaultInjector
    vault: Vault
    patient: PatientHandler
    config: LiveConfig
    audit: AuditLog
    desk: ClinicianDesk
    staff: StaffRooms
    media: StaffMedia
    retention: RetentionJob
    reminders: ReminderJob
    metrics: BotMetrics
    metrics_registry: Metrics
    sync_heartbeat: Heartbeat
    ledger: DeletionLedger

    async def replay_deletion_ledger(self) -> None:
        """Destructions the database does not reflect (a restored backup, a crash before the commit): again."""
        report = await DeletionReplay(
            self.ledger,
            self.database,
            self.vault,
            submissions=self.desk.submissions,
            postings=self.desk.postings,
            audit=self.audit,
            clock=self.clock,
        ).run()
        if report.replayed or report.rejected:
            log.info(
                "deletion ledger: %d of %d entries carried out again (%d records changed, %d files removed);"
                " %d lines did not verify",
                report.replayed,
                report.entries,
                report.rows_changed,
                report.files_removed,
                report.rejected,
            )

    async def clean_up_after_crash(self) -> None:
        """Torn temporary files and vault files whose row was never committed: remove them before serving."""
        torn = await self.pool.run(self.vault.clean_temporary_files)
        async with self.database.connection.execute(
            "SELECT photo_id, record_image_id, original_destroyed_at FROM photos"
        ) as cursor:
            rows = await cursor.fetchall()
        known = {str(row["photo_id"]) for row in rows if row["original_destroyed_at"] is None}
        known |= {str(row["record_image_id"]) for row in rows if row["record_image_id"]}
        orphans = await self.pool.run(self.vault.sweep_orphans, known)
        if torn or orphans:
            log.info("start-up clean-up removed %d torn and %d orphaned vault files", torn, len(orphans))

    async def damaged_images(self) -> tuple[int, list[str]]:
        """Every stored image opened and checked (its AES-GCM tag binds it to its id): how many were checked,
        and one plain line per image that cannot be shown. For `photobot check`: it reads the whole vault."""
        async with self.database.connection.execute(
            "SELECT submission_id, reference FROM submissions WHERE status != 'deleted' ORDER BY created_at"
        ) as cursor:
            submissions = [(str(row[0]), str(row[1])) for row in await cursor.fetchall()]
        images: list[tuple[str, str, bytes]] = []
        for submission_id, reference in submissions:
            for photo in await self.desk.submissions.photos(submission_id):
                images.append((f"{reference} photo {photo.number}", photo.image_id, photo.image_key))
                if photo.record_image_id and not photo.original_destroyed:
                    name = f"{reference} photo {photo.number} (the unedited original)"
                    images.append((name, photo.photo_id, photo.wrapped_key))
        async with self.database.connection.execute(
            "SELECT photo_id, wrapped_key FROM photos WHERE submission_id IS NULL ORDER BY created_at"
        ) as cursor:
            for row in await cursor.fetchall():
                images.append(("a photo in an unfinished conversation", str(row[0]), bytes(row[1])))
        damaged = []
        for name, image_id, key in images:
            try:
                await self.pool.run(self.vault.get, image_id, key)
            except ImageMissingError:
                damaged.append(f"{name}: its file is missing from the vault")
            except ImageKeyUnavailableError:
                damaged.append(f"{name}: its key was made under a master key this installation does not hold")
            except ImageUnreadableError:
                damaged.append(f"{name}: its file is damaged (or is another image's file)")
        return len(images), damaged

    async def close(self) -> None:
        await self.gateway.client.close()
        await self.database.close()
        self.pool.shutdown()


async def open_app(settings: Settings, clock: Clock) -> App:
    """Everything the bot needs to serve. Refuses to start without a valid master key or account."""
    refuse_interrupted_restore(settings.data_dir)
    keyring = Keyring(load_master_key_file(settings.master_key_file))
    prepare_data_dir(settings)
    database = await _open_database(settings)
    try:
        await _check_database(database)
        await refuse_unfinished_rotation(database)
        return await _build(settings, clock, keyring, database)
    except BaseException:
        await database.close()
        raise


def _damaged(path: Path, found: str) -> DatabaseError:
    return DatabaseError(
        f"The database {path} is damaged ({found[:200]}). The bot will not use it: keep the damaged file "
        "for investigation, and restore your latest backup (docs/operator.md)."
    )


async def _open_database(settings: Settings) -> Database:
    try:
        return await Database.open(settings.database_path)
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError) and database_busy(error):
            raise DatabaseBusyError(
                f"The database {settings.database_path} is locked by another process; try again later."
            ) from None
        if (error.sqlite_errorcode & 0xFF) not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise
        raise _damaged(settings.database_path, str(error)) from None


async def _check_database(database: Database) -> None:
    """SQLite's own check of every page (PRAGMA quick_check), at every start: a damaged page found now,
    in plain words, rather than a patient's reply failing later."""
    try:
        async with database.connection.execute("PRAGMA quick_check") as cursor:
            found = [str(row[0]) for row in await cursor.fetchall()]
    except sqlite3.DatabaseError as error:
        found = [str(error)]
    if found != ["ok"]:
        raise _damaged(database.path, f"SQLite's check found {len(found)} problem(s), the first: {found[0]}")


async def _build(settings: Settings, clock: Clock, keyring: Keyring, database: Database) -> App:
    sealer = Sealer(keyring)
    accounts = AccountRepository(database, sealer, clock)
    try:
        account = await accounts.load()
    except CryptoError as error:
        raise MasterKeyError(
            f"The master key file {settings.master_key_file} does not open this installation's data (it was "
            f"{error}). Point the configuration at the right key file, restoring it from your key backup; "
            "do not run `photobot init`, which cannot bring the old key back."
        ) from None
    if account is None:
        raise NotInitialisedError(
            f"{settings.database_path} holds no bot account yet: run `photobot init` first."
        )
    faults = FaultInjector(
        settings.fault_points, enabled=settings.test_mode, fault_dir=settings.data_dir / "faults"
    )
    config = LiveConfig(defaults_from(settings), ConfigRepository(database, sealer, clock))
    await config.refresh()
    rooms = RoomRepository(database, keyring, sealer, clock)
    identities = StaffIdentities(database, clock)
    trust = TrustPolicy(rooms, config, clock, identities)
    client = new_client(
        settings.homeserver_url, account.user_id, settings.store_dir, keyring.nio_pickle_passphrase()
    )
    gateway = MatrixGateway(
        client, trust=trust, admin_token=lambda: config.current.homeserver_admin_token.value
    )
    trust.use_keys_query(gateway.query_device_keys)
    trust.on_identity_changed(_identity_alert(database, Outbox(database, sealer, clock), config, clock))
    gateway.restore(Credentials(account.user_id, account.device_id, account.access_token))
    outbox = Outbox(database, sealer, clock)
    # Always counted (cheap, in memory); only served when PHOTOBOT_STATUS_PORT is set (see `run`).
    metrics_registry = Metrics(prefix="photobot_")
    metrics = BotMetrics.create(metrics_registry, _gauge_sources(database, clock))
    delivery = Delivery(outbox, gateway, faults, metrics, alerts := AlertEvents(database, clock))
    handled = HandledEvents(database, clock)
    locks = RoomLocks()
    pool = CpuPool(settings.cpu_workers)
    vault = Vault(settings.vault_dir, keyring)
    ledger = DeletionLedger(ledger_path(settings.data_dir), keyring)
    audit = AuditLog(database, keyring, clock)
    consents = ConsentRepository(database)
    submissions = SubmissionRepository(database, sealer)
    postings = PostingRepository(database, sealer, clock)
    workspace_lock = asyncio.Lock()
    # The patient's side: its photo store (vault file and row together), intake, effects and handler.
    patient = PatientHandler(
        database=database,
        rooms=rooms,
        conversations=(conversations := ConversationRepository(database, sealer)),
        handled=handled,
        locks=locks,
        clock=clock,
        faults=faults,
        policy_in_force=PolicyInForce(config, settings.test_mode),
        intake=PhotoIntake(
            gateway,
            photo_store := PhotoStore(
                vault=vault,
                photos=PhotoRepository(sealer),
                ledger=ledger,
                database=database,
                pool=pool,
                clock=clock,
            ),
            pool,
            faults,
            metrics,
        ),
        effects=Effects(
            conversations=conversations,
            outbox=outbox,
            photos=photo_store,
            submissions=SubmissionRecords(
                submissions, (photo_requests := PhotoRequestRepository(keyring, sealer)), photo_store, keyring
            ),
            consents=ConsentRecords(consents, audit, outbox, config, settings.reminders.zone),
            config=config,
            delivery=delivery,
            media=MediaLedger(database, keyring, sealer, clock),
            gateway=gateway,
        ),
        metrics=metrics,
    )
    requests = PhotoRequests(gateway, patient, photo_requests, clock, settings.allowed_servers)

    async def ask_consent(
        submission: Submission, consent_id: str, purpose: str, asked_by: UserID, now: datetime
    ) -> bool:
        ask = AskConsent(consent_id, purpose, submission.reference, now)
        return await patient.ask_consent(submission.room_id, ask, submission.submission_id, asked_by)

    packages = RecordPackages(submissions, consents, vault, pool, config, clock)
    media = StaffMedia(gateway, postings, submissions, vault, pool, clock, config, packages, metrics)
    desk = ClinicianDesk(
        database=database,
        submissions=submissions,
        postings=postings,
        consents=consents,
        outbox=outbox,
        vault=vault,
        pool=pool,
        audit=audit,
        clock=clock,
        config=config,
        media=media,
        lock=workspace_lock,
        ask_patient_consent=ask_consent,
        open_request=requests.open,
        faults=faults,
        ledger=ledger,
        alerts=alerts,
        zone=settings.reminders.zone,
        undo_window=settings.undo_window,
        request_links=request_links_for(settings.web_chat, database, sealer, audit, settings.reminders.zone),
    )
    retention = RetentionJob(database, submissions, audit, outbox, desk, config, clock, workspace_lock)
    admin = AdminDesk(config, audit, _redactor(outbox, database), retention.resume, identities)
    staff = StaffRooms(
        database,
        handled,
        outbox,
        delivery,
        config,
        clock,
        {},
        metrics,
        _device_check(gateway, trust),
        alerts,
        PendingConfirmations(database, sealer),
    )
    staff.table = command_table(desk, admin, staff.help)

    def staff_kind(room_id: RoomID) -> RoomKind | None:
        kind = config.current.staff_room_kind(room_id)
        return None if kind is None else RoomKind(kind)

    delivery.when_removal_refused(patient.removal_refused)
    guard = RoomGuard(gateway, patient)
    credentials = CredentialGuard(database, outbox, config, gateway)  # a pasted credential leaves any room
    router = Router(
        gateway=gateway,
        rooms=rooms,
        handled=handled,
        delivery=delivery,
        locks=locks,
        allowed_servers=settings.allowed_servers,
        staff_kind=staff_kind,
        start_patient=patient.start,
        refuse_invite=InviteRefusals(
            database=database,
            rooms=rooms,
            refused=RefusedInvites(),
            outbox=outbox,
            delivery=delivery,
            gateway=gateway,
            config=config,
            clock=clock,
            allowed_servers=settings.allowed_servers,
        ).refuse,
        handlers={
            RoomKind.PATIENT: RoomHandlers(
                handle=credentials.guarding(RoomKind.PATIENT, patient.handle), failed=patient.failed
            ),
            RoomKind.CLINICIAN: RoomHandlers(
                handle=credentials.guarding(RoomKind.CLINICIAN, staff.handler(RoomKind.CLINICIAN)),
                failed=staff.failed,
            ),
            RoomKind.ADMIN: RoomHandlers(
                handle=credentials.guarding(RoomKind.ADMIN, staff.handler(RoomKind.ADMIN)),
                failed=staff.failed,
            ),
        },
        metrics=metrics,
        admit_patient_room=guard.admit,
        still_private=guard.still_private,
    )
    return App(
        settings=settings,
        clock=clock,
        keyring=keyring,
        database=database,
        gateway=gateway,
        accounts=accounts,
        checkpoint=SyncCheckpoint(database, clock),
        delivery=delivery,
        router=router,
        pool=pool,
        faults=faults,
        vault=vault,
        patient=patient,
        config=config,
        audit=audit,
        desk=desk,
        staff=staff,
        media=media,
        retention=retention,
        reminders=ReminderJob(database, submissions, outbox, config, clock, settings.reminders),
        metrics=metrics,
        metrics_registry=metrics_registry,
        sync_heartbeat=Heartbeat(),
        ledger=ledger,
    )


def _gauge_sources(database: Database, clock: Clock) -> BotGaugeSources:
    """The scrape-time gauges, each one SQL query; known states and statuses are listed even at zero."""

    async def counts(sql: str, known: Mapping[str, float]) -> dict[str, float]:
        async with database.connection.execute(sql) as cursor:
            rows = await cursor.fetchall()
        return {**known, **{str(row[0]): float(row[1]) for row in rows}}

    async def count(sql: str, *params: str) -> float:
        async with database.connection.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row is not None else 0.0

    async def conversations_by_state() -> Mapping[str, float]:
        sql = "SELECT state, COUNT(*) FROM conversations GROUP BY state"
        return await counts(sql, dict.fromkeys((state.value for state in State), 0.0))

    async def queue_by_status() -> Mapping[str, float]:
        sql = "SELECT status, COUNT(*) FROM submissions WHERE status != 'deleted' GROUP BY status"
        listed = (Status.NEW, Status.CLAIMED, Status.DONE)
        return await counts(sql, dict.fromkeys((status.value for status in listed), 0.0))

    async def purge_backlog() -> float:
        """Uploads not yet deleted from the homeserver, and posted images past their viewing window."""
        sql = (
            "SELECT (SELECT COUNT(*) FROM media_ledger WHERE status = 'pending')"
            " + (SELECT COUNT(*) FROM postings WHERE status != 'retracted' AND expires_at <= ?)"
        )
        return await count(sql, iso(clock.now()))

    async def outbox_backlog() -> float:
        return await count("SELECT COUNT(*) FROM outbox")

    return BotGaugeSources(conversations_by_state, queue_by_status, purge_backlog, outbox_backlog)


def _database_probe(database: Database) -> Callable[[], Awaitable[tuple[bool, str]]]:
    async def answers() -> tuple[bool, str]:
        async with database.connection.execute("SELECT 1") as cursor:
            row = await cursor.fetchone()
        return (row is not None and row[0] == 1), "answers"

    return answers


@contextlib.asynccontextmanager
async def status_endpoint(app: App) -> AsyncIterator[None]:
    """While the bot serves: /metrics and /healthz, and the event-loop lag sampler. Off when the port is 0."""
    settings = app.settings
    if settings.status_port == 0:
        yield
        return
    health = health_of(
        {
            "sync": app.sync_heartbeat.probe("successful sync", SYNC_HEALTH_MAX_AGE),
            "database": _database_probe(app.database),
        }
    )
    try:
        server = await start_status_server(
            settings.status_host,
            settings.status_port,
            app.metrics_registry,
            health,
            allow_public=settings.status_public,
        )
    except (OSError, PublicBindRefusedError) as error:
        where = f"{settings.status_host}:{settings.status_port}"
        raise SettingsError(
            [f"PHOTOBOT_STATUS_HOST/PHOTOBOT_STATUS_PORT: cannot serve metrics on {where} ({error})."]
        ) from None
    log.info("metrics and health served on %s:%d", settings.status_host, server.port)
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_loop_lag(app.metrics.event_loop_lag_seconds, stop=stop_sampling))
    try:
        yield
    finally:
        stop_sampling.set()
        await sampler
        await server.close()


def _redactor(outbox: Outbox, database: Database) -> Callable[[Invocation], Awaitable[None]]:
    """Removes an admin's message that carried a secret (the admin credential) from the room."""

    async def redact(cmd: Invocation) -> None:
        async with database.transaction() as db:
            await outbox.add(
                db,
                cmd.room_id,
                derive_txn_id(cmd.event_id, 98),
                "redaction",
                {"event_id": cmd.event_id, "reason": "Removed: it carried a secret."},
            )

    return redact


async def ensure_device_signed(gateway: MatrixGateway, accounts: AccountRepository) -> None:
    """Sign our device with the self-signing key unless the device key now in use is the one last signed
    (first start, or the device changed). Used by `init` and at every start."""
    account = await accounts.load()
    if account is None or account.cross_signing is None:
        return
    if account.signed_device_key == gateway.device_ed25519():
        return
    signed = await gateway.sign_own_device(account.cross_signing)
    await accounts.save(replace(account, signed_device_key=signed))
    log.info("signed the bot's device with its cross-signing identity")


@dataclass
class ClockWatch:
    """Notices the wall clock jumping (against the monotonic clock) between housekeeping passes.

    After a jump, time-based destruction (idle conversations, viewing windows) waits until the clock has
    been steady for a whole period: a time written while the clock was wrong (set back, then corrected)
    must not make a conversation or a viewing look older than it is. Destroying late is safe; early is not.
    The retention job has its own, stricter guard.
    """

    clock: Clock
    monotonic: Callable[[], float] = time.monotonic
    _last: tuple[datetime, float] | None = None
    _jumped_at: float | None = None

    def jumped(self) -> timedelta | None:
        """How far the clock jumped since the last call, if it did."""
        now, steady = self.clock.now(), self.monotonic()
        jump = None
        if self._last is not None:
            drift = (now - self._last[0]) - timedelta(seconds=steady - self._last[1])
            if abs(drift) > CLOCK_JUMP_TOLERANCE:
                self._jumped_at, jump = steady, drift
        self._last = (now, steady)
        return jump

    def held(self, period: timedelta) -> bool:
        """True until `period` of steady time has passed since the last jump."""
        return self._jumped_at is not None and self.monotonic() - self._jumped_at < period.total_seconds()


async def housekeeping(app: App, stop: asyncio.Event) -> None:
    """Every little while: expire idle conversations, retry media deletions and unsent replies."""
    # Often enough that idle conversations end, and described view-then-delete photos go, close to on time.
    shortest = min(app.settings.conversation_timeout, app.settings.undo_window).total_seconds()
    interval = min(60.0, max(1.0, shortest / 4))
    watch = ClockWatch(app.clock)
    admin_token = app.config.current.homeserver_admin_token.value
    while not stop.is_set():
        await _sleep_or_stop(stop, interval)
        try:
            await app.config.refresh()
            current = app.config.current
            jump = watch.jumped()
            if jump is not None:
                log.warning(
                    "the clock jumped by %+.0f s: idle conversations and viewing windows are not ended until it"
                    " has been steady for a full period",
                    jump.total_seconds(),
                )
            if not watch.held(current.conversation_timeout):
                await app.patient.expire_idle(current.conversation_timeout)
            if not watch.held(current.viewing_window):
                await app.desk.end_viewing_windows()
            await app.media.retract_due()
            await app.media.post_pending()
            await app.retention.run()
            await app.reminders.run()
            if current.homeserver_admin_token.value != admin_token:
                admin_token = current.homeserver_admin_token.value
                await app.patient.media.retry_now()  # a new credential: no waiting out the old one's backoff
            await purge_pending_media(app.patient.media, app.gateway)
            await _tell_admins_about_purges(app)
            await app.delivery.flush_all()
        except TransientError:
            log.info("housekeeping will try again: the homeserver is not reachable")
        except sqlite3.OperationalError as error:
            if database_busy(error):
                log.warning("housekeeping will try again: the database is locked by another process")
            else:
                log.exception("housekeeping failed (ref %s)", error_reference())
        except Exception:
            log.exception("housekeeping failed (ref %s)", error_reference())


def _device_check(
    gateway: MatrixGateway, trust: TrustPolicy
) -> Callable[[Incoming], Awaitable[DeviceVerdict]]:
    """Whether the device that sent a staff command (as the encryption proves it) may be obeyed."""

    async def check_device(event: Incoming) -> DeviceVerdict:
        if isinstance(event, ReactionMessage) and not event.encrypted:
            return await trust.staff_account(event.sender)  # Element Web reacts in clear: no device proof
        if event.sender_keys is None:
            return DeviceVerdict.UNKNOWN
        device = await gateway.sender_device(event.sender, event.sender_keys)
        return DeviceVerdict.UNKNOWN if device is None else await trust.staff_device(event.sender, *device)

    return check_device


def _identity_alert(
    database: Database, outbox: Outbox, config: LiveConfig, clock: Clock
) -> Callable[[UserID], Awaitable[None]]:
    """Queue (never send: a send may be under way) the admin room's alert about a changed staff identity."""

    async def alert(user_id: UserID) -> None:
        admin_room = config.current.admin_room
        if admin_room is None:
            return
        text = (
            f"**{user_id}'s cross-signing identity has changed** (reset with their password, or someone else "
            "has their password). Until you accept it I obey none of their devices and share nothing with "
            f"them. Check with them in person or by phone, then: `!identity accept {user_id}`"
        )
        async with database.transaction() as db:
            txn_id = derive_txn_id(f"identity-changed:{user_id}:{iso(clock.now())}", 0)
            await outbox.add(db, admin_room, txn_id, "message", {"text": text})

    return alert


async def _tell_admins_about_purges(app: App) -> None:
    """The admin room is told once when deleting uploads from the homeserver keeps failing, and once when it
    works again; the log says it too. `photobot check` shows the backlog at any time."""
    async with app.database.transaction() as db:
        change = await app.patient.media.alert_change(db)
        if change is None:
            return
        kind, backlog = change
        if kind is AlertChange.FAILING:
            log.warning("deleting uploads from the homeserver keeps failing: %d wait", backlog.waiting)
            text = (
                "**Deleting patients' uploads from the chat server keeps failing**: "
                f"{backlog.waiting} upload(s) wait, refused up to {backlog.most_failures} times. The photos are "
                "safe in the bot, but their encrypted copies stay on the chat server until this works. Check the "
                "homeserver-admin credential (`!set homeserver_admin_token ...`); I keep trying."
            )
        else:
            log.info("deleting uploads from the homeserver works again; none wait")
            text = "Deleting patients' uploads from the chat server works again: none are waiting."
        admin_room = app.config.current.admin_room
        if admin_room is not None:
            txn_id = derive_txn_id(f"media-purge-{kind.value}:{iso(app.clock.now())}", 0)
            await app.patient.outbox.add(db, admin_room, txn_id, "message", {"text": text})


async def run(app: App, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    async with status_endpoint(app), web_chat_endpoint(app):  # first, so an operator sees a start-up hang
        await app.replay_deletion_ledger()  # before the clean-up: it may remove rows, making files orphans
        await app.clean_up_after_crash()
        log.info("%s", await _banner(app))
        overrides = await app.config.repository.overrides()
        if changed := run_time_changes(app.config.defaults, app.config.current, overrides):
            log.warning("settings changed at run time override the environment: %s", "; ".join(changed))

        async def start_keys() -> None:
            await app.gateway.start_keys()
            await ensure_device_signed(app.gateway, app.accounts)

        if not await come_online(app.settings.homeserver_url, start_keys, stop):
            log.info("the bot stopped before the homeserver answered")
            return
        chores = asyncio.create_task(housekeeping(app, stop))
        try:
            await _sync_loop(app, stop)
        finally:
            stop.set()
            await chores
            log.info("the bot stopped: the last batch handled is saved, it resumes from there")


async def _banner(app: App) -> str:
    config = app.config.current
    return Banner(
        user_id=app.gateway.user_id,
        device_id=app.gateway.device_id,
        homeserver_url=app.settings.homeserver_url,
        patient_rooms=await app.patient.rooms.count_patient_rooms(),
        clinician_rooms=len(config.clinician_rooms),
        admin_room=config.admin_room is not None,
        clinicians=len(config.clinicians),
        admins=len(config.admins),
        admin_token=bool(config.homeserver_admin_token.value),
        status_port=app.settings.status_port,
    ).line()


async def _sync_loop(app: App, stop: asyncio.Event) -> None:
    token = await app.checkpoint.load()
    restore = await Restores(app.database).awaiting_catch_up()
    if restore is not None:
        token = None  # the restored checkpoint is older than what was handled: skip to the present instead
        log.info(
            "restored from a backup: starting from the homeserver's present, not the backup's checkpoint"
        )
    full_state = True  # rooms are not persisted by nio: rebuild them on the first sync (matrix-notes #7)
    fetched = 0  # how often the batch after `token` has been asked for
    log.info("the bot is serving")
    while not stop.is_set():
        try:
            timeout_ms = 0 if full_state else SYNC_TIMEOUT_MS
            if fetched:
                # Synapse answers a repeated /sync (same since, timeout, ...) from its response cache for two
                # minutes: a batch fetched again would come back as it was, without the newer events of other
                # rooms. A distinct timeout makes it a new request (there are events: it returns at once).
                timeout_ms = 1 + fetched % 1000
            if restore is not None and not fetched:
                # Not the initial sync of an earlier start (timeout 0), which Synapse may still hold in its
                # response cache, with its old next_batch: that would bring back what the restore must skip.
                timeout_ms = RESTORE_SYNC_TIMEOUT_MS + secrets.randbelow(1000)
            fetched += 1
            batch = await _until_stopped(
                sync_once(app.gateway, token, full_state=full_state, timeout_ms=timeout_ms), stop
            )
            if batch is None:
                return
            app.sync_heartbeat.beat()
            await app.gateway.maintain_keys(batch.one_time_key_count)
            await app.config.refresh()  # a change made from the CLI is in force for this batch
            if restore is not None:
                batch = after_restore(batch, restore)
            complete = await app.router.handle_batch(batch)
            if complete:
                app.faults.hit("before_sync_checkpoint")
                if restore is not None:
                    await _caught_up(app, restore, batch.next_batch)
                    restore = None
                else:
                    await app.checkpoint.save(batch.next_batch)
                token = batch.next_batch
                full_state = False
                fetched = 0
            else:
                await _sleep_or_stop(stop, RETRY_SECONDS)
            await app.delivery.flush_all()
        except TransientMatrixError as error:
            log.info("the homeserver is not reachable (%s); trying again", error)
            await _sleep_or_stop(stop, RETRY_SECONDS)
        except sqlite3.OperationalError as error:
            if not database_busy(error):
                raise
            # Another process (a backup, the CLI, an operator's sqlite3) holds the database for longer than
            # the busy timeout: nothing was committed, so the batch is fetched and handled again.
            log.warning("the database is locked by another process; the batch will be handled again")
            await _sleep_or_stop(stop, RETRY_SECONDS)


async def _caught_up(app: App, restore: Restore, next_batch: str) -> None:
    """The new checkpoint, the restore marked caught up and the admin room told, in one transaction."""
    text = restore_notice(restore)
    async with app.database.transaction() as db:
        await app.checkpoint.save_in(db, next_batch)
        await Restores(app.database).caught_up(db, app.clock.now())
        admin_room = app.config.current.admin_room
        if admin_room is not None:
            txn_id = derive_txn_id(f"restore-{restore.restore_id}", 0)
            await app.patient.outbox.add(db, admin_room, txn_id, "message", {"text": text})
    log.info("%s", text.replace("**", ""))


async def _until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The result of `work`, or None if `stop` is set first (then `work` is cancelled: a long-poll sync
    holds nothing that needs finishing, and the checkpoint was not moved)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def initialise(settings: Settings, clock: Clock, say: Callable[[str], None]) -> None:
    """`photobot init`: data directories, the master key, the bot's device and its cross-signing identity.

    Safe to run again: an existing master key is never overwritten, an existing device is kept. The
    homeserver is asked first, so a mistyped URL fails in seconds, naming it, before anything is created.
    """
    prepare_data_dir(settings)
    await probe(settings.homeserver_url)
    if settings.master_key_file.exists():
        master = load_master_key_file(settings.master_key_file)
        say(f"Using the existing master key {master.key_id} at {settings.master_key_file}.")
    else:
        master = create_master_key_file(settings.master_key_file)
        say(f"Created the master key {master.key_id} at {settings.master_key_file} (mode 0600). Back it up.")
    keyring = Keyring(master)
    database = await Database.open(settings.database_path)
    try:
        sealer = Sealer(keyring)
        accounts = AccountRepository(database, sealer, clock)
        account = await accounts.load()
        client = new_client(
            settings.homeserver_url, settings.user_id, settings.store_dir, keyring.nio_pickle_passphrase()
        )
        gateway = MatrixGateway(client, trust=_exclude_everyone)
        try:
            async with bounded(settings.homeserver_url, INIT_SECONDS, "logging in and uploading keys"):
                await _set_up_device(settings, accounts, account, gateway, say)
        except MatrixError as error:
            if settings.homeserver_url in str(error):
                raise
            raise type(error)(f"{error} (the homeserver at {settings.homeserver_url})") from None
        finally:
            await client.close()
    finally:
        await database.close()


async def _set_up_device(
    settings: Settings,
    accounts: AccountRepository,
    account: BotAccount | None,
    gateway: MatrixGateway,
    say: Callable[[str], None],
) -> None:
    if account is None:
        if not settings.password:
            raise MatrixError("PHOTOBOT_PASSWORD is needed once, for `photobot init` to log the bot in.")
        credentials = await gateway.login(settings.password.value, settings.device_name)
        account = BotAccount(credentials.user_id, credentials.device_id, credentials.access_token, None, None)
        await accounts.save(account)
        say(f"Logged in as {account.user_id} with a new device {account.device_id}.")
    else:
        gateway.restore(Credentials(account.user_id, account.device_id, account.access_token))
        say(f"Keeping the existing device {account.device_id}.")
    await gateway.start_keys()
    if account.cross_signing is None:
        keys = CrossSigningKeys.generate()
        account = replace(account, cross_signing=keys, signed_device_key=None)
        await accounts.save(account)  # saved before upload: an upload is never orphaned
        await gateway.set_up_cross_signing(keys)
        say("Created the bot's cross-signing identity.")
    await ensure_device_signed(gateway, accounts)
    say("The bot's device is signed: patients' apps show it as verified by its owner.")


async def _exclude_everyone(room_id: RoomID, user_id: UserID, device_id: DeviceID, key: str) -> DeviceTrust:
    return DeviceTrust.EXCLUDE
