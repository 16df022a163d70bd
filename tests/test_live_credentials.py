"""Before real money (console/live.py): credentials from the environment or a 0600 key file,
never shown; the typed confirmation; one-line refusals that never echo a secret."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from console.live import (
    ENV_API_KEY,
    ENV_API_SECRET,
    Credentials,
    LiveRefused,
    confirm_live,
    live_env,
    load_credentials,
)

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def _refusal(fn, *a, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(LiveRefused) as err:
        fn(*a, **kw)
    msg = str(err.value)
    assert "\n" not in msg and KEY not in msg and SECRET not in msg
    return msg


def test_from_the_environment_and_never_printed() -> None:
    c = load_credentials(None, {ENV_API_KEY: KEY, ENV_API_SECRET: SECRET})
    assert (c.key, c.secret, c.source) == (KEY, SECRET, "environment")
    for shown in (repr(c), str(c), f"{c}", repr([c])):
        assert KEY not in shown and SECRET not in shown
    assert live_env(c) == {ENV_API_KEY: KEY, ENV_API_SECRET: SECRET}


def test_a_missing_variable_is_named() -> None:
    msg = _refusal(load_credentials, None, {ENV_API_KEY: KEY})
    assert ENV_API_SECRET in msg and "--key-file" in msg
    msg = _refusal(load_credentials, None, {})
    assert ENV_API_KEY in msg and ENV_API_SECRET in msg


def _key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "binance.key"
    p.write_text(text)
    p.chmod(mode)
    return p


@pytest.mark.parametrize("text", [
    f"api_key: {KEY}\napi_secret: {SECRET}\n",
    f"# binance\n{ENV_API_KEY}={KEY}\n{ENV_API_SECRET}='{SECRET}'\n",
    f"\ufeffkey: {KEY}\r\nsecret: {SECRET}\r\n",
])  # fmt: skip
def test_a_private_key_file(tmp_path: Path, text: str) -> None:
    p = _key_file(tmp_path, text)
    c = load_credentials(p, {})
    assert (c.key, c.secret, c.source) == (KEY, SECRET, str(p))


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    p = _key_file(tmp_path, f"api_key: {KEY}\napi_secret: {SECRET}\n", 0o644)
    msg = _refusal(load_credentials, p, {})
    assert str(p) in msg and "0644" in msg and f"chmod 600 {p}" in msg


def test_key_file_problems_never_show_its_lines(tmp_path: Path) -> None:
    msg = _refusal(load_credentials, _key_file(tmp_path, f"{SECRET}\n"), {})
    assert "line 1" in msg and "not shown" in msg
    msg = _refusal(load_credentials, _key_file(tmp_path, f"api_key: {KEY}\n"), {})
    assert "no api_secret" in msg
    msg = _refusal(load_credentials, _key_file(tmp_path, f"api_key: {KEY}\napi_key: {KEY}\n"), {})
    assert "twice" in msg
    msg = _refusal(load_credentials, tmp_path / "nothing-here.key", {})
    assert "cannot read" in msg
    msg = _refusal(load_credentials, tmp_path, {})
    assert "not a regular file" in msg


def test_the_typed_confirmation() -> None:
    confirm_live(True, "Binance, 3 pairs")  # --yes-live: nothing asked
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "LIVE\n"

    confirm_live(False, "Binance, 3 pairs", ask=ask)
    assert "real money" in asked[0] and "Binance, 3 pairs" in asked[0]
    msg = _refusal(confirm_live, False, "x", ask=lambda _p: "live")
    assert "not confirmed" in msg
    # no terminal and no --yes-live: refused, naming the flag
    msg = _refusal(confirm_live, False, "x", stdin=io.StringIO("LIVE\n"), stdout=io.StringIO())
    assert "--yes-live" in msg


def test_credentials_compare_by_value_but_print_nothing() -> None:
    a = Credentials(KEY, SECRET, "environment")
    assert a == Credentials(KEY, SECRET, "environment")
    assert KEY not in repr(a)


# ---- the plumbing: who gets the key, and what refuses to start ------------------------------


def test_only_the_engine_gets_the_key_and_never_in_an_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from console import preflight
    from console.daemon.home import BookHome
    from console.daemon.service import Daemon
    from console.options import build_parser, child_args

    monkeypatch.setenv(ENV_API_KEY, KEY)
    monkeypatch.setenv(ENV_API_SECRET, SECRET)
    args = build_parser().parse_args(
        ["--live", "--testnet", "--rest-url", "http://127.0.0.1:9/x", "--db", str(tmp_path / "b.sqlite")]
    )
    assert isinstance(args, argparse.Namespace)
    run = preflight.check_run(args, tmp_path / "b.sqlite", "multipar-console")
    assert run.credentials == Credentials(KEY, SECRET, "environment")
    feed_args, engine_args = child_args(args, run.source)
    assert engine_args[:2] == ["--live", "--testnet"]
    home = BookHome.at(tmp_path / "run")
    cfg_copy = preflight.write_run_copy(run.validated, home.path)
    d = Daemon(run.validated.cfg, cfg_copy, home, tmp_path / "b.sqlite", "LIVE", "binance", feed_args,
               engine_args, engine_secrets=live_env(run.credentials))  # fmt: skip
    feed_env, engine_env = d.child_env("feed"), d.child_env("engine")
    assert ENV_API_KEY not in feed_env and ENV_API_SECRET not in feed_env
    assert engine_env[ENV_API_KEY] == KEY and engine_env[ENV_API_SECRET] == SECRET
    assert engine_env["MULTIPAR_BINANCE_REST_URL"] == "http://127.0.0.1:9/x"  # the live client's too
    for argv in (d._feed_argv, d._engine_argv):
        assert not any(KEY in a or SECRET in a for a in argv)
    # a paper daemon's engine gets neither the key nor the URLs
    paper = Daemon(run.validated.cfg, cfg_copy, home, tmp_path / "b.sqlite", "PAPER", "binance",
                   feed_args, [])  # fmt: skip
    assert ENV_API_KEY not in paper.child_env("engine") and ENV_API_KEY not in paper.child_env("feed")


@pytest.mark.parametrize("extra, env, expect", [
    (["--live"], {}, ENV_API_KEY),
    (["--live", "--demo"], {ENV_API_KEY: KEY, ENV_API_SECRET: SECRET}, "not with --demo"),
    (["--live", "--yes-live", "--key-file", "/nonexistent/k"], {}, "cannot read the key file"),
])  # fmt: skip
def test_live_refusals_are_one_line_and_exit_2(
    tmp_path: Path, extra: list[str], env: dict[str, str], expect: str
) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_API_KEY, ENV_API_SECRET)}
    proc = subprocess.run(
        [sys.executable, "-m", "console", "daemon", *extra, "--db", str(tmp_path / "b.sqlite"),
         "--run-dir", str(tmp_path / "run")],
        cwd=root, env={**clean, **env, "XDG_RUNTIME_DIR": str(tmp_path)}, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr
    assert KEY not in proc.stderr + proc.stdout and SECRET not in proc.stderr + proc.stdout


def test_a_live_daemon_without_a_terminal_or_yes_live_starts_nothing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "console", "daemon", "--live", "--db", str(tmp_path / "b.sqlite"),
         "--run-dir", str(tmp_path / "run")],
        cwd=root, env={**os.environ, ENV_API_KEY: KEY, ENV_API_SECRET: SECRET,
                       "XDG_RUNTIME_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2 and "--yes-live" in proc.stderr, proc.stderr
    assert not (tmp_path / "run" / "daemon.json").exists()
    assert KEY not in proc.stderr and SECRET not in proc.stderr


def test_an_engine_told_live_without_credentials_refuses_and_never_trades_on_paper(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in (ENV_API_KEY, ENV_API_SECRET)}
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "--config", str(root / "safe_list.yaml"), "--db",
         str(tmp_path / "b.sqlite"), "--feed-pub", "ipc:///nonexistent/a", "--feed-rep",
         "ipc:///nonexistent/b", "--pub", "ipc:///nonexistent/c", "--cmd", "ipc:///nonexistent/d",
         "--live"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and ENV_API_KEY in proc.stderr, proc.stderr
    assert not (tmp_path / "b.sqlite").exists()  # nothing started, nothing written
