"""Several practices under one host directory: each practice's settings are its own, nothing that joins two
practices is accepted, and `photobot practice add|remove|list` and `--practice` do what an operator expects."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import SystemClock
from bot.exit_codes import ExitCode
from bot.keyring import create_master_key_file
from bot.logs import PRACTICE, JsonFormatter, TextFormatter
from bot.practice_cli import remove_practice
from bot.practices import PRACTICE_ENV, REMOVING, Host, HostServer, file_problems, isolation_problems
from bot.settings import SettingsError
from storage.data_dir_lock import DataDirBusyError, DataDirLock
from storage.database import Database


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PHOTOBOT_ setting of the test runner's leaks in; no ./.env is read."""
    for name in [name for name in os.environ if name.startswith("PHOTOBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _values(name: str, **extra: str) -> dict[str, str]:
    return {
        "PHOTOBOT_HOMESERVER_URL": "http://127.0.0.1:9",
        "PHOTOBOT_USER_ID": f"@bot_{name}:localhost",
        "PHOTOBOT_PRACTICE_NAME": f"{name.title()} Surgery",
        "PHOTOBOT_CLINICIANS": f"@dr_{name}:localhost",
        "PHOTOBOT_CLINICIAN_ROOMS": f"!clinicians_{name}:localhost",
    } | {f"PHOTOBOT_{key.upper()}": value for key, value in extra.items()}


def _write(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


async def _made_by_hand(host: Host, name: str, **extra: str) -> Path:
    """A practice as `practice add` leaves it, without a homeserver: settings, master key, database, vault."""
    directory = host.practice_dir(name)
    directory.mkdir(parents=True, mode=0o700)
    _write(directory / PRACTICE_ENV, _values(name, **extra))
    create_master_key_file(directory / "master.key")
    database = await Database.open(directory / "photobot.sqlite3")
    await database.close()
    (directory / "vault").mkdir()
    (directory / "vault" / "img-1").write_bytes(b"ciphertext")
    (directory / "nio-store").mkdir()
    return directory


def test_a_practice_reads_its_own_file_only_and_its_data_is_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process environment, which every practice of a host shares, names no practice's clinicians; a
    data directory written in a practice's file is overridden by its folder of the host."""
    host = Host(tmp_path / "host")
    directory = host.practice_dir("riverside")
    directory.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    _write(
        directory / PRACTICE_ENV,
        _values(
            "riverside",
            data_dir=str(elsewhere),
            database_url=f"sqlite://{elsewhere}/shared.sqlite3",
            vault_url=(elsewhere / "vault").as_uri(),
        ),
    )
    monkeypatch.setenv("PHOTOBOT_CLINICIANS", "@intruder:localhost")
    settings = host.settings("riverside")
    assert {str(user) for user in settings.practice.clinicians} == {"@dr_riverside:localhost"}
    assert settings.data_dir == directory.absolute()
    assert settings.master_key_file == directory.absolute() / "master.key"
    assert settings.database_path == directory.absolute() / "photobot.sqlite3"
    assert settings.vault_dir == directory.absolute() / "vault"


def test_on_postgresql_a_practice_has_its_own_schema_and_a_file_may_not_choose_one(tmp_path: Path) -> None:
    """The host's PostgreSQL URL gives each practice the schema practice_NAME (the URL's other parameters
    kept); a practice's file that names a schema, or a SQLite file of its own, is refused at `practice add`."""
    host = Host(tmp_path / "host")
    host.practice_dir("riverside").mkdir(parents=True)
    url = "postgresql://photobot:pw@db.example/photobot?sslmode=require"
    _write(host.env_file("riverside"), _values("riverside", database_url=url))
    settings = host.settings("riverside")
    assert settings.database.url == url + "&schema=practice_riverside"
    assert file_problems({"PHOTOBOT_DATABASE_URL": url}) == []
    for bad in (url + "&schema=public", "postgresql://db.example/photobot?options=-csearch_path%3Dx"):
        assert "must not choose a schema" in file_problems({"PHOTOBOT_DATABASE_URL": bad})[0]
    assert "SQLite" in file_problems({"PHOTOBOT_DATABASE_URL": "sqlite:///srv/shared.sqlite3"})[0]


def test_in_an_object_store_a_practice_has_its_own_prefix_and_prefixes_never_nest(tmp_path: Path) -> None:
    """The host's s3:// URL gives each practice `prefix/practices/NAME`; a practice whose prefix would hold
    another's (its vault would list the other's objects) is refused; a file vault of its own is refused."""
    host = Host(tmp_path / "host")
    s3 = {"s3_endpoint": "http://127.0.0.1:9", "s3_access_key": "k", "s3_secret_key": "s"}
    for name, url in {
        "a": "s3://photos/host1",
        "b": "s3://photos/host1",
        "c": "s3://photos/host1/practices/a",
    }.items():
        host.practice_dir(name).mkdir(parents=True)
        _write(host.env_file(name), _values(name, vault_url=url, **s3))
    settings = {name: host.settings(name) for name in ("a", "b", "c")}
    assert settings["a"].vault is not None
    assert settings["a"].vault.url == "s3://photos/host1/practices/a"
    assert isolation_problems({"a": settings["a"], "b": settings["b"]}) == {}
    problems = isolation_problems(settings)
    assert sorted(problems) == ["a", "c"]
    assert "overlaps practice c's" in problems["a"][0]
    assert "folder" in file_problems({"PHOTOBOT_VAULT_URL": "file:///srv/shared-vault"})[0]
    assert file_problems({"PHOTOBOT_VAULT_URL": "s3://photos/host1"}) == []


def test_a_practice_being_removed_is_not_served(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    for name in ("a", "b"):
        host.practice_dir(name).mkdir(parents=True)
        _write(host.env_file(name), _values(name))
    (host.practice_dir("b") / REMOVING).write_text("")
    assert host.names() == ["a", "b"]
    assert host.serving_names() == ["a"]
    with pytest.raises(SettingsError, match="being removed"):
        host.settings("b")


def test_what_would_join_two_practices_is_refused_but_a_shared_clinician_is_not(tmp_path: Path) -> None:
    """The same bot account, a room served by both, one master key file or one port: each named against both
    practices. A locum who is a clinician of both is not a problem (each bot answers only in its own rooms)."""
    host = Host(tmp_path / "host")
    for name, values in {
        "a": _values("a", status_port="9100", clinicians="@locum:localhost"),
        "b": _values("b", clinicians="@locum:localhost"),
        "c": _values("c", user_id="@bot_a:localhost", clinician_rooms="!clinicians_b:localhost"),
        "d": _values("d", status_port="9100", master_key_file=str(tmp_path / "host/practices/a/master.key")),
    }.items():
        host.practice_dir(name).mkdir(parents=True)
        _write(host.env_file(name), values)
    problems = isolation_problems({name: host.settings(name) for name in host.names()})
    assert sorted(problems) == ["a", "b", "c", "d"]
    assert any("bot account @bot_a:localhost is also practice c's" in p for p in problems["a"])
    assert any("room !clinicians_b:localhost is also practice c's" in p for p in problems["b"])
    assert any("master key file" in p for p in problems["d"])
    assert any("port 9100" in p for p in problems["d"])
    assert not any("locum" in p for p in problems["a"] + problems["b"])
    assert isolation_problems({"a": host.settings("a"), "b": host.settings("b")}) == {}


def test_add_refuses_settings_that_would_join_it_to_another_practice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`practice add` with another practice's bot account stops before anything is created."""
    host = Host(tmp_path / "host")
    host.practice_dir("a").mkdir(parents=True)
    _write(host.env_file("a"), _values("a"))
    env_file = _write(tmp_path / "b.env", _values("b", user_id="@bot_a:localhost"))
    code = main(["--host", str(host.root), "practice", "add", "b", "--env-file", str(env_file)])
    assert code == ExitCode.CONFIG
    assert "bot account @bot_a:localhost is also practice a's" in capsys.readouterr().err
    assert host.names() == ["a"]


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("Bad-Name", {}, "is not a practice name"),
        ("b", {"data_dir": "/srv/elsewhere"}, "PHOTOBOT_DATA_DIR is set by the host"),
        ("b", {"master_key_file": "keys/b.key"}, "must be an absolute path"),
        ("b", {"max_photos": "99"}, "PHOTOBOT_MAX_PHOTOS must be"),
    ],
)
def test_add_refuses_a_bad_name_or_settings_with_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, extra: dict[str, str], expected: str
) -> None:
    host = tmp_path / "host"
    env_file = _write(tmp_path / "b.env", _values("b", **extra))
    code = main(["--host", str(host), "practice", "add", name, "--env-file", str(env_file)])
    assert code == ExitCode.CONFIG
    assert expected in capsys.readouterr().err
    assert Host(host).names() == []


def test_an_add_that_fails_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The homeserver does not answer: `init` fails, and no folder, key or settings copy of it is left."""
    host = Host(tmp_path / "host")
    env_file = _write(tmp_path / "b.env", _values("b", password="pw-secret"))
    code = main(["--host", str(host.root), "practice", "add", "b", "--env-file", str(env_file)])
    assert code == ExitCode.TEMPORARY
    assert "was not added" in capsys.readouterr().out
    assert not host.practice_dir("b").exists()


async def test_remove_destroys_the_key_then_the_rows_then_the_files_and_leaves_the_others(
    tmp_path: Path,
) -> None:
    host = Host(tmp_path / "host")
    kept = await _made_by_hand(host, "a")
    gone = await _made_by_hand(host, "b")
    said: list[str] = []
    code = await remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=said.append)
    assert code == ExitCode.OK
    assert not gone.exists()
    assert host.names() == ["a"]
    assert {path.name for path in kept.iterdir()} >= {"master.key", "photobot.sqlite3", "vault", PRACTICE_ENV}
    assert "master key" in said[0]  # destroyed first
    assert "row(s)" in said[1]
    assert "1 encrypted image(s)" in said[2]


async def test_remove_destroys_a_master_key_kept_outside_the_host(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    key = tmp_path / "keys" / "b.key"
    key.parent.mkdir()
    directory = await _made_by_hand(host, "b", master_key_file=str(key))
    create_master_key_file(key)
    await remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=lambda line: None)
    assert not key.exists()
    assert not directory.exists()


async def test_remove_asks_for_the_practice_name_and_keeps_it_on_any_other_answer(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    directory = await _made_by_hand(host, "b")
    prompts: list[str] = []

    def answer(text: str) -> str:
        prompts.append(text)
        return "yes"

    code = await remove_practice(host, "b", yes=False, ask=answer, say=lambda line: None)
    assert code == ExitCode.USAGE
    assert "destroys practice b for good" in prompts[0]
    assert (directory / "master.key").exists()
    assert host.serving_names() == ["b"]
    code = await remove_practice(host, "b", yes=False, ask=lambda text: "b\n", say=lambda line: None)
    assert code == ExitCode.OK
    assert not directory.exists()


async def test_remove_waits_for_the_host_to_stop_serving_the_practice(tmp_path: Path) -> None:
    """The running host holds the practice's data directory; it lets go once it sees the practice marked
    (as `HostServer` does at its next look); only then is anything destroyed."""
    host = Host(tmp_path / "host")
    directory = await _made_by_hand(host, "b")
    serving = DataDirLock.acquire(directory, "the bot (photobot run, practice b)")
    removal = asyncio.create_task(
        remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=lambda line: None, wait=10)
    )
    while not (directory / REMOVING).exists():  # noqa: ASYNC110 - standing in for the host's poll
        await asyncio.sleep(0.05)
    assert host.serving_names() == []
    await asyncio.sleep(0.3)
    assert (directory / "master.key").exists()  # nothing destroyed while it is served
    serving.release()
    assert await removal == ExitCode.OK
    assert not directory.exists()


async def test_a_remove_that_times_out_leaves_the_practice_marked_and_can_be_finished(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    directory = await _made_by_hand(host, "b")
    with (
        DataDirLock.acquire(directory, "the bot"),
        pytest.raises(DataDirBusyError, match="run `photobot practice remove b` again"),
    ):
        await remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=lambda line: None, wait=0.3)
    assert (directory / "master.key").exists()
    assert host.serving_names() == []
    await remove_practice(host, "b", yes=True, ask=lambda prompt: "", say=lambda line: None, wait=1)
    assert not directory.exists()


async def test_practice_selects_the_settings_and_data_of_one_practice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`photobot --host H admin --practice a config` reads practice a's configuration, not b's."""
    host = Host(tmp_path / "host")
    await _made_by_hand(host, "a")
    await _made_by_hand(host, "b")
    code = await asyncio.to_thread(main, ["--host", str(host.root), "admin", "--practice", "a", "config"])
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "A Surgery" in out
    assert "B Surgery" not in out
    assert "@dr_a:localhost" in out


def test_a_host_needs_the_practice_named_and_a_practice_needs_a_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(tmp_path / "host")
    host.practice_dir("a").mkdir(parents=True)
    _write(host.env_file("a"), _values("a"))
    assert main(["admin", "--practice", "a", "config"]) == ExitCode.CONFIG
    assert "--practice needs the host directory" in capsys.readouterr().err
    monkeypatch.setenv("PHOTOBOT_HOST_DIR", str(host.root))
    assert main(["admin", "config"]) == ExitCode.CONFIG
    assert "--practice NAME (practices: a)" in capsys.readouterr().err
    assert main(["check", "--practice", "nobody"]) == ExitCode.CONFIG
    assert "there is no practice 'nobody'" in capsys.readouterr().err
    assert main(["run", "--env-file", str(host.env_file("a"))]) == ExitCode.CONFIG
    assert "each have their own file" in capsys.readouterr().err


def test_list_names_each_practice_its_bot_and_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = Host(tmp_path / "host")
    assert main(["--host", str(host.root), "practice", "list"]) == ExitCode.OK
    assert "No practices" in capsys.readouterr().out
    for name in ("a", "b", "c"):
        host.practice_dir(name).mkdir(parents=True)
        _write(host.env_file(name), _values(name, max_photos="99" if name == "c" else "5"))
    (host.practice_dir("b") / REMOVING).write_text("")
    host.practice_dir("d").mkdir()  # an add interrupted before its settings file was written
    assert main(["--host", str(host.root), "practice", "list"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a: A Surgery, bot @bot_a:localhost")
    assert "not initialised" in lines[0]
    assert lines[1].startswith("b: being removed")
    assert lines[2].startswith("c: cannot be served: practice c: PHOTOBOT_MAX_PHOTOS")
    assert lines[3].startswith("d: half made by an interrupted add")
    assert host.serving_names() == ["a", "c"]
    env_file = _write(tmp_path / "d.env", _values("d"))
    assert (
        main(["--host", str(host.root), "practice", "add", "d", "--env-file", str(env_file)])
        == ExitCode.CONFIG
    )
    assert "practice remove d" in capsys.readouterr().err


async def test_the_host_serves_on_when_a_practice_fails_and_never_starts_one_that_shares(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A practice that cannot start (here: never initialised) is logged, naming it, and tried again; the
    host goes on. Two practices with one bot account are neither started, each said so once; nor is one
    being removed."""
    host = Host(tmp_path / "host")
    await _made_by_hand(host, "a")  # a database but no bot account: `photobot init` was never run
    await _made_by_hand(host, "b")
    await _made_by_hand(host, "c", user_id="@bot_b:localhost")
    await _made_by_hand(host, "d")
    (host.practice_dir("d") / REMOVING).write_text("")
    stop = asyncio.Event()
    server = HostServer(host, lambda settings: SystemClock(), poll=0.05, retry=0.2)
    with caplog.at_level(logging.INFO, logger="bot.practices"):
        serving = asyncio.create_task(server.run(stop))
        await asyncio.sleep(0.7)
        stop.set()
        await serving
    lines = [record.getMessage() for record in caplog.records]
    failed = [line for line in lines if line.startswith("practice a stopped:")]
    assert len(failed) >= 2  # tried again after `retry`
    assert "photobot init" in failed[0]
    refused = [line for line in lines if ": not served" in line]
    assert len(refused) == 2
    assert "practice b: not served: the bot account @bot_b:localhost is also practice c's." in refused
    assert not [line for line in lines if line.startswith("practice d")]


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_each_log_line_names_the_practice_whose_task_wrote_it(formatter: logging.Formatter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("photobot.test.practices")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("alone")
        token = PRACTICE.set("riverside")
        try:
            logger.warning("the bot is serving")
        finally:
            PRACTICE.reset(token)
    finally:
        logger.removeHandler(handler)
    alone, tagged = stream.getvalue().splitlines()
    assert "riverside" not in alone
    assert "riverside" in tagged
    if isinstance(formatter, TextFormatter):
        assert tagged.endswith("photobot.test.practices: [riverside] the bot is serving")
