"""Safe-list validation (engine/config.py): every bad case is a ConfigError whose problems
are one line each, naming the file, the pair and the field; the shipped file loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.config import (
    ENV_SAFE_LIST,
    ConfigError,
    Tier,
    get_active_symbols,
    get_symbol_config,
    load_safe_list,
)

SHIPPED = Path(__file__).resolve().parents[1] / "safe_list.yaml"
BASE = SHIPPED.read_text(encoding="utf-8")


def _problems(tmp_path: Path, text: str, name: str = "safe_list.yaml") -> tuple[str, list[str]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_safe_list(path)
    problems = err.value.problems
    assert problems and all("\n" not in p for p in problems)
    assert str(err.value) == "\n".join(problems)
    return str(path), problems


def _edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_shipped_safe_list_loads() -> None:
    cfg = load_safe_list(SHIPPED)
    assert cfg.active_symbols() == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert get_active_symbols(cfg) == cfg.active_symbols()
    btc = get_symbol_config("BTC/USDT", cfg)
    assert btc.tier is Tier.STABLE and btc.strategy == "momentum" and btc.params.ma_fast == 20
    assert cfg.portfolio.max_exposure_usd == pytest.approx(6_000.0)
    assert cfg.engine.timeframe_s == 60
    with pytest.raises(KeyError, match="XRP/USDT is not in the safe list"):
        cfg.pair("XRP/USDT")


def test_env_var_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(_edit("  SOL/USDT:\n    enabled: true", "  SOL/USDT:\n    enabled: false"))
    monkeypatch.setenv(ENV_SAFE_LIST, str(path))
    assert load_safe_list().active_symbols() == ["BTC/USDT", "ETH/USDT"]


def test_unknown_key(tmp_path: Path) -> None:
    text = _edit("    max_position_size_usd: 3000\n", "    max_position_size_usd: 3000\n    colour: red\n")
    name, (line,) = _problems(tmp_path, text)
    assert line.startswith(f"{name}: pairs.BTC/USDT.colour: unknown key")


def test_unknown_strategy_param(tmp_path: Path) -> None:
    text = _edit("      ma_slow: 60\n", "      ma_slow: 60\n      ma_medium: 15\n")
    name, (line,) = _problems(tmp_path, text)
    assert line.startswith(f"{name}: pairs.BTC/USDT.params.ma_medium: unknown key")


def test_unknown_top_level_and_portfolio_keys(tmp_path: Path) -> None:
    text = _edit("version: 1\n", "version: 1\nextras: {}\n")
    text = _edit("  atr_multiplier: 3.0", "  max_drawdown: 0.2\n  atr_multiplier: 3.0", text)
    name, problems = _problems(tmp_path, text)
    assert sorted(problems) == sorted(
        [
            f"{name}: extras: unknown key (check the spelling; see docs/configuration.md)",
            f"{name}: portfolio.max_drawdown: unknown key (check the spelling; see docs/configuration.md) (got 0.2)",
        ]
    )


@pytest.mark.parametrize(
    ("old", "new", "where", "text"),
    [
        ("max_position_size_usd: 3000", "max_position_size_usd: lots", "pairs.BTC/USDT.max_position_size_usd", "valid number"),
        ("    leverage: 1\n    max_position_size_usd: 2500", "    leverage: two\n    max_position_size_usd: 2500",
         "pairs.ETH/USDT.leverage", "valid integer"),
        ("enabled: true\n    tier: STABLE\n    strategy: momentum", "enabled: maybe\n    tier: STABLE\n    strategy: momentum",
         "pairs.BTC/USDT.enabled", "valid boolean"),
        ("      bb_std: 2.0", "      bb_std: [2]", "pairs.ETH/USDT.params.bb_std", "valid number"),
        ("  capital_usd: 10000", "  capital_usd: ten", "portfolio.capital_usd", "valid number"),
    ],
)
def test_wrong_types(tmp_path: Path, old: str, new: str, where: str, text: str) -> None:
    name, (line,) = _problems(tmp_path, _edit(old, new))
    assert line.startswith(f"{name}: {where}: ") and text in line


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("max_position_size_usd: 3000", "max_position_size_usd: -500", "pairs.BTC/USDT.max_position_size_usd"),
        ("max_position_size_usd: 2000", "max_position_size_usd: 0", "pairs.SOL/USDT.max_position_size_usd"),
        ("  capital_usd: 10000", "  capital_usd: -1", "portfolio.capital_usd"),
        ("  risk_per_trade_usd: 5", "  risk_per_trade_usd: -25", "portfolio.risk_per_trade_usd"),
        ("  max_total_exposure: 0.60", "  max_total_exposure: 1.5", "portfolio.max_total_exposure"),
    ],
)
def test_negative_or_out_of_range_sizes(tmp_path: Path, old: str, new: str, where: str) -> None:
    name, (line,) = _problems(tmp_path, _edit(old, new))
    assert line.startswith(f"{name}: {where}: Input should be")
    assert f"(got {new.split(': ')[1]})" in line


def test_negative_indicator_period(tmp_path: Path) -> None:
    text = _edit("      rsi_period: 14\n      rsi_oversold: 25", "      rsi_period: -3\n      rsi_oversold: 25")
    name, (line,) = _problems(tmp_path, text)
    assert line == f"{name}: pairs.ETH/USDT.params.rsi_period: Input should be greater than or equal to 2 (got -3)"


def test_unknown_tier_lists_the_known_ones(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("tier: VOLATILE", "tier: WILD"))
    assert line.startswith(f"{name}: pairs.SOL/USDT.tier: ")
    assert all(t in line for t in ("'STABLE'", "'VOLATILE'", "'MEME'")) and "WILD" in line


def test_unknown_strategy_lists_the_known_ones(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("strategy: breakout", "strategy: scalper"))
    assert line.startswith(f"{name}: pairs.SOL/USDT.strategy: unknown strategy 'scalper'")
    assert "(known: breakout, mean_reversion, momentum, policy)" in line


def test_duplicate_symbol_is_refused(tmp_path: Path) -> None:
    text = BASE + "\n  BTC/USDT:\n    tier: STABLE\n    strategy: momentum\n    max_position_size_usd: 1\n"
    name, (line,) = _problems(tmp_path, text)
    first = BASE.splitlines().index("  BTC/USDT:") + 1
    assert line.startswith(f"{name}: line ")
    assert f"duplicate key 'BTC/USDT' (first at line {first})" in line


def test_duplicate_field_inside_a_pair(tmp_path: Path) -> None:
    text = _edit("    max_position_size_usd: 2500\n", "    max_position_size_usd: 2500\n    max_position_size_usd: 25000\n")
    name, (line,) = _problems(tmp_path, text)
    assert name in line and "duplicate key 'max_position_size_usd'" in line


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    text = _edit("  ETH/USDT:\n", "  ETH/USDT: [oops\n")
    name, (line,) = _problems(tmp_path, text)
    lineno = BASE.splitlines().index("  ETH/USDT:") + 1
    assert line.startswith(f"{name}: line ") and "malformed YAML" in line
    assert int(line.split("line ")[1].split(":")[0]) >= lineno


def test_not_a_mapping(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, "- BTC/USDT\n- ETH/USDT\n")
    assert line.startswith(f"{name}: expected a mapping")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_safe_list(path)
    (line,) = err.value.problems
    assert line.startswith(f"{path}: cannot read") and "\n" not in line


def test_ma_fast_must_be_below_ma_slow(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("ma_fast: 20", "ma_fast: 90"))
    assert line == f"{name}: pairs.BTC/USDT.params: ma_fast (90) must be below ma_slow (60)"
    name, (line,) = _problems(tmp_path, _edit("ma_fast: 20", "ma_fast: 60"))
    assert "ma_fast (60) must be below ma_slow (60)" in line


def test_correlation_group_naming_an_unknown_pair(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("[BTC/USDT, ETH/USDT]", "[BTC/USDT, DOGE/USDT]"))
    assert name in line and "portfolio.correlation_groups" in line and "'DOGE/USDT'" in line
    assert "not under 'pairs:'" in line


def test_spot_pair_with_leverage(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("leverage: 1\n    max_position_size_usd: 2000", "leverage: 5\n    max_position_size_usd: 2000"))
    assert line.startswith(f"{name}: pairs.SOL/USDT: leverage must be 1 for a spot pair")


def test_bad_symbol_and_every_pair_disabled(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("  SOL/USDT:\n", "  sol-usdt:\n"))
    assert line.startswith(f"{name}: pairs: ") and "'sol-usdt'" in line
    text = BASE.replace("    enabled: true", "    enabled: false")
    name, (line,) = _problems(tmp_path, text)
    assert name in line and "every pair is disabled" in line


def test_bad_timeframe(tmp_path: Path) -> None:
    name, (line,) = _problems(tmp_path, _edit("timeframe: 1m", "timeframe: 1d"))
    assert line.startswith(f"{name}: engine.timeframe: ") and "'1d'" in line


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = _edit("tier: VOLATILE", "tier: WILD")
    text = _edit("max_position_size_usd: 3000", "max_position_size_usd: -1", text)
    name, problems = _problems(tmp_path, text)
    assert len(problems) == 2 and all(p.startswith(f"{name}: ") for p in problems)
    assert any("pairs.SOL/USDT.tier" in p for p in problems)
    assert any("pairs.BTC/USDT.max_position_size_usd" in p for p in problems)
