"""The purge's ownership rule and media-link parsing, as pure functions."""

from __future__ import annotations

from bot.ids import UserID
from bot.matrix.gateway import MediaInfo
from bot.matrix.mxc import is_local, parse_mxc
from handlers.media_purge import UPLOAD_WINDOW, uploaded_for_message

PATIENT = UserID("@pat:practice.example")
SENT = 1_800_000_000_000
WINDOW_MS = int(UPLOAD_WINDOW.total_seconds() * 1000)


def test_the_patients_fresh_upload_may_be_deleted() -> None:
    """An upload the homeserver says the sender made just before the message counts as theirs."""
    assert uploaded_for_message(MediaInfo(PATIENT, SENT - 2_000), PATIENT, SENT)


def test_someone_elses_upload_is_never_the_patients() -> None:
    """An upload by anyone else, or by nobody on this server (remote), is not the patient's."""
    assert not uploaded_for_message(MediaInfo(UserID("@mum:practice.example"), SENT - 2_000), PATIENT, SENT)
    assert not uploaded_for_message(MediaInfo(None, SENT - 2_000), PATIENT, SENT)


def test_an_old_or_later_upload_was_not_made_for_the_message() -> None:
    """The patient's own upload from long before (a forwarded photo) or after the message is left alone."""
    assert not uploaded_for_message(MediaInfo(PATIENT, SENT - WINDOW_MS - 1), PATIENT, SENT)
    assert not uploaded_for_message(MediaInfo(PATIENT, SENT + 60_000), PATIENT, SENT)


def test_an_entry_without_owner_or_time_is_never_deleted() -> None:
    """A ledger entry listed before owners were kept cannot be checked, so it is not deleted."""
    assert not uploaded_for_message(MediaInfo(PATIENT, SENT), None, SENT)
    assert not uploaded_for_message(MediaInfo(PATIENT, SENT), PATIENT, None)


def test_media_links_name_their_server() -> None:
    """Only an mxc:// link on the bot's own server is local; web links and malformed ones are not uploads."""
    link = parse_mxc("mxc://practice.example:8448/AbC_d-9")
    assert link is not None and link.server == "practice.example:8448" and link.media_id == "AbC_d-9"
    assert is_local("mxc://practice.example/abc", "practice.example")
    assert not is_local("mxc://elsewhere.example/abc", "practice.example")
    assert parse_mxc("https://photos.example.com/abc.jpg") is None
    assert parse_mxc("mxc://practice.example/../etc") is None
    assert parse_mxc("mxc://practice.example/") is None
