"""Errors, and the boundary that turns an unexpected one into a kind reply with a reference.

    Exception
     +-- UserFacingError        the user did something we can explain; `text` is what they are told
     +-- TransientError         try again later; nothing was committed, the batch is replayed
     |    +-- TransientMatrixError (bot.matrix.gateway)  the homeserver was unreachable or busy
     |    +-- StorageFullError  the disk is full
     +-- MatrixError (bot.matrix.gateway)  the homeserver refused, retrying will not help
     +-- SettingsError (bot.settings), MasterKeyError (bot.keyring), DatabaseError (storage.database):
          start-up problems, reported to the operator and the process stops

Anything else is a bug: it is logged with a short reference (never the event, never patient data) and the
user is told "something went wrong on our side (ref K7QF)", so an operator can find the log line.
"""

from __future__ import annotations

import secrets

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class UserFacingError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class TransientError(Exception):
    """Nothing is lost: the work will be tried again."""


class StorageFullError(TransientError):
    pass


def error_reference() -> str:
    """A short reference an operator can search the log for, e.g. K7QF."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(4))
