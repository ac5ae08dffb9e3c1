"""Media links (`mxc://server/media-id`): which homeserver holds an upload.

A link says only where an upload is, never who made it or for what: any event may carry any link (another
user's avatar, a forwarded photo). Deciding whether the bot may delete an upload takes the homeserver's own
record of it (`bot.matrix.gateway.MediaInfo`), see `handlers.media_purge`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The server name and media id grammar of the spec: a media id is [A-Za-z0-9_-]; a server name a host
# (letters, digits, dots, dashes, an IPv6 literal in brackets) with an optional port.
_MXC = re.compile(
    r"mxc://(?P<server>[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?)/"
    r"(?P<media_id>[A-Za-z0-9_\-]+)"
)


@dataclass(frozen=True)
class MediaLink:
    server: str
    media_id: str = field(repr=False)


def parse_mxc(url: str) -> MediaLink | None:
    """The server and media id of an mxc:// link; None for anything else (an https:// link, a malformed one)."""
    match = _MXC.fullmatch(url)
    if match is None:
        return None
    return MediaLink(match["server"], match["media_id"])


def is_local(url: str, home_server: str) -> bool:
    """Whether the link names an upload on the bot's own homeserver (the only uploads it could delete)."""
    link = parse_mxc(url)
    return link is not None and link.server == home_server
