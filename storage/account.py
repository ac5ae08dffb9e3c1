"""The bot's own Matrix account: credentials, device and cross-signing keys (sealed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bot.clock import Clock, iso
from bot.cross_signing import CrossSigningKeys
from bot.ids import DeviceID, UserID
from bot.keyring import Sealer
from storage.sql import Database

_CONTEXT = "bot-account"


@dataclass(frozen=True)
class BotAccount:
    user_id: UserID
    device_id: DeviceID
    access_token: str = field(repr=False)
    cross_signing: CrossSigningKeys | None = field(repr=False)
    signed_device_key: str | None


class AccountRepository:
    def __init__(self, database: Database, sealer: Sealer, clock: Clock) -> None:
        self._db = database
        self._sealer = sealer
        self._clock = clock

    async def load(self) -> BotAccount | None:
        async with self._db.connection.execute(
            "SELECT user_id, device_id, access_token, cross_signing, signed_device_key FROM bot_account"
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        keys = None
        if row["cross_signing"] is not None:
            keys = CrossSigningKeys.from_json(
                json.loads(self._sealer.open(row["cross_signing"], context=_CONTEXT + ":cross-signing"))
            )
        return BotAccount(
            user_id=UserID(row["user_id"]),
            device_id=DeviceID(row["device_id"]),
            access_token=self._sealer.open(row["access_token"], context=_CONTEXT + ":token").decode(),
            cross_signing=keys,
            signed_device_key=row["signed_device_key"],
        )

    async def save(self, account: BotAccount) -> None:
        created = iso(self._clock.now())
        keys = (
            self._sealer.seal(
                json.dumps(account.cross_signing.to_json()).encode(), context=_CONTEXT + ":cross-signing"
            )
            if account.cross_signing
            else None
        )
        async with self._db.transaction() as db:
            await db.execute(
                "INSERT INTO bot_account (id, user_id, device_id, access_token, cross_signing, signed_device_key,"
                " created_at) VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " user_id = excluded.user_id, device_id = excluded.device_id,"
                " access_token = excluded.access_token, cross_signing = excluded.cross_signing,"
                " signed_device_key = excluded.signed_device_key",
                (
                    account.user_id,
                    account.device_id,
                    self._sealer.seal(account.access_token.encode(), context=_CONTEXT + ":token"),
                    keys,
                    account.signed_device_key,
                    created,
                ),
            )


async def bot_device(database: Database) -> tuple[str, str] | None:
    """The bot's (user id, device id), read without the master key (a key rotation reads it mid-way)."""
    async with database.connection.execute("SELECT user_id, device_id FROM bot_account") as cursor:
        row = await cursor.fetchone()
    return None if row is None else (str(row["user_id"]), str(row["device_id"]))
