"""Logging set-up: text or JSON lines, patient data scrubbed, and nio kept quiet.

The bot's own log calls never pass patient data (no NHS number, no message text, no media URL, no event
repr: matrix-notes #9). As a last line of defence, every line is scrubbed before it is written, whichever
format is chosen: the policy is `scrub_patient_data`, applied to the message and to any traceback.

- ``mxc://`` URLs and media download URLs: with the attachment key they lead to a patient's photo;
- attachment keys (the ``"k"`` of a JSON Web Key, as in an event's repr);
- ``access_token=`` values in a URL;
- anything shaped like an NHS number (or a UK phone number): ten digits, optionally grouped 3-3-4 with
  spaces or dashes, in any script's digits (Python's ``\\d`` matches Arabic-Indic and full-width digits too).

nio and the HTTP stack log request paths and event contents below WARNING; they are held at ERROR. So are
boto3 and botocore (the S3 vault), whose DEBUG lines carry request parameters, bodies and access key ids.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import TextIO

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The practice whose task wrote a line, when one process serves several (bot.practices): set in each
# practice's task context, so its lines say whose they are; unset (None) for a single practice.
PRACTICE: contextvars.ContextVar[str | None] = contextvars.ContextVar("photobot_practice", default=None)
# aiosqlite logs every SQL parameter; botocore every request's parameters and body; psycopg its connections
QUIET_LOGGERS = (
    "nio",
    "aiohttp",
    "peewee",
    "asyncio",
    "aiosqlite",
    "psycopg",  # at DEBUG: connection attempts (host, port); never needed in production
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
)

_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"mxc://[^\s'\"<>,)\]}]+"), "mxc://<removed>"),
    (
        re.compile(r"https?://[^\s'\"<>]*/_matrix/(?:client/v1/media|media/v3|media/r0)/\S+"),
        "<media url removed>",
    ),
    (re.compile(r"""(['"]k['"]\s*:\s*['"])[A-Za-z0-9_\-+/=]+"""), r"\1<removed>"),
    (re.compile(r"(access_token=)[^&\s'\"]+"), r"\1<removed>"),
    (re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)"), "<number removed>"),
)


def scrub_patient_data(text: str) -> str:
    """`text` with media URLs, attachment keys, access tokens and NHS-number-shaped digits replaced."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, scrubbed."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        practice = PRACTICE.get()
        line = super().format(record)
        if practice is not None:
            line = line.replace(f" {record.name}: ", f" {record.name}: [{practice}] ", 1)
        return scrub_patient_data(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message and any exception, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_patient_data(record.getMessage()),
        }
        if (practice := PRACTICE.get()) is not None:
            entry["practice"] = practice
        if record.exc_info:
            entry["exception"] = scrub_patient_data(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Send every log line to `stream` (standard error by default) as text or JSON lines (`fmt`)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {fmt!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)
