"""Log lines as an operator reads them: text or JSON, and never carrying patient data."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import NoReturn

import pytest

from bot.logs import (
    QUIET_LOGGERS,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    scrub_patient_data,
)

NHS_NUMBER = "9997654323"  # synthetic, test range


def record(message: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    """A log record as `logging` makes one, optionally carrying the exception being handled."""
    info = sys.exc_info() if exc_info else None
    return logging.LogRecord("handlers.patient", logging.WARNING, __file__, 10, message, args, info)


def fail(error: Exception) -> NoReturn:
    raise error


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging changes process-wide logging: put it back after the test."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in QUIET_LOGGERS})
    yield
    root.handlers[:], level, quiet = saved
    root.setLevel(level)
    for name, quiet_level in quiet.items():
        logging.getLogger(name).setLevel(quiet_level)


def test_json_lines_hold_time_level_logger_and_message() -> None:
    """In JSON format each log line is one JSON object with time (UTC), level, logger and message."""
    line = JsonFormatter().format(record("expired %d idle conversations", 3))

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "handlers.patient"
    assert entry["message"] == "expired 3 idle conversations"
    assert entry["time"].endswith("+00:00")
    assert set(entry) == {"time", "level", "logger", "message"}


def test_json_lines_carry_the_exception_in_one_field() -> None:
    """An exception's traceback stays inside the one JSON line, in its own field."""
    try:
        fail(RuntimeError("disk on fire"))
    except RuntimeError:
        line = JsonFormatter().format(record("handling an event failed (ref %s)", "K7QF", exc_info=True))

    entry = json.loads(line)
    assert entry["message"] == "handling an event failed (ref K7QF)"
    assert "RuntimeError: disk on fire" in entry["exception"]
    assert "Traceback" in entry["exception"]


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        (f"nhs {NHS_NUMBER} seen", NHS_NUMBER),
        ("nhs 999 765 4323 seen", "999 765 4323"),
        ("nhs 999-765-4323 seen", "999-765-4323"),
        ("nhs ٩٩٩٧٦٥٤٣٢٣ seen", "٩٩٩٧٦٥٤٣٢٣"),  # Arabic-Indic digits
        ("url mxc://example.org/AbCdEf123 gone", "AbCdEf123"),
        ("GET https://hs.example/_matrix/client/v1/media/download/example.org/AbCdEf123 500", "AbCdEf123"),
        (
            "event {'url': 'mxc://example.org/XyZ', 'key': {'k': 'qcHVMSgYg-71CauWBezXI5qkaRb0LuIy-Wx5kIaHMIA'}}",
            "qcHVMSg",
        ),
        ('{"key": {"k": "qcHVMSgYg-71CauWBezXI5qkaRb0LuIy-Wx5kIaHMIA"}}', "qcHVMSg"),
        ("GET /sync?access_token=syt_c2VjcmV0_abc&since=1 failed", "syt_c2VjcmV0_abc"),
    ],
)
def test_patient_data_is_scrubbed_from_every_line(text: str, leak: str) -> None:
    """NHS-number-shaped digits, media URLs, attachment keys and access tokens never reach the log."""
    assert leak not in scrub_patient_data(text)
    assert leak not in TextFormatter().format(record("%s", text))
    assert leak not in json.loads(JsonFormatter().format(record("%s", text)))["message"]


def test_ordinary_lines_are_left_alone() -> None:
    """Counts, references, times and room ids pass through the scrubber unchanged."""
    text = "retention destroyed 12 submissions at 2025-03-04 10:11:12 (ref K7QF) in !abc:example.org"

    assert scrub_patient_data(text) == text


def test_a_traceback_carrying_an_nhs_number_is_scrubbed() -> None:
    """An exception whose message holds an NHS number is logged without it, in both formats."""
    try:
        fail(ValueError(f"bad number {NHS_NUMBER}"))
    except ValueError:
        failing = record("handling an event failed (ref %s)", "K7QF", exc_info=True)
        text = TextFormatter().format(failing)
        entry = json.loads(JsonFormatter().format(failing))

    assert "ValueError: bad number" in text
    assert NHS_NUMBER not in text
    assert "ValueError: bad number" in entry["exception"]
    assert NHS_NUMBER not in entry["exception"]


@pytest.mark.usefixtures("root_logging")
def test_configured_json_logging_writes_one_object_per_line() -> None:
    """With PHOTOBOT_LOG_FORMAT=json, what the bot logs comes out as JSON lines, nio held back."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)

    logging.getLogger("bot.app").info("the bot is serving")
    logging.getLogger("bot.app").debug("not shown at INFO")
    logging.getLogger("nio.client").warning("nio's own chatter, which may carry event contents")

    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["the bot is serving"]


@pytest.mark.usefixtures("root_logging")
def test_configured_text_logging_writes_plain_lines() -> None:
    """With PHOTOBOT_LOG_FORMAT=text, each line reads time, level, logger and message."""
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)

    logging.getLogger("bot.app").warning("housekeeping failed (ref %s)", "K7QF")

    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" WARNING bot.app: housekeeping failed (ref K7QF)")


def test_an_unknown_log_format_is_refused() -> None:
    """A log format other than text or json is an error, not a silent fallback."""
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")
