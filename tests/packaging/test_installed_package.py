"""The installed wheel, not the source tree: every module is in it, and its command answers."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import bot
from tests.installed import SOURCE_ROOT, installed_venv

PACKAGES = ("bot", "handlers", "storage")


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command from the installed environment in `cwd`, with no PHOTOBOT_ settings and no PYTHONPATH."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _installed_files(tmp_path: Path) -> dict[str, object]:
    """What the installed distribution holds, asked of the installed interpreter (outside the source tree)."""
    script = (
        "import importlib.metadata as m, json, bot;"
        "d = m.distribution('gp-photo-bot');"
        "print(json.dumps({'files': [str(f) for f in d.files or []], 'bot': bot.__file__,"
        " 'licence': d.metadata['License-Expression']}))"
    )
    result = _run(installed_venv() / "bin" / "python", "-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def _source_files() -> set[str]:
    """Every file of the three packages in the source tree (what a wheel must carry), as wheel paths."""
    return {
        path.relative_to(SOURCE_ROOT).as_posix()
        for package in PACKAGES
        for path in (SOURCE_ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_installed_package_holds_every_module_and_subpackage_of_the_source_tree(tmp_path: Path) -> None:
    """Each module and data file under bot/, handlers/ and storage/ is in the installed wheel."""
    installed = {str(f) for f in _installed_files(tmp_path)["files"]}  # type: ignore[attr-defined]
    missing = sorted(_source_files() - installed)
    assert not missing, f"left out of the wheel: {missing}"


# What only a developer needs, by package or module name: the throwaway homeserver, the demo and its test
# people, the tests and their helpers.
HARNESS_NAMES = frozenset({"local_homeserver", "demo", "devtools", "tests", "conftest", "people"})


def test_the_installed_package_holds_no_test_or_demo_harness(tmp_path: Path) -> None:
    """The wheel a practice installs carries only the application: no test homeserver, demo or test people."""
    installed = [str(f) for f in _installed_files(tmp_path)["files"]]  # type: ignore[attr-defined]
    application = [f for f in installed if f.split("/")[0] in PACKAGES]
    harness = sorted(f for f in application if HARNESS_NAMES & {Path(part).stem for part in f.split("/")})
    assert application, "the installed distribution lists no application files"
    assert not harness, f"test or demo harness in the wheel: {harness}"


def test_the_installed_bot_runs_from_the_virtual_environment_not_the_source_tree(tmp_path: Path) -> None:
    """Importing `bot` with the installed interpreter finds the installed copy."""
    location = Path(str(_installed_files(tmp_path)["bot"])).resolve()
    assert location.is_relative_to(installed_venv().resolve())
    assert not location.is_relative_to(SOURCE_ROOT / "bot")


def test_the_installed_package_declares_its_licence_in_spdx_form(tmp_path: Path) -> None:
    """The wheel says AGPL-3.0-or-later as an SPDX expression and carries the licence text."""
    files = _installed_files(tmp_path)
    assert files["licence"] == "AGPL-3.0-or-later"
    assert any(str(f).endswith(".dist-info/licenses/LICENSE") for f in files["files"])  # type: ignore[attr-defined]


def test_photobot_version_prints_the_release(tmp_path: Path) -> None:
    """`photobot --version` names the release the changelog describes."""
    result = _run(installed_venv() / "bin" / "photobot", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"photobot {bot.__version__}"
    changelog = (SOURCE_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {bot.__version__}" in changelog


def test_photobot_help_lists_every_command(tmp_path: Path) -> None:
    """`photobot --help` from the installed command lists what an operator runs."""
    result = _run(installed_venv() / "bin" / "photobot", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("init", "run", "check", "backup", "restore", "poster"):
        assert command in result.stdout


def test_photobot_demo_in_an_installed_bot_says_the_demo_runs_from_a_source_checkout(tmp_path: Path) -> None:
    """`photobot demo` (and its --keep) from an installed bot exits 2 and names `bash dev.sh demo`."""
    for args in (("demo",), ("demo", "--keep", "kept")):
        result = _run(installed_venv() / "bin" / "photobot", *args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "bash dev.sh demo" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_installed_dependency_is_pinned_in_the_lock_file(tmp_path: Path) -> None:
    """The installed environment holds exactly the lock file's versions, plus the bot itself."""
    result = _run(installed_venv() / "bin" / "python", "-m", "pip", "list", "--format=json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    installed = {
        item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(result.stdout)
    }
    locked = {}
    for line in (SOURCE_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            name, version = line.split(" ")[0].split("==")
            locked[name.lower()] = version
    project = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = {
        name: v for name, v in installed.items() if name not in locked and name not in {"pip", "setuptools"}
    }
    assert extra == {project["name"]: bot.__version__}
    assert all(installed.get(name, version) == version for name, version in locked.items())
