"""The command line's one-line messages and exit statuses, which a service manager acts on."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.exit_codes import ExitCode

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PHOTOBOT_ setting of the test runner's leaks in; no ./.env is read."""
    for name in [name for name in os.environ if name.startswith("PHOTOBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _env_file(tmp_path: Path, **values: str) -> Path:
    settings = {
        "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:9",
        "PHOTOBOT_USER_ID": "@photobot:localhost",
        "PHOTOBOT_DATA_DIR": str(tmp_path / "data"),
    } | {f"PHOTOBOT_{key.upper()}": value for key, value in values.items()}
    path = tmp_path / "photobot.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def test_a_missing_env_file_is_one_line_naming_it_and_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--env-file` naming a file that is not there stops with one line naming it, not a run on defaults."""
    code = main(["--env-file", str(tmp_path / "typo.env"), "check"])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG
    assert err.strip().splitlines() == [f"photobot check: --env-file {tmp_path / 'typo.env'}: no such file."]


def test_an_env_file_given_after_the_command_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`photobot check --env-file FILE` reads FILE as `photobot --env-file FILE check` does."""
    code = main(["check", "--env-file", str(tmp_path / "after.env")])
    assert code == ExitCode.CONFIG
    assert (
        capsys.readouterr().err.strip()
        == f"photobot check: --env-file {tmp_path / 'after.env'}: no such file."
    )


def test_a_data_directory_that_cannot_be_created_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data directory under a regular file stops `init` with one line naming it, no traceback."""
    (tmp_path / "a-file").write_text("not a directory")
    env_file = _env_file(tmp_path, data_dir=str(tmp_path / "a-file" / "data"))
    code = main(["--env-file", str(env_file), "init"])
    err = capsys.readouterr().err
    assert code == ExitCode.CONFIG
    assert len(err.strip().splitlines()) == 1
    assert f"cannot create or use {tmp_path / 'a-file' / 'data'}" in err
    assert "Traceback" not in err


def test_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    """`photobot --help` tells an operator what each exit status means."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code in ExitCode:
        assert re.search(rf"^\s+{int(code)}\s+\S", out, re.MULTILINE), f"{code.name} missing from --help"


def test_the_systemd_unit_restarts_on_temporary_failures_only() -> None:
    """The unit does not restart on a configuration or usage error, and does restart when the homeserver
    cannot be reached yet."""
    unit = (PROJECT_ROOT / "deploy" / "photobot.service").read_text()
    lines = [line.split("=", 1)[1].split() for line in unit.splitlines() if line.startswith("RestartPrevent")]
    prevented = {int(code) for line in lines for code in line}
    assert prevented == {ExitCode.USAGE, ExitCode.CONFIG}
    assert "Restart=on-failure" in unit.splitlines()
