"""Hostile safe-list files (issue 17, point 2): each is refused with one line naming the file
and what to do, never a traceback, and a BOM or CRLF file is accepted. The same validation
serves ``check-config``, the daemon's start and ``reload`` (console/config_checks.py).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from console.config_checks import check_config, check_safe_list
from engine.core.config import ConfigError, load_safe_list
from engine.core.config_file import MAX_BYTES

SHIPPED = Path(__file__).resolve().parents[1] / "safe_list.yaml"
BASE = SHIPPED.read_text(encoding="utf-8")


def _one_line(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        check_safe_list(path)
    problems = err.value.problems
    assert problems and all("\n" not in p and str(path) in p for p in problems), problems
    return problems[0]


def _write(tmp_path: Path, data: str | bytes, name: str = "safe_list.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def test_a_key_that_is_a_list_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    line = _one_line(_write(tmp_path, BASE + "? [a, b]\n: 1\n"))
    assert "a key is a list or a mapping" in line


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("capital_usd: 10000 ", "capital_usd: [1, 2]", "portfolio.capital_usd"),
        ("strategy: momentum ", "strategy: {a: 1}", "pairs.BTC/USDT.strategy"),
        ("    params:\n      rsi_period: 14\n      ma_fast", "    params: 7\n    x:\n      ma_fast", "pairs.BTC/USDT"),
        ("max_position_size_usd: 3000", "max_position_size_usd: 2020-01-01", "max_position_size_usd"),
    ],
)
def test_wrong_types_are_one_line(tmp_path: Path, old: str, new: str, says: str) -> None:
    assert BASE.count(old) == 1, old
    assert says in _one_line(_write(tmp_path, BASE.replace(old, new)))


def test_not_utf8_and_control_characters(tmp_path: Path) -> None:
    assert "not UTF-8" in _one_line(_write(tmp_path, BASE.encode() + b"\xff\xfe\n"))
    line = _one_line(_write(tmp_path, BASE.replace("tier: STABLE", "tier: STA\x07BLE", 1)))
    assert "control character U+0007" in line and "line " in line
    assert "control character U+001B" in _one_line(_write(tmp_path, "# \x1b[2J\n" + BASE))


def test_a_50_mb_file_is_refused_by_its_size_without_reading_it(tmp_path: Path) -> None:
    p = tmp_path / "huge.yaml"
    with open(p, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB long, nothing written
    t0 = time.monotonic()
    line = _one_line(p)
    assert "52.4 MB is larger than a safe list can be" in line and f"{MAX_BYTES // 1024} KiB" in line
    assert time.monotonic() - t0 < 1.0


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    # the "billion laughs": nine levels of nine aliases stand for 9**9 (387 million) strings
    bomb = 'l0: &l0 ["x","x","x","x","x","x","x","x","x"]\n'
    for i in range(1, 9):
        bomb += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n"
    t0 = time.monotonic()
    line = _one_line(_write(tmp_path, bomb + BASE))
    assert "aliases expand to more than 200,000 values" in line and "line " in line
    assert time.monotonic() - t0 < 1.0


def test_anchors_and_aliases_that_share_parameters_are_accepted(tmp_path: Path) -> None:
    # the ordinary use of aliases: one set of parameters written once, used by several pairs
    p = tmp_path / "shared.yaml"
    p.write_text(
        "version: 1\nportfolio: {capital_usd: 10000}\npairs:\n"
        "  BTC/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 500, params: &p {ma_fast: 9, ma_slow: 21}}\n"
        "  ETH/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 500, params: *p}\n"
    )
    cfg = load_safe_list(p)
    assert cfg.pairs["ETH/USDT"].params.ma_fast == 9 and cfg.pairs["ETH/USDT"].params.ma_slow == 21


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    assert "nested deeper than" in _one_line(_write(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n" + BASE))


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    done: list[str] = []
    t = threading.Thread(target=lambda: done.append(_one_line(fifo)), daemon=True)
    t.start()
    t.join(5.0)
    assert done and "is a FIFO (named pipe), not a file" in done[0]


def test_a_device_or_a_directory_is_refused(tmp_path: Path) -> None:
    assert "is a device, not a file" in _one_line(Path("/dev/zero"))
    assert "is a directory" in _one_line(tmp_path)


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    crlf = BASE.replace("\n", "\r\n")
    text, cfg = check_safe_list(_write(tmp_path, b"\xef\xbb\xbf" + crlf.encode()))
    assert cfg.active_symbols() == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert not text.startswith("\ufeff")  # the run copy is written without it
    assert load_safe_list(_write(tmp_path, crlf, "b.yaml")).pairs["BTC/USDT"].params.ma_slow == 60


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("capital_usd: 10000 ", "capital_usd: 1e15 ", "portfolio.capital_usd: 1e+15 USD is beyond"),
        ("max_position_size_usd: 3000", "max_position_size_usd: 5000000000", "pairs.BTC/USDT.max_position_size_usd"),
        ("risk_per_trade_usd: 5 ", "risk_per_trade_usd: .inf ", "not a finite number"),
        ("max_correlated_positions: 2 ", "max_correlated_positions: 100000000000000000000 ", "too large"),
    ],
)
def test_numbers_too_large_to_mean_anything(tmp_path: Path, old: str, new: str, says: str) -> None:
    assert BASE.count(old) == 1, old
    assert says in _one_line(_write(tmp_path, BASE.replace(old, new)))


def test_a_pair_not_quoted_in_usdt_is_refused(tmp_path: Path) -> None:
    line = _one_line(_write(tmp_path, BASE.replace("SOL/USDT:", "SOL/BTC:")))
    assert "pairs.SOL/BTC: quoted in BTC, not USDT" in line and "trade SOL/USDT instead" in line


def test_check_config_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _write(tmp_path, BASE + "? [a]\n: 1\n")
    assert check_config([str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(p) in err
