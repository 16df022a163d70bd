"""The command line: check-config, option handling, and the signal path of the orderly exit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import _redact, main, serve
from console.options import DEMO_TIME_SCALE, build_parser, default_db_path
from console.options import child_args as _child_args

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"

pytestmark = pytest.mark.timeout(60)


def broken_copy(tmp_path: Path, old: str, new: str, name: str = "broken.yaml") -> Path:
    text = SAFE_LIST.read_text()
    assert old in text, f"{old!r} is no longer in safe_list.yaml: update this test"
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


class TestCheckConfig:
    """``multipar-console check-config [PATH]``: a table and exit 0, or one line per problem and 2."""

    def test_the_shipped_safe_list_lists_three_pairs(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["check-config", str(SAFE_LIST)]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0] == f"{SAFE_LIST}: ok, 3 active pair(s)"
        header = lines[1].split()
        assert header[:3] == ["SYMBOL", "TIER", "STRATEGY"] and "LEVERAGE" in header
        rows = {ln.split()[0]: ln.split() for ln in lines[2:5]}
        assert rows["BTC/USDT"][:3] == ["BTC/USDT", "STABLE", "momentum"]
        assert rows["ETH/USDT"][:3] == ["ETH/USDT", "STABLE", "mean_reversion"]
        assert rows["SOL/USDT"][:3] == ["SOL/USDT", "VOLATILE", "breakout"]
        assert rows["BTC/USDT"][-2:] == ["1x", "3,000.00"]
        assert rows["SOL/USDT"][-1] == "2,000.00"

    def test_disabled_pairs_are_not_listed(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = broken_copy(
            tmp_path, "  SOL/USDT:\n    enabled: true", "  SOL/USDT:\n    enabled: false"
        )
        assert main(["check-config", str(p)]) == 0
        out = capsys.readouterr().out
        assert "2 active pair(s), 1 disabled" in out and "SOL/USDT" not in out

    @pytest.mark.parametrize(
        ("old", "new", "field"),
        [
            ("strategy: mean_reversion", "strategy: mean_revert", "pairs.ETH/USDT.strategy"),
            (
                "    leverage: 1\n    max_position_size_usd: 3000",
                "    leverage: 3\n    max_position_size_usd: 3000",
                "pairs.BTC/USDT",
            ),
            (
                "max_position_size_usd: 2000",
                "max_position_size_usd: -5",
                "pairs.SOL/USDT.max_position_size_usd",
            ),
            ("capital_usd: 10000", "capital_usd: 10000\n  capitol_usd: 5", "portfolio.capitol_usd"),
            ("timeframe: 1m", "timeframe: 1minute", "engine.timeframe"),
            ("tier: VOLATILE", "tier: WILD", "pairs.SOL/USDT.tier"),
        ],
    )
    def test_a_broken_copy_gives_one_line_naming_file_and_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, field: str
    ) -> None:
        p = broken_copy(tmp_path, old, new)
        assert main(["check-config", str(p)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"{p}: {field}"), lines[0]

    def test_malformed_yaml_and_missing_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = broken_copy(tmp_path, "  ETH/USDT:\n", "  ETH/USDT: [\n")
        assert main(["check-config", str(p)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"{p}: line ") and "YAML" in err[0]
        missing = tmp_path / "nope.yaml"
        assert main(["check-config", str(missing)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"{missing}: cannot read")

    def test_duplicate_pair_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = broken_copy(tmp_path, "  SOL/USDT:\n", "  BTC/USDT:\n")
        assert main(["check-config", str(p)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "duplicate key 'BTC/USDT'" in err[0]

    def test_as_a_real_command(self, tmp_path: Path) -> None:
        """``python -m console check-config`` uses $MULTIPAR_SAFE_LIST when no path is given."""
        env = dict(os.environ, PYTHONPATH=str(ROOT), MULTIPAR_SAFE_LIST=str(SAFE_LIST))
        r = subprocess.run(
            [sys.executable, "-m", "console", "check-config"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "BTC/USDT" in r.stdout and "SOL/USDT" in r.stdout
        bad = broken_copy(tmp_path, "strategy: breakout", "strategy: brekout")
        r = subprocess.run(
            [sys.executable, "-m", "console", "check-config", str(bad)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.strip().startswith(
            f"{bad}: pairs.SOL/USDT.strategy: unknown strategy 'brekout'"
        )


class TestConsoleOptions:
    """Bad input on the main command fails fast with one line, before any child starts."""

    def test_bad_config_exits_2_without_starting(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = broken_copy(tmp_path, "strategy: momentum", "strategy: momentom")
        run_dir = tmp_path / "run"
        assert main(["--demo", "--config", str(p), "--run-dir", str(run_dir)]) == 2
        assert "pairs.BTC/USDT.strategy" in capsys.readouterr().err
        assert not run_dir.exists()

    def test_bad_endpoint_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        run_dir = tmp_path / "r"
        code = main(
            [
                "--demo",
                "--config",
                str(SAFE_LIST),
                "--run-dir",
                str(run_dir),
                "--engine-cmd",
                "udp://x:1",
            ]
        )
        assert code == 2
        assert (
            "engine_cmd 'udp://x:1' is not ipc://PATH or tcp://HOST:PORT" in capsys.readouterr().err
        )

    def test_bad_timeframe_is_an_argument_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            main(["--demo", "--timeframe", "1minute"])
        assert exc.value.code == 2
        assert "timeframe '1minute' is not like" in capsys.readouterr().err

    def test_replay_needs_a_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        run_dir = tmp_path / "run"
        assert (
            main(["--source", "replay", "--config", str(SAFE_LIST), "--run-dir", str(run_dir)]) == 2
        )
        assert "--source replay needs --replay-file PATH" in capsys.readouterr().err
        assert not run_dir.exists()

    def test_options_reach_the_children(self) -> None:
        args = build_parser().parse_args(
            [
                "--demo",
                "--seed",
                "9",
                "--rate",
                "50",
                "--timeframe",
                "15s",
                "--feed-arg=--hwm",
                "--feed-arg=10",
            ]
        )
        feed, engine = _child_args(args, "sim")
        assert feed == [
            "--source", "sim", "--seed", "9", "--rate", "50.0", "--time-scale", "30", "--hwm", "10",
        ]  # fmt: skip
        assert engine == ["--timeframe", "15s"]
        args = build_parser().parse_args(
            ["--ws-url", "ws://127.0.0.1:9/ws", "--testnet", "--markets-file", "/m.json"]
        )
        feed, engine = _child_args(args, "binance")
        assert feed == [
            "--source", "binance", "--ws-url", "ws://127.0.0.1:9/ws", "--testnet", "--markets-file", "/m.json",
        ]  # fmt: skip
        assert engine == ["--markets-file", "/m.json"]

    def test_the_demo_market_runs_at_the_demo_time_scale(self) -> None:
        """--demo runs the sim 30x (a 2 s candle is a market minute); a --time-scale given
        through --feed-arg comes later on the feed's command line, so it wins; no other run
        (nor a demo on another source) gets one."""
        from feed.__main__ import parse_args as feed_parse_args

        def feed_of(*argv: str, source: str = "sim") -> list[str]:
            return _child_args(build_parser().parse_args(list(argv)), source)[0]

        endpoints = ["--pub", "ipc:///tmp/p", "--rep", "ipc:///tmp/r"]
        demo = feed_of("--demo")
        assert demo == ["--source", "sim", "--time-scale", str(DEMO_TIME_SCALE)]
        assert feed_parse_args([*demo, *endpoints]).time_scale == 30.0
        mine = feed_of("--demo", "--feed-arg=--time-scale=5")
        assert feed_parse_args([*mine, *endpoints]).time_scale == 5.0
        mine = feed_of("--demo", "--feed-arg=--time-scale", "--feed-arg=7.5")
        assert feed_parse_args([*mine, *endpoints]).time_scale == 7.5
        assert "--time-scale" not in feed_of("--source", "sim")
        assert "--time-scale" not in feed_of("--demo", source="binance")

    def test_default_db_follows_xdg_state_home(self) -> None:
        assert default_db_path({"HOME": "/home/ana"}) == Path(
            "/home/ana/.local/state/multipar-console/paper.sqlite"
        )
        assert default_db_path({"HOME": "/h", "XDG_STATE_HOME": "/s"}) == Path(
            "/s/multipar-console/paper.sqlite"
        )

    def test_secrets_are_redacted_from_logged_arguments(self) -> None:
        argv = ["--demo", "--api-key", "AKIA123", "--secret=s3cr3t", "--seed", "7"]
        assert _redact(argv) == ["--demo", "--api-key", "***", "--secret=***", "--seed", "7"]


class _FakeApp:
    """Stands where the Textual app would: runs until exit() and records shutdown()."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.shutdown_calls = 0
        self.exit_calls = 0

    async def run_async(self) -> None:
        await self.done.wait()

    async def shutdown(self) -> None:
        self.shutdown_calls += 1
        self.done.set()

    def exit(self) -> None:
        self.exit_calls += 1
        self.done.set()


class _FakeBackend:
    def __init__(self) -> None:
        self.stop_calls = 0

    async def stop(self) -> None:
        self.stop_calls += 1


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
async def test_hangup_and_term_run_the_orderly_shutdown(sig: signal.Signals) -> None:
    app, backend = _FakeApp(), _FakeBackend()
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, os.kill, os.getpid(), sig)
    code = await asyncio.wait_for(serve(app, backend), 10)
    assert code == 128 + sig
    assert backend.stop_calls >= 1 and app.shutdown_calls == 1 and app.exit_calls == 1


async def test_quit_without_a_signal_still_stops_the_backend() -> None:
    app, backend = _FakeApp(), _FakeBackend()
    asyncio.get_running_loop().call_later(0.1, app.done.set)
    assert await asyncio.wait_for(serve(app, backend), 10) == 0
    assert backend.stop_calls == 1 and app.shutdown_calls == 0


def test_the_demo_trades_its_own_safe_list_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from console.options import DEMO_SAFE_LIST, safe_list_path
    from engine.core.config import ENV_SAFE_LIST, load_safe_list

    monkeypatch.delenv(ENV_SAFE_LIST, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./safe_list.yaml here
    demo = load_safe_list(DEMO_SAFE_LIST)  # it validates, with the shipped pairs
    assert demo.active_symbols() == load_safe_list(SAFE_LIST).active_symbols()
    assert safe_list_path(argparse.Namespace(demo=True, config=None)) == DEMO_SAFE_LIST
    assert safe_list_path(argparse.Namespace(demo=False, config=None)) == SAFE_LIST.resolve()
    mine = tmp_path / "mine.yaml"
    assert safe_list_path(argparse.Namespace(demo=True, config=mine)) == mine
    monkeypatch.setenv(ENV_SAFE_LIST, str(mine))
    assert safe_list_path(argparse.Namespace(demo=True, config=None)) == mine


class TestCheckConfigFlags:
    """check-config also flags a pair sized above the exposure cap, and (with --markets-file) an
    active pair the exchange does not list: one line each naming the file and the pair, exit 2."""

    MARKETS = ROOT / "tests" / "data" / "binance_markets.json"

    def markets(self, tmp_path: Path, drop: str = "", **changes: dict[str, object]) -> Path:
        import json

        data = json.loads(self.MARKETS.read_text())
        keep = {s: m for s, m in data.items() if s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")}
        keep.pop(drop, None)
        for sym, change in changes.items():
            keep[sym.replace("_", "/")].update(change)
        p = tmp_path / "markets.json"
        p.write_text(json.dumps(keep))
        return p

    def test_a_size_above_the_exposure_cap(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = broken_copy(tmp_path, "max_position_size_usd: 3000", "max_position_size_usd: 7000")
        assert main(["check-config", str(p)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1, err
        assert err.startswith(f"{p}: pairs.BTC/USDT.max_position_size_usd: 7,000.00 USD is above")
        assert "exposure cap 6,000.00 USD" in err and "max_total_exposure" in err
        # at the cap exactly is fine
        p = broken_copy(tmp_path, "max_position_size_usd: 3000", "max_position_size_usd: 6000")
        assert main(["check-config", str(p)]) == 0

    def test_every_pair_listed(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        m = self.markets(tmp_path)
        assert main(["check-config", str(SAFE_LIST), "--markets-file", str(m)]) == 0
        assert f"markets: every active pair is listed in {m}" in capsys.readouterr().out

    def test_a_pair_the_exchange_does_not_list(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        m = self.markets(tmp_path, drop="SOL/USDT")
        assert main(["check-config", str(SAFE_LIST), "--markets-file", str(m)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [
            f"{SAFE_LIST}: pairs.SOL/USDT: the exchange does not list SOL/USDT in {m} "
            "(check the symbol's spelling and quote currency, or set enabled: false)"
        ]
        # a disabled pair does not trade: not checked
        p = broken_copy(tmp_path, "  SOL/USDT:\n    enabled: true", "  SOL/USDT:\n    enabled: false")
        assert main(["check-config", str(p), "--markets-file", str(m)]) == 0

    def test_a_pair_listed_as_not_trading(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        m = self.markets(tmp_path, ETH_USDT={"active": False})
        assert main(["check-config", str(SAFE_LIST), "--markets-file", str(m)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "pairs.ETH/USDT" in err[0] and "not trading" in err[0]

    @pytest.mark.parametrize(
        ("content", "needle"),
        [
            (None, "cannot read the markets file"),
            ("{not json", "line 1: not JSON"),
            ('{"symbols": [{"symbol": "BTCUSDT"}], "timezone": "UTC"}', "expected ccxt load_markets() JSON"),
        ],
    )
    def test_an_unusable_markets_file_is_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, needle: str
    ) -> None:
        m = tmp_path / "markets.json"
        if content is not None:
            m.write_text(content)
        assert main(["check-config", str(SAFE_LIST), "--markets-file", str(m)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"{m}: ") and needle in err[0], err


def test_version_is_the_installed_package_version() -> None:
    from importlib.metadata import version

    r = subprocess.run(
        [sys.executable, "-m", "console", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    from engine.compiled import describe

    # the same build in the child: same sources, same manifest
    assert r.stdout.strip() == f"multipar-console {version('multipar-console')} ({describe()})"
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version("multipar-console") == project["version"] and r.stderr == ""


def test_readme_docs_and_pyproject_point_at_no_design_file_outside_the_repo() -> None:
    """The design brief and style notes the project started from are not in the repository:
    nothing a newcomer reads may send them to DESIGN.md, STYLE.md or ../shared."""
    texts = {p: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", ROOT / "pyproject.toml",
                                                        *sorted((ROOT / "docs").glob("*.md"))]}  # fmt: skip
    assert (ROOT / "docs" / "architecture.md").exists()
    for path, text in texts.items():
        for name in ("DESIGN.md", "STYLE.md", "../shared"):
            assert name not in text, f"{path.relative_to(ROOT)} names {name}, which is not in the repo"
