"""Re-encrypting matrix-nio's store under a new pickle passphrase, for a master-key rotation.

nio keeps the bot's Olm account, its Olm sessions and the Megolm inbound sessions as pickles encrypted
with the store's pickle passphrase, which the bot derives from the master key
(`Keyring.nio_pickle_passphrase`). After a rotation the bot opens the store with the new key's passphrase,
so every pickle must be re-encrypted first, or the bot would lose its device (a new device would need a
new login, and patients' apps would see a stranger).

Everything is loaded with the old passphrase and saved with the new one in one SQLite transaction of the
store's database: a crash leaves the store wholly under the old passphrase or wholly under the new one, and
`rekey_nio_store` run again tells which (it tries the new passphrase first). Device keys, trust files and
the rest of the store are not encrypted with the passphrase and are left alone.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from nio.store.database import MatrixStore
from vodozemac import LibolmPickleException, PickleException


class StoreRekeyError(Exception):
    """The store opens under neither passphrase; the message says what to do."""


class StoreRekeyOutcome(Enum):
    REKEYED = "re-keyed"
    ALREADY = "already under the new key"
    ABSENT = "no store for this device"


def store_database_path(store_dir: Path, user_id: str, device_id: str) -> Path:
    """The file nio keeps the device's store in (nio names it after the user and the device)."""
    return store_dir / f"{user_id}_{device_id}.db"


def _opens(store: MatrixStore, passphrase: str) -> bool | None:
    """True if the account opens with `passphrase`, False if not, None if the store holds no account."""
    store.pickle_key = passphrase
    try:
        account = store.load_account()
    except (PickleException, LibolmPickleException):
        return False
    return None if account is None else True


def rekey_nio_store(
    store_dir: Path, user_id: str, device_id: str, *, old_passphrase: str, new_passphrase: str
) -> StoreRekeyOutcome:
    """Re-encrypt the device's account and sessions under `new_passphrase`, all at once."""
    if not store_database_path(store_dir, user_id, device_id).exists():
        return StoreRekeyOutcome.ABSENT
    store = MatrixStore(user_id, device_id, str(store_dir), pickle_key=new_passphrase)
    try:
        opens = _opens(store, new_passphrase)
        if opens is None:
            return StoreRekeyOutcome.ABSENT
        if opens:
            return StoreRekeyOutcome.ALREADY
        if not _opens(store, old_passphrase):
            raise StoreRekeyError(
                f"The Matrix store in {store_dir} opens with neither the old nor the new master key. It was "
                "not made by this bot's master key; restore it from a backup, or log the bot in again."
            )
        account = store.load_account()
        if account is None:
            return StoreRekeyOutcome.ABSENT
        sessions = store.load_sessions()
        group_sessions = store.load_inbound_group_sessions()
        with store.database.bind_ctx(store.models), store.database.atomic():
            store.pickle_key = new_passphrase
            store.save_account(account)
            for sender_key, of_sender in sessions.items():
                for session in of_sender:
                    store.save_session(sender_key, session)
            for group_session in group_sessions:
                store.save_inbound_group_session(group_session)
        return StoreRekeyOutcome.REKEYED
    finally:
        store.database.close()


def nio_store_opens(store_dir: Path, user_id: str, device_id: str, passphrase: str) -> bool:
    """True if the device's store exists and its account opens with `passphrase`."""
    if not store_database_path(store_dir, user_id, device_id).exists():
        return False
    store = MatrixStore(user_id, device_id, str(store_dir), pickle_key=passphrase)
    try:
        return _opens(store, passphrase) is True
    finally:
        store.database.close()
