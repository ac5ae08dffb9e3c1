"""`photobot check`'s list of settings changed at run time, and its warnings about leftovers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.ids import RoomID, UserID
from bot.production_check import Findings, check_leftovers, check_people, run_time_changes
from bot.settings import Secret, load_settings
from storage.practice_config import defaults_from, stored_form

ENV = {
    "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:8008",
    "PHOTOBOT_USER_ID": "@photobot:practice.example",
    "PHOTOBOT_DATA_DIR": "/tmp/unused",  # noqa: S108 (never created: settings only)
    "PHOTOBOT_CLINICIANS": "@dr.one:practice.example",
}


def test_each_setting_changed_at_run_time_is_listed_and_a_secret_only_as_set() -> None:
    """A setting an admin changed is listed with both values; the admin token's value never appears."""
    settings = load_settings(ENV)
    defaults = defaults_from(settings)
    current = replace(
        defaults,
        viewing_window=timedelta(minutes=10),
        clinician_rooms=frozenset({RoomID("!staff:practice.example")}),
        homeserver_admin_token=Secret("syt_secret_value"),
        texts={"how_to_contact": "Please phone 01234 567890."},
    )
    stored = {key: stored_form(current, key) for key in ("viewing_window", "clinician_rooms", "texts")}
    stored["homeserver_admin_token"] = "syt_secret_value"
    stored["max_photos"] = stored_form(defaults, "max_photos")  # stored, but the same as the environment
    lines = run_time_changes(defaults, current, stored)
    assert lines == [
        "clinician_rooms: !staff:practice.example (the environment says (none))",
        "homeserver_admin_token: set (the environment says not set)",
        "texts: how_to_contact changed from the built-in wording",
        "viewing_window: 10m (the environment says 30m)",
    ]
    assert not any("syt_secret_value" in line for line in lines)


def test_a_leftover_password_and_the_default_contact_sentence_are_warned_about() -> None:
    """PHOTOBOT_PASSWORD still set after init and the built-in contact sentence each give one warning."""
    settings = load_settings(ENV | {"PHOTOBOT_PASSWORD": "hunter2"})
    found = Findings()
    check_leftovers(settings, defaults_from(settings), found)
    assert len(found.warnings) == 2 and not found.problems
    assert "PHOTOBOT_PASSWORD is still set" in found.warnings[0]
    assert "how_to_contact" in found.warnings[1]


def test_staff_on_a_server_the_bot_does_not_allow_are_problems() -> None:
    """A clinician or admin on another server is one problem line each; staff on the bot's server are not."""
    settings = load_settings(ENV | {"PHOTOBOT_ADMINS": "@boss:elsewhere.example"})
    config = replace(
        defaults_from(settings),
        clinicians=frozenset({UserID("@dr.one:practice.example"), UserID("@dr.two:far.example")}),
    )
    found = Findings()
    check_people(settings, config, found)
    assert [problem.split(" is on ")[0] for problem in found.problems] == [
        "The clinician @dr.two:far.example",
        "The admin @boss:elsewhere.example",
    ]
