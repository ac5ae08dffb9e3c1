"""The bot as a practice installs it: the wheel built from this tree, in a virtual environment of its own.

`bash dev.sh test` (and so CI) builds the wheel, installs it with the runtime lock file into
`.venv-installed` and names that directory in INSTALLED_PHOTOBOT_VENV. A test that needs it fails, never
skips, when it is missing: a run that did not test the installed artefact must not look green.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VENV_VARIABLE = "INSTALLED_PHOTOBOT_VENV"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def installed_venv() -> Path:
    value = os.environ.get(VENV_VARIABLE)
    if not value:
        pytest.fail(
            f"{VENV_VARIABLE} is not set: run the tests with `bash dev.sh test`, which builds the wheel and "
            "installs it in a fresh virtual environment",
            pytrace=False,
        )
    venv = Path(value)
    if not (venv / "bin" / "photobot").is_file():
        pytest.fail(f"{venv} holds no installed photobot: run `bash dev.sh test`", pytrace=False)
    return venv


def installed_photobot() -> tuple[str, ...]:
    """The installed `photobot` command, as a `BotProcess` program."""
    return (str(installed_venv() / "bin" / "photobot"),)
