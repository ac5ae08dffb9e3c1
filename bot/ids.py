"""Typed Matrix identifiers, so a room id can never be passed where a user id belongs."""

from typing import NewType

UserID = NewType("UserID", str)
RoomID = NewType("RoomID", str)
EventID = NewType("EventID", str)
DeviceID = NewType("DeviceID", str)


def server_name(user_id: UserID) -> str:
    """The homeserver part of a user id: `@alice:example.org` -> `example.org`."""
    _, _, server = user_id.partition(":")
    return server
