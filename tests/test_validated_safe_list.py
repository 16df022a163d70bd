"""The engine trades on the safe list the daemon validated at start (a copy in its home
directory), not on the operator's file as it is now: a file broken while trading never stops a
restarted engine."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console import cli, daemon_start, preflight
from console.client import DaemonClient
from console.daemon import main as daemon_main
from console.daemon.home import BookHome
from console.daemon.service import Daemon
from console.model import ConsoleModel
from console.rundir import create_run_dir
from engine.core.config import ConfigError, load_safe_list
from tests.procs import alive, until

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"
BROKEN = "portfolio:\n  capital_usd: -1\npairs: [\n"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mpv-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def operator_copy(d: Path) -> Path:
    """The operator's safe list: a file of their own, which they may edit while trading."""
    p = d / "mine.yaml"
    p.write_bytes(SAFE_LIST.read_bytes() + b"# the operator's own comment\r\n")
    return p


def engine_config(argv: list[str]) -> Path:
    return Path(argv[argv.index("--config") + 1])


def test_the_run_copy_is_the_validated_text_private_and_stays_so(short_dir: Path) -> None:
    mine = operator_copy(short_dir)
    validated = preflight.validate(mine)
    run = create_run_dir(short_dir / "run")
    copy = preflight.write_run_copy(validated, run.path)
    assert copy == run.path / "safe_list.yaml"
    assert copy.read_bytes() == mine.read_bytes()  # byte for byte, \r\n and comment included
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []

    mine.write_text(BROKEN)  # the operator breaks their file while trading
    with pytest.raises(ConfigError):
        load_safe_list(mine)
    assert load_safe_list(copy) == validated.cfg  # what a respawned engine reads
    os.chmod(copy, 0o644)
    assert preflight.write_run_copy(validated, run.path) == copy  # rewritten at a reused run dir
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


def test_editing_the_original_does_not_change_what_a_respawned_engine_is_given(
    short_dir: Path,
) -> None:
    """The engine's command line (the same at every restart) names the run copy, and the
    copy's content is the validated text, whatever happens to the operator's file."""
    mine = operator_copy(short_dir)
    validated = preflight.validate(mine)
    run = create_run_dir(short_dir / "run")
    copy = preflight.write_run_copy(validated, run.path)
    backend = Daemon(
        validated.cfg, copy, BookHome.at(run.path), run.path / "demo.sqlite", "DEMO", "sim",
        ["--source", "sim"], [],
    )  # fmt: skip
    argv = backend.engine_argv([])
    assert engine_config(argv) == copy
    mine.write_text(BROKEN)
    mine.unlink()
    assert backend.engine_argv([]) == argv
    assert engine_config(argv).read_bytes() == validated.text.encode()


def test_run_console_gives_the_engine_the_run_copy(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, console_root_logging: None) -> None:
    """The real command-line path, up to where the daemon would run: the console hands the
    operator's file and the run directory to the daemon it starts, and the daemon it builds
    names the copy in that directory, written from the text it validated."""
    mine = operator_copy(short_dir)
    run_dir = short_dir / "run"
    argv = ["--demo", "--config", str(mine), "--run-dir", str(run_dir)]
    # what the console runs (with --owner-pid) for the demo's daemon
    cmd, _ = daemon_start.daemon_argv(argv, ["--owner-pid", "1"])
    assert cmd[1:3] == ["-m", "console.daemon"] and cmd[cmd.index("--config") + 1] == str(mine)
    assert cmd[cmd.index("--run-dir") + 1] == str(run_dir)
    built: list[Any] = []

    async def fake_serve(daemon: Any, home: Any, args: Any, listen: Any) -> int:
        built.append(daemon)
        return 0

    monkeypatch.setattr(daemon_main, "_serve", fake_serve)
    assert cli.main(["daemon", *argv]) == 0  # what that command runs
    (backend,) = built
    copy = run_dir.absolute() / "safe_list.yaml"
    assert engine_config(backend.engine_argv([])) == copy
    assert backend.cfg_path == copy
    assert copy.read_bytes() == mine.read_bytes()
    assert backend.supervisor is None  # no child was started by this test


def new_model() -> ConsoleModel:
    cfg = load_safe_list(SAFE_LIST)
    meta = {s: {"tier": p.tier.value, "strategy": p.strategy} for s, p in cfg.pairs.items()}
    return ConsoleModel(cfg.active_symbols(), meta)


async def test_an_engine_restarted_after_the_file_broke_trades_on(short_dir: Path) -> None:
    """Start the stack, break the operator's file, kill the engine: the supervisor restarts it
    on the validated copy, and it beats, answers and publishes prices again."""
    mine = operator_copy(short_dir)
    validated = preflight.validate(mine)
    run = create_run_dir(short_dir / "run")
    copy = preflight.write_run_copy(validated, run.path)
    daemon = Daemon(
        validated.cfg, copy, BookHome.at(run.path), run.path / "demo.sqlite", "DEMO", "sim",
        ["--source", "sim", "--seed", "5"], [],
    )  # fmt: skip
    backend = DaemonClient(daemon.endpoints, "DEMO")  # a console attached to it
    model = new_model()
    try:
        await daemon.start()
        await backend.start(model)
        ready = await daemon.wait_ready(30) and await backend.wait_ready(30)
        assert ready, daemon.logs.engine.read_text(errors="replace")[-2000:]
        sup, bridge = daemon.supervisor, backend.bridge
        assert sup is not None and bridge is not None
        first = sup.pid("engine")
        assert first is not None

        mine.write_text(BROKEN)  # while trading
        os.kill(first, signal.SIGKILL)
        await until(lambda: sup.pid("engine") not in (None, first), what="the restart")
        fresh = sup.pid("engine")
        assert fresh is not None
        await until(lambda: bridge.beat_pid.get("engine") == fresh, what="the new engine's beat")
        await until(lambda: sup.state("engine") == "running", what="running again")
        cmdline = Path(f"/proc/{fresh}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--config") + 1] == str(copy).encode()
        ack = await backend.command("ping")
        assert ack.ok, ack
        pv = model.pairs["BTC/USDT"]
        updates = pv.updates
        await until(lambda: pv.updates > updates + 3, what="prices from the new engine")
        assert sup.state("engine") == "running" and sup.restarts("engine") == 1
    finally:
        await backend.stop()
        await daemon.stop()
    pids = daemon.supervisor.all_pids() if daemon.supervisor else []
    assert pids and not any(alive(p) for p in pids)
