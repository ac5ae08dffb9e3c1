"""The web chat's settings, read with the rest of the configuration (`bot.settings.load_settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlparse


@dataclass(frozen=True)
class WebChatSettings:
    """Off unless `port` is set. `url` is the page's public address (behind the practice's TLS proxy)."""

    url: str = ""  # the page's public address, e.g. https://photos.example-surgery.nhs.uk/ (links add #t=)
    host: str = "127.0.0.1"
    port: int = 0  # 0: off
    public: bool = False  # bind a non-loopback address (normally the TLS proxy is on the same machine)
    homeserver_url: str = ""  # the homeserver as the page reaches it (the CSP's connect-src)
    contact: str = ""  # the practice's contact sentence, shown on the page's error screens
    account_period: timedelta = timedelta(days=14)  # a throwaway account is erased after this at the latest
    end_grace: timedelta = timedelta(minutes=30)  # after a cancelled/expired/refused journey, then erased
    poster_link_life: timedelta = timedelta(minutes=10)  # a poster token must be redeemed within this
    poster_per_address: int = 5  # poster tokens per client address per hour
    poster_per_day: int = 200  # poster tokens per day for the whole practice
    trust_proxy: bool = False  # take the client address from the proxy's X-Forwarded-For
    registration_token_life: timedelta = timedelta(minutes=15)
    sweep_every: timedelta = timedelta(minutes=1)  # how often accounts due to close are looked for

    @property
    def enabled(self) -> bool:
        return self.port != 0

    @property
    def homeserver_origin(self) -> str:
        parsed = urlparse(self.homeserver_url)
        return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else ""

    def link(self, token: str) -> str:
        """The link a patient opens: the token in the fragment, which browsers never send to a server."""
        return f"{self.url}#t={token}"
