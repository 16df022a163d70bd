"""Secrets and files stay private (issue 10, point 7).

URL credentials reach the feed through its environment, never an argv, and no log line or
error message shows them; the book, its -wal/-shm and every log file are 0600, created so
whatever the umask, and an existing one with wider modes is tightened (or refused, naming it).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.cli import _redact, _setup_logging
from console.client import DaemonClient
from console.daemon.home import BookHome
from console.daemon.main import _setup_logging as _setup_daemon_logging
from console.daemon.service import Daemon, child_env
from console.daemon_start import daemon_argv
from console.model import ConsoleModel
from console.options import build_parser, child_args
from console.rundir import create_run_dir
from engine.core.config import load_safe_list
from engine.journal.schema import StoreError
from engine.journal.store import Store
from feed.private import (
    ENV_REST_URL,
    ENV_WS_URL,
    PrivateFileError,
    private_file,
    redact_argv,
    redact_text,
    redact_url,
    split_secret_options,
)
from tests.procs import alive, until

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"
MARKETS_FILE = ROOT / "tests" / "data" / "binance_markets.json"
PASSWORD, API_KEY, TOKEN = "pw4913", "abc7731", "tok5520"  # distinctive: no log holds them by chance
SECRETS = (PASSWORD, API_KEY, TOKEN)

pytestmark = pytest.mark.timeout(90)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def refuse_chmod(*_: object) -> None:
    raise PermissionError(1, "Operation not permitted")  # root may chmod anything: pretend


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secret_urls(port: int) -> tuple[str, str]:
    return (
        f"wss://user:{PASSWORD}@127.0.0.1:{port}/ws?apiKey={API_KEY}",
        f"http://user:{PASSWORD}@127.0.0.1:{port}/?token={TOKEN}",
    )


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}:\n{text[-3000:]}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mpp-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Files must come out 0600 without the console's umask 077."""
    old = os.umask(0o022)
    yield
    os.umask(old)


# -- redaction ----------------------------------------------------------------------------
class TestRedaction:
    def test_url_user_info_and_secret_parameters(self) -> None:
        assert redact_url("wss://user:pw@127.0.0.1:9/ws?apiKey=abc") == "wss://***@127.0.0.1:9/ws?apiKey=***"
        assert redact_url("https://h/api?symbol=BTCUSDT&signature=s&timestamp=1&api_key=k") == (
            "https://h/api?symbol=BTCUSDT&signature=***&timestamp=1&api_key=***"
        )
        assert redact_url("https://h/x?password=p;secret=s#access_token=t") == (
            "https://h/x?password=***;secret=***#access_token=***"
        )
        assert redact_url("wss://stream.binance.com:9443/ws") == "wss://stream.binance.com:9443/ws"
        assert redact_url("wss://u:p@[::1:9/ws") == "wss://***@[::1:9/ws"  # unparsable, still cut

    def test_urls_inside_text_and_argument_lists(self) -> None:
        ccxt_message = "ExchangeNotAvailable: binance GET http://u:pw@127.0.0.1:9/?token=t/api/v3/exchangeInfo; retry"
        assert redact_text(ccxt_message) == "ExchangeNotAvailable: binance GET http://***@127.0.0.1:9/?token=***; retry"
        argv = ["--demo", "--api-key", "AKIA", "--ws-url", "wss://u:pw@h/ws", "--rest-url=http://u:pw@h",
                "--feed-arg=--api-key=k", "--seed", "7"]  # fmt: skip
        assert redact_argv(argv) == _redact(argv) == [
            "--demo", "--api-key", "***", "--ws-url", "wss://***@h/ws", "--rest-url=http://***@h",
            "--feed-arg=--api-key=***", "--seed", "7",
        ]  # fmt: skip

    def test_url_options_become_environment_variables(self) -> None:
        rest, env = split_secret_options(["--source", "binance", "--ws-url", "wss://a", "--rest-url=http://b", "--testnet"])
        assert rest == ["--source", "binance", "--testnet"]
        assert env == {ENV_WS_URL: "wss://a", ENV_REST_URL: "http://b"}


# -- neither the console nor the daemon puts a URL on a command line ----------------------
def make_backend(run_dir: Path, argv: list[str]) -> Daemon:
    args = build_parser().parse_args(argv)
    feed_args, engine_args = child_args(args, "binance")  # as run_daemon does
    return Daemon(load_safe_list(SAFE_LIST), SAFE_LIST, BookHome.at(run_dir), run_dir / "book.sqlite",
                  "PAPER", "binance", feed_args, engine_args)  # fmt: skip


def test_feed_gets_the_urls_in_its_environment_not_its_argv(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, rest = secret_urls(9)
    monkeypatch.setenv(ENV_WS_URL, "wss://from-the-console-env/ws")
    # the daemon the console starts: the URL options go to its environment, not its argv
    cmd, secrets = daemon_argv(["--ws-url", ws, "--rest-url=" + rest], ["--run-dir", str(short_dir)])
    assert_no_secret(" ".join(cmd), "the daemon's argv")
    assert secrets == {ENV_WS_URL: ws, ENV_REST_URL: rest}
    backend = make_backend(short_dir / "run", ["--ws-url", ws, "--rest-url", rest, "--feed-arg=--ws-url=" + ws])
    for child_argv in (backend._feed_argv, backend._engine_argv, backend.feed_argv(["--ws-url", ws])):
        assert_no_secret(" ".join(child_argv), "a child's argv")
        assert "--ws-url" not in " ".join(child_argv)
    feed_env, engine_env = backend.child_env("feed"), backend.child_env("engine")
    assert feed_env[ENV_WS_URL] == ws and feed_env[ENV_REST_URL] == rest  # the option wins
    assert ENV_WS_URL not in engine_env and ENV_REST_URL not in engine_env
    assert str(ROOT) in feed_env["PYTHONPATH"].split(os.pathsep)
    env = child_env({"X_SECRET": "1"}, drop=["HOME"])
    assert env["X_SECRET"] == "1" and "HOME" not in env


def test_a_url_given_as_a_feed_arg_stays_off_the_daemons_argv() -> None:
    """The feed never gets it on its argv (above); the daemon the console starts should not either."""
    ws, _ = secret_urls(9)
    cmd, secrets = daemon_argv(["--feed-arg=--ws-url=" + ws], [])
    assert_no_secret(" ".join(cmd), "the daemon's argv")
    assert secrets == {ENV_WS_URL: ws}


async def test_console_run_shows_no_secret_in_ps_or_any_log(
    short_dir: Path, console_root_logging: None, loose_umask: None
) -> None:
    """The real daemon start, a console attached: /proc/PID/cmdline of both children,
    daemon.log, console.log, feed.log and engine.log hold no credential; the feed's
    /proc/PID/environ has them; logs are 0600."""
    port = closed_port()
    ws, rest = secret_urls(port)
    argv = ["--ws-url", ws, "--rest-url", rest]  # no markets file: ccxt's REST errors name the URL
    backend = make_backend(short_dir / "run", argv)
    console_log, daemon_log = backend.logs.console, backend.home.daemon_log
    # one process here plays both: the console's log handler, then the daemon's beside it
    _setup_logging(console_log, "INFO")
    root = logging.getLogger()
    console_handlers = list(root.handlers)
    _setup_daemon_logging(daemon_log, "INFO", True)  # as run_daemon (--quiet) sets it up
    for h in console_handlers:
        root.addHandler(h)
    logging.getLogger("console.cli").info("attaching: args %s", _redact(argv))  # as _attach logs
    logging.getLogger("test").error("a stray one: %s", ws)  # the formatter catches even this
    cfg = load_safe_list(SAFE_LIST)
    model = ConsoleModel(cfg.active_symbols(), {s: {"tier": p.tier.value, "strategy": p.strategy} for s, p in cfg.pairs.items()})
    client = DaemonClient(backend.endpoints, "PAPER")
    try:
        await backend.start()
        await client.start(model)
        sup = backend.supervisor
        assert sup is not None
        await until(lambda: sup.pid("feed") is not None and sup.pid("engine") is not None, 30, "both children")
        for name in ("feed", "engine"):
            cmdline = Path(f"/proc/{sup.pid(name)}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            assert_no_secret(cmdline, f"the {name}'s command line")
        environ = Path(f"/proc/{sup.pid('feed')}/environ").read_bytes().split(b"\0")
        assert f"{ENV_WS_URL}={ws}".encode() in environ
        logs = backend.logs
        await until(lambda: logs.feed.exists() and logs.feed.read_text().count("retry #") >= 2, 30,
                    "the feed to fail twice against the closed port")  # fmt: skip
    finally:
        await client.stop()
        await backend.stop()
    pids = backend.supervisor.all_pids() if backend.supervisor else []
    assert pids and not any(alive(p) for p in pids)
    for path in (daemon_log, console_log, backend.logs.feed, backend.logs.engine):
        assert_no_secret(path.read_text(), path.name)
        assert mode(path) == 0o600, f"{path.name} is {mode(path):04o}"
    feed_log = backend.logs.feed.read_text()
    assert f"http://***@127.0.0.1:{port}/?token=***" in feed_log  # the error still says where
    # the daemon's start line names the feed's environment, its URL redacted
    assert f"{ENV_WS_URL}=wss://***@127.0.0.1:{port}/ws?apiKey=***" in daemon_log.read_text()
    assert "***@127.0.0.1" in console_log.read_text()


@pytest.mark.parametrize("via", ["argv", "environment"])
def test_feed_failing_to_connect_logs_no_credential(via: str, short_dir: Path) -> None:
    """``python -m feed --source binance`` against a closed port: its log and stderr stay clean."""
    port = closed_port()
    ws, rest = secret_urls(port)
    log_file = short_dir / "feed.log"
    cmd = [sys.executable, "-m", "feed", "--source", "binance", "--symbols", "BTC/USDT,ETH/USDT",
           "--pub", f"ipc://{short_dir}/p", "--rep", f"ipc://{short_dir}/r", "--log-file", str(log_file)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), ENV_WS_URL: "", ENV_REST_URL: ""}
    if via == "argv":  # by hand, REST failing (ccxt puts the URL in its message)
        cmd += ["--ws-url", ws, "--rest-url", rest]
    else:  # as the console does; markets from a file, so the websocket dial is what fails
        env.update({ENV_WS_URL: ws, ENV_REST_URL: rest})
        cmd += ["--markets-file", str(MARKETS_FILE)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.umask(0o022))  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if log_file.exists() and log_file.read_text().count("retry #") >= 2:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = log_file.read_text()
    assert text.count("retry #") >= 2, text
    assert "feed status reconnecting -> stopped" in text, text
    assert_no_secret(text, "feed.log")
    assert_no_secret((out + err).decode(errors="replace"), "the feed's stdout/stderr")
    assert f"ws wss://***@127.0.0.1:{port}/ws?apiKey=***" in text
    assert mode(log_file) == 0o600


def test_bad_url_error_shows_no_credential(short_dir: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "feed", "--source", "binance", "--pub", f"ipc://{short_dir}/p",
                        "--rep", f"ipc://{short_dir}/r", "--ws-url", f"https://u:{PASSWORD}@h/ws?key={API_KEY}",
                        "--nonsense", f"http://u:{PASSWORD}@h"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    assert_no_secret(r.stderr, "the usage error")
    r = subprocess.run([sys.executable, "-m", "feed", "--source", "binance", "--pub", f"ipc://{short_dir}/p",
                        "--rep", f"ipc://{short_dir}/r", "--ws-url", f"https://u:{PASSWORD}@h/ws?key={API_KEY}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "must start with ws:// or wss://" in r.stderr
    assert_no_secret(r.stderr, "the bad-URL error")


# -- file modes ---------------------------------------------------------------------------
class TestPrivateFile:
    def test_created_0600_whatever_the_umask(self, tmp_path: Path) -> None:
        old = os.umask(0)
        try:
            assert private_file(tmp_path / "a.log") is None
        finally:
            os.umask(old)
        assert mode(tmp_path / "a.log") == 0o600
        assert private_file(tmp_path / "missing", create=False) is None
        assert not (tmp_path / "missing").exists()

    def test_wider_modes_are_tightened_and_said(self, tmp_path: Path) -> None:
        p = tmp_path / "a.log"
        p.write_text("kept\n")
        p.chmod(0o644)
        note = private_file(p)
        assert note == f"{p}: mode was 0644, readable by other users; tightened to 0600"
        assert mode(p) == 0o600 and p.read_text() == "kept\n"
        p.chmod(0o444)
        private_file(p)
        assert mode(p) == 0o400  # never widened for its owner either
        assert private_file(p) is None
        assert private_file("/dev/null") is None  # not a regular file: left alone

    def test_refused_naming_the_file_when_chmod_fails(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        p = tmp_path / "a.log"
        p.write_text("")
        p.chmod(0o640)
        monkeypatch.setattr(os, "chmod", refuse_chmod)
        with pytest.raises(PrivateFileError) as err:
            private_file(p)
        assert str(err.value).startswith(f"{p}: mode 0640 lets other users read it and chmod 0600 failed")
        assert "\n" not in str(err.value)
        with pytest.raises(OSError, match="cannot create"):
            private_file(tmp_path / "no" / "such" / "dir.log")


class TestBookModes:
    def test_new_book_and_its_wal_and_shm_are_0600(self, tmp_path: Path, loose_umask: None) -> None:
        db = tmp_path / "book.sqlite"
        with Store(db) as store:
            store.init_account(1000.0, 1)
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                assert p.exists() and mode(p) == 0o600, f"{p.name} is {mode(p):04o}"

    def test_existing_wide_book_wal_and_shm_are_tightened(
        self, tmp_path: Path, loose_umask: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        db = tmp_path / "book.sqlite"
        Store(db).close()
        db.chmod(0o644)  # as an older version left it, and a reader holds it open: 0644 -wal/-shm
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("INSERT INTO events (ts, kind, message) VALUES (1, 'rearm', 'x')")
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert [mode(p) for p in files] == [0o644] * 3
        try:
            with caplog.at_level(logging.WARNING, "engine.journal.store"), Store(db) as store:
                store.init_account(1000.0, 1)
                assert [mode(p) for p in files] == [0o600] * 3
        finally:
            other.close()
        said = [r.getMessage() for r in caplog.records]
        for p in files:
            assert f"store {p}: mode was 0644, readable by other users; tightened to 0600" in said

    def test_refused_with_the_reason_when_it_cannot_be_tightened(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        db = tmp_path / "book.sqlite"
        Store(db).close()
        db.chmod(0o644)
        monkeypatch.setattr(os, "chmod", refuse_chmod)
        with pytest.raises(StoreError, match=rf"^{db}: mode 0644 lets other users read it"):
            Store(db)


class TestLogModes:
    def test_console_log_is_created_0600_and_tightened(self, tmp_path: Path, console_root_logging: None, loose_umask: None) -> None:
        path = tmp_path / "console.log"
        _setup_logging(path, "INFO")
        assert mode(path) == 0o600
        path.chmod(0o644)
        _setup_logging(path, "INFO")
        assert mode(path) == 0o600
        logging.shutdown()
        assert "mode was 0644, readable by other users; tightened to 0600" in path.read_text()

    def test_console_refuses_a_log_it_cannot_tighten(
        self, tmp_path: Path, console_root_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "console.log"
        path.write_text("")
        path.chmod(0o644)
        monkeypatch.setattr(os, "chmod", refuse_chmod)
        with pytest.raises(SystemExit) as exit_:
            _setup_logging(path, "INFO")
        assert exit_.value.code == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"multipar-console: cannot open log file {path}: mode 0644")

    def test_backend_creates_the_children_logs_0600(self, short_dir: Path, loose_umask: None) -> None:
        logs = create_run_dir(short_dir / "run").logs
        logs.engine.write_text("old\n")
        logs.engine.chmod(0o644)
        logs.make_private()
        assert mode(logs.feed) == mode(logs.engine) == 0o600

    @pytest.mark.parametrize("existing", [False, True])
    def test_engine_log_file_is_0600(self, existing: bool, tmp_path: Path) -> None:
        """``python -m engine --log-file``: created 0600 under umask 022, or tightened and said."""
        log_file = tmp_path / "engine.log"
        if existing:
            log_file.write_text("")
            log_file.chmod(0o644)
        r = subprocess.run(
            [sys.executable, "-m", "engine", "--config", str(SAFE_LIST), "--db", str(tmp_path / "no" / "book.sqlite"),
             "--feed-pub", "ipc:///nowhere/p", "--feed-rep", "ipc:///nowhere/r", "--pub", "ipc:///nowhere/e",
             "--cmd", "ipc:///nowhere/c", "--log-file", str(log_file)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0o022),
        )
        assert r.returncode == 2 and "does not exist" in r.stderr  # stops right after logging is set up
        assert mode(log_file) == 0o600
        assert ("tightened to 0600" in log_file.read_text()) is existing

