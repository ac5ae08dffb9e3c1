"""`photobot key rotate`: a new master key for everything, resumable, the old key destroyed only at the end.

The configured key path is ``P`` (PHOTOBOT_MASTER_KEY_FILE). The rotation uses two files beside it:
``P.next`` (the new key, until it is installed) and ``P.previous`` (the old key, from its installation until
it is destroyed). How the bot finds its key never changes: it reads ``P``, which holds the old key until
every step below has succeeded and then, by one atomic rename, the new one.

Steps (the bot must not run: the data-directory lock is held throughout, and the bot refuses to start
while a rotation is unfinished, because until the end some values are under the new key it cannot read yet):

1. The new key is written to ``P.next`` (created safely, as `create_master_key_file` does), then the
   rotation is recorded in the database (`key_rotations`). A crash in between leaves an unused ``P.next``,
   which the next run adopts.
2. Every image key is re-wrapped under the new key, one database transaction per image, then the fault point
   ``mid_key_rotation``: a kill there loses nothing, and the next run skips what is done (every wrapped key
   names its master key, so what remains is exactly what still names the old one).
3. Every sealed value is re-sealed and every look-up hash recomputed with it (`storage.sealed_columns`); the
   audit key is re-wrapped (`AuditLog.rewrap`); the deletion ledger is re-authenticated
   (`DeletionLedger.rekey`); nio's store is re-encrypted under the new key's passphrase
   (`bot.matrix.store_rekey`), all resumable the same way.
4. Verification with a keyring holding the new key alone: every image is read back (unwrap, decrypt, tag
   check) and its keyed digest recomputed; every sealed value opens and every look-up hash matches; no
   value in any column of any table still names the old key; the audit log verifies as it did with both
   keys; every ledger entry verifies; nio's account opens. Any problem stops here, the old key kept.
5. Installation: ``P`` is hard-linked to ``P.previous``, then ``P.next`` is renamed over ``P``.
6. ``P.previous`` is overwritten, synced and removed (`destroy_master_key_file`); the rotation is finished.

Run again after a kill at any point, it works out where it was from the files and the database: before the
installation it resumes with ``P`` (old) and ``P.next`` (new); after it, with ``P`` (new) and
``P.previous`` (old), and it repeats steps 2 to 4 (finding nothing left to do) before destroying the old key,
so the old key is never destroyed without a verification in the same run.

Afterwards, backups made before the rotation cannot be read any more (their keys were wrapped under the
destroyed key): take a new backup, and back up the new key file, at once.

Exceptions::

    KeyRotationError               the rotation cannot go on; the message says what to do
    └── KeyRotationUnfinishedError the bot refuses to start: a rotation must be finished first
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.clock import Clock
from bot.durable_files import fsync_directory
from bot.faults import FaultInjector
from bot.keyring import (
    CryptoError,
    Keyring,
    MasterKey,
    MasterKeyError,
    create_master_key_file,
    destroy_master_key_file,
    load_master_key_file,
)
from bot.matrix.store_rekey import nio_store_opens, rekey_nio_store, store_database_path
from storage.account import bot_device
from storage.audit import AuditLog
from storage.deletion_ledger import DeletionLedger
from storage.key_rotations import DigestColumn, KeyRotations, Rotation
from storage.sealed_columns import check_all, columns_under_key, known_column, reseal_all
from storage.sql import Database
from storage.vault import IMAGE_DIGEST_PURPOSE, ImageUnreadableError, ImageVault, Vault

FAULT_POINT = "mid_key_rotation"
_SHOWN_PROBLEMS = 20


class KeyRotationError(Exception):
    """The rotation cannot go on; the message is what the operator reads."""


class KeyRotationUnfinishedError(KeyRotationError):
    """A rotation was started and not finished: the bot must not start until it is."""


@dataclass(frozen=True)
class RotationReport:
    old_key_id: str
    new_key_id: str
    images_rewrapped: int  # in this run
    images_verified: int
    values_resealed: int  # in this run
    lookups_recomputed: int  # in this run
    ledger_entries: int
    nio_store: str
    old_key_destroyed: bool
    seconds: float


def next_key_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".next")


def previous_key_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".previous")


async def refuse_unfinished_rotation(database: Database) -> None:
    """Raise `KeyRotationUnfinishedError` if a rotation was started and not finished."""
    rotation = await KeyRotations(database).unfinished()
    if rotation is not None:
        raise KeyRotationUnfinishedError(
            f"A master-key rotation from {rotation.old_key_id} to {rotation.new_key_id} is unfinished "
            f"({rotation.phase}). Run `photobot key rotate` again to finish it, then start the bot."
        )


def _problems(what: str, problems: list[str]) -> KeyRotationError:
    shown = "\n".join(f"  - {problem}" for problem in problems[:_SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
    return KeyRotationError(
        f"{what}; the old master key is kept and the rotation stays unfinished (the bot will not start):\n"
        f"{shown}{more}\nRepair or restore what is listed, then run `photobot key rotate` again."
    )


class KeyRotation:
    """One run of `photobot key rotate` over a data directory (the caller holds the data-directory lock)."""

    def __init__(
        self,
        *,
        master_key_file: Path,
        database: Database,
        vault_dir: Path,
        store_dir: Path,
        ledger_file: Path,
        clock: Clock,
        faults: FaultInjector,
        say: Callable[[str], None],
        open_vault: Callable[[Keyring], ImageVault] | None = None,
    ) -> None:
        """`open_vault` opens the configured vault (an S3 bucket, say) under a keyring; by default the file
        vault in `vault_dir`."""
        self._open_vault = open_vault
        self._key_file = master_key_file
        self._next = next_key_path(master_key_file)
        self._previous = previous_key_path(master_key_file)
        self._db = database
        self._rotations = KeyRotations(database)
        self._vault_dir = vault_dir
        self._store_dir = store_dir
        self._ledger_file = ledger_file
        self._clock = clock
        self._faults = faults
        self._say = say

    async def run(self) -> RotationReport:
        started = time.monotonic()
        if self._key_file.is_symlink():
            raise KeyRotationError(
                f"The master key file {self._key_file} is a symbolic link (a mounted secret?). Rotate by "
                "pointing PHOTOBOT_MASTER_KEY_FILE at a regular file the bot's user owns, then run this again."
            )
        rotation = await self._rotations.unfinished()
        configured = load_master_key_file(self._key_file)
        old: MasterKey | None
        if rotation is None:
            await self._refuse_unknown_sealed_columns(configured.key_id)  # before anything changes
            old, new = configured, self._adopt_or_create_next(configured)
            rotation = await self._record(old, new)
            self._say(f"Rotating the master key from {old.key_id} to {new.key_id}.")
        elif configured.key_id == rotation.old_key_id:
            old, new = configured, self._load_next(rotation)
            self._say(f"Resuming the rotation from {old.key_id} to {new.key_id} ({rotation.phase}).")
        elif configured.key_id == rotation.new_key_id:
            # Killed after the installation: the old key waits in P.previous (or was being destroyed).
            old, new = self._load_previous(rotation), configured
            self._say(f"Resuming the rotation to {new.key_id} after its installation.")
        else:
            raise KeyRotationError(
                f"The database records a rotation from {rotation.old_key_id} to {rotation.new_key_id}, but "
                f"{self._key_file} holds {configured.key_id}. Put back the key file of this installation."
            )
        keyring = Keyring(new) if old is None else Keyring(new, previous=[old])
        if old is not None:
            await self._refuse_unknown_sealed_columns(old.key_id)
        rewrapped = await self._rewrap_images(keyring, rotation)
        resealed = await reseal_all(self._db, keyring)
        if resealed.unreadable:
            raise _problems("Some sealed values open under neither key", list(resealed.unreadable))
        await AuditLog(self._db, keyring, self._clock).rewrap()
        ledger = await asyncio.to_thread(DeletionLedger(self._ledger_file, keyring).rekey)
        nio_store = await self._rekey_nio_store(keyring, old, new)
        self._say(
            f"Re-wrapped {rewrapped} image keys, re-sealed {resealed.resealed} values "
            f"({resealed.lookups} look-up hashes), {len(ledger.entries)} deletion-ledger entries; "
            f"nio store: {nio_store}."
        )
        verified = await self._verify(keyring, new, old)
        await self._set_phase(rotation, "verified")
        self._say(f"Verified under {new.key_id} alone: {verified} images readable, every sealed value opens.")
        if configured.key_id != new.key_id:
            await asyncio.to_thread(self._install, configured)
            await self._set_phase(rotation, "new key installed")
        destroyed = await asyncio.to_thread(destroy_master_key_file, self._previous)
        await self._rotations.finish(rotation, self._clock.now())
        self._say(
            f"The old master key {rotation.old_key_id} is destroyed; {self._key_file} holds {new.key_id}. "
            "Back up the new key file now: backups made before this rotation can no longer be read."
        )
        return RotationReport(
            rotation.old_key_id,
            new.key_id,
            rewrapped,
            verified,
            resealed.resealed,
            resealed.lookups,
            len(ledger.entries),
            nio_store,
            destroyed,
            time.monotonic() - started,
        )

    # ---- the key files ------------------------------------------------------------------------------

    def _adopt_or_create_next(self, configured: MasterKey) -> MasterKey:
        if self._previous.exists() or self._previous.is_symlink():
            raise KeyRotationError(
                f"{self._previous} exists but no rotation is unfinished. It is not from a rotation of this "
                "installation's database; move it away yourself if you are sure it is not needed."
            )
        if self._next.exists():
            new = load_master_key_file(self._next)  # left by a run killed before it recorded itself
            if new.key_id == configured.key_id:
                raise KeyRotationError(f"{self._next} holds the current key; remove it and run this again.")
            return new
        return create_master_key_file(self._next)

    def _load_next(self, rotation: Rotation) -> MasterKey:
        if not self._next.exists():
            raise KeyRotationError(
                f"The new key file {self._next} of the unfinished rotation to {rotation.new_key_id} is "
                "missing. Restore it (values already re-wrapped under it cannot be read without it)."
            )
        new = load_master_key_file(self._next)
        if new.key_id != rotation.new_key_id:
            raise KeyRotationError(
                f"{self._next} holds {new.key_id}, not {rotation.new_key_id} of the unfinished rotation."
            )
        return new

    def _install(self, old: MasterKey) -> None:
        """``P`` -> ``P.previous`` (a hard link), then ``P.next`` renamed over ``P``: atomic for the bot."""
        if self._previous.exists():
            if load_master_key_file(self._previous).key_id != old.key_id:
                raise KeyRotationError(f"{self._previous} does not hold the old key {old.key_id}.")
        else:
            os.link(self._key_file, self._previous)
        self._next.replace(self._key_file)
        fsync_directory(self._key_file.parent)

    def _load_previous(self, rotation: Rotation) -> MasterKey | None:
        """The old key from P.previous; None if it is gone or was half overwritten by a killed destroy."""
        if not self._previous.exists():
            return None
        try:
            previous = load_master_key_file(self._previous)
        except MasterKeyError:
            return None  # zeroed by a run killed while destroying it: only the new key is left to check
        if previous.key_id != rotation.old_key_id:
            raise KeyRotationError(
                f"{self._previous} holds {previous.key_id}, not the old key {rotation.old_key_id}; "
                "move it away yourself."
            )
        return previous

    # ---- the database ---------------------------------------------------------------------------------

    async def _record(self, old: MasterKey, new: MasterKey) -> Rotation:
        return await self._rotations.record(old.key_id, new.key_id, self._clock.now())

    async def _set_phase(self, rotation: Rotation, phase: str) -> None:
        await self._rotations.set_phase(rotation, phase, self._clock.now())

    async def _refuse_unknown_sealed_columns(self, old_key_id: str) -> None:
        unknown = await columns_under_key(self._db, old_key_id, ignore=known_column)
        if unknown:
            listed = ", ".join(f"{name} ({count})" for name, count in sorted(unknown.items()))
            raise KeyRotationError(
                f"Values under the master key sit in columns this version cannot re-seal: {listed}. "
                "Nothing was changed; upgrade photobot (storage.sealed_columns must list them)."
            )

    def _vault(self, keyring: Keyring) -> ImageVault:
        if self._open_vault is not None:
            return self._open_vault(keyring)
        return Vault(self._vault_dir, keyring)

    async def _rewrap_images(self, keyring: Keyring, rotation: Rotation) -> int:
        """Every image key not yet under the new key, re-wrapped; one transaction per image."""
        vault = self._vault(keyring)
        prefix = Keyring.blob_prefix(keyring.current_key_id)
        problems: list[str] = []
        done = 0
        for key in await self._rotations.image_keys_not_under(prefix):
            try:
                rewrapped = vault.rewrap(key.image_id, key.wrapped)
            except ImageUnreadableError as error:
                problems.append(str(error))
                continue
            await self._rotations.replace_image_key(rotation, key, rewrapped, self._clock.now())
            done += 1
            self._faults.hit(FAULT_POINT)
        if problems:
            raise _problems("Some image keys cannot be re-wrapped", problems)
        return done

    async def _rekey_nio_store(self, keyring: Keyring, old: MasterKey | None, new: MasterKey) -> str:
        device = await self._device()
        if device is None:
            return "no bot account yet"
        if old is None:
            return "left as it is (the old key is gone; verification checks it opens)"
        outcome = await asyncio.to_thread(
            rekey_nio_store,
            self._store_dir,
            *device,
            old_passphrase=keyring.nio_pickle_passphrase(key_id=old.key_id),
            new_passphrase=keyring.nio_pickle_passphrase(key_id=new.key_id),
        )
        return outcome.value

    async def _device(self) -> tuple[str, str] | None:
        return await bot_device(self._db)

    # ---- verification -----------------------------------------------------------------------------------

    async def _verify(self, both: Keyring, new: MasterKey, old: MasterKey | None) -> int:
        """Everything checked with the new key alone; raises with the list of problems, if any."""
        alone = Keyring(new)
        verified, problems = await self._verify_images(alone)
        problems += await check_all(self._db, alone)
        if old is not None:
            left = await columns_under_key(self._db, old.key_id)
            problems += [f"{name}: {count} value(s) still under {old.key_id}" for name, count in left.items()]
        with_both = await AuditLog(self._db, both, self._clock).verify()
        with_new = await AuditLog(self._db, alone, self._clock).verify()
        if with_new.problems != with_both.problems:
            problems += [f"audit log: {problem}" for problem in with_new.problems[:5]]
        ledger_both = await asyncio.to_thread(DeletionLedger(self._ledger_file, both).read)
        ledger_new = await asyncio.to_thread(DeletionLedger(self._ledger_file, alone).read)
        if ledger_new.entries != ledger_both.entries or ledger_new.rejected:
            problems.append("deletion ledger: some entries do not verify under the new key")
        device = await self._device()
        if device is not None and store_database_path(self._store_dir, *device).exists():
            passphrase = alone.nio_pickle_passphrase()
            if not await asyncio.to_thread(nio_store_opens, self._store_dir, *device, passphrase):
                problems.append("nio store: the bot's account does not open under the new key")
        if problems:
            raise _problems("Verification under the new key found problems", problems)
        return verified

    async def _verify_images(self, alone: Keyring) -> tuple[int, list[str]]:
        """Every stored image read back (unwrap, decrypt, tag check); its keyed digest made the new key's."""
        vault = self._vault(alone)
        problems: list[str] = []
        digests: list[tuple[DigestColumn, str, str]] = []  # (column, digest, photo id)
        verified = 0
        for image in await self._rotations.stored_images():
            try:
                data = await asyncio.to_thread(vault.get, image.image_id, image.wrapped)
            except (ImageUnreadableError, CryptoError) as error:
                problems.append(str(error))
                continue
            digest = alone.keyed_digest(data, purpose=IMAGE_DIGEST_PURPOSE)
            del data
            verified += 1
            if digest != image.digest:
                digests.append((image.digest_column, digest, image.photo_id))
        await self._rotations.replace_digests(digests)
        return verified, problems
