"""One configuration model: the environment's values and an admin's run-time changes are the same fields."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

from bot.ids import UserID
from bot.settings import PracticeConfig, load_settings
from storage.practice_config import ID_SETS, SETTINGS, apply_overrides, defaults_from

ENVIRONMENT = {
    "PHOTOBOT_HOMESERVER_URL": "https://matrix.example.org",
    "PHOTOBOT_USER_ID": "@photobot:example.org",
    "PHOTOBOT_PRACTICE_NAME": "Riverside Surgery",
    "PHOTOBOT_CLINICIANS": "@dr.patel:example.org",
    "PHOTOBOT_MAX_PHOTOS": "7",
    "PHOTOBOT_MAX_PHOTO_MB": "12",
    "PHOTOBOT_RETENTION": "14d",
}


# Practice settings taken from the environment only (no `!set` for them yet).
ENVIRONMENT_ONLY = {"screening_memory"}


def test_every_practice_setting_an_admin_can_change_is_a_field_of_the_one_model() -> None:
    """Each field of the practice's configuration is changed by `!set`, add/remove, the admin room or texts,
    apart from those the environment alone sets, so a new field cannot be left out of either side."""
    editable = {setting.attribute for setting in SETTINGS.values()} | set(ID_SETS) | {"admin_room", "texts"}
    assert {item.name for item in fields(PracticeConfig)} == editable | ENVIRONMENT_ONLY
    assert not editable & ENVIRONMENT_ONLY


def test_an_admins_change_is_laid_over_the_environments_values_of_the_same_fields() -> None:
    """The environment's values are the defaults; a stored change wins for its setting and only for it."""
    defaults = defaults_from(load_settings(ENVIRONMENT))
    assert defaults.practice_name == "Riverside Surgery"
    assert defaults.max_photos == 7
    assert defaults.max_photo_bytes == 12_000_000
    assert defaults.retention == timedelta(days=14)
    assert defaults.clinicians == {UserID("@dr.patel:example.org")}

    current = apply_overrides(defaults, {"max_photos": "3", "clinicians": ["@dr.jones:example.org"]})
    assert current.max_photos == 3
    assert current.clinicians == {UserID("@dr.jones:example.org")}
    assert current.max_photo_bytes == 12_000_000
    assert current.retention == timedelta(days=14)
    assert current.practice_name == "Riverside Surgery"
