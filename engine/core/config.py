"""The safe list: which pairs to trade and how, loaded from YAML and validated by pydantic.

Owns the config models, the loader (with duplicate-key detection PyYAML lacks) and the
seed's helpers ``get_active_symbols()`` and ``get_symbol_config()``. Every problem is reported
as one line naming the file, the pair and the field, and what to do.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.core.config_data import DataConfig
from engine.core.config_file import (
    FileProblem,
    SafeListLoader,
    check_text,
    load_yaml,
    read_text,
    sanity_problems,
)
from engine.core.config_notify import (  # noqa: F401 (re-exported: the safe list's notify section)
    NOTIFY_EVENTS,
    SECRET_SECTIONS,
    NotifyConfig,
)

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}/[A-Z0-9]{2,10}(:[A-Z0-9]{2,10})?$")
TIMEFRAME_RE = re.compile(r"^(\d+)([smh])$")
ENV_SAFE_LIST = "MULTIPAR_SAFE_LIST"


class Tier(StrEnum):
    STABLE = "STABLE"
    VOLATILE = "VOLATILE"
    MEME = "MEME"


# An entry's least stop distance in ATRs when the pair's params do not set min_stop_atr.
TIER_MIN_STOP_ATR = {Tier.STABLE: 1.0, Tier.VOLATILE: 1.5, Tier.MEME: 2.0}


class ConfigError(Exception):
    """The safe list cannot be used; ``problems`` holds one user-facing line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class StrategyParams(_Strict):
    """Strategy parameters; each strategy reads the ones it needs, unknown keys are errors."""

    rsi_period: int = Field(14, ge=2, le=500)
    rsi_overbought: float = Field(70.0, gt=0, lt=100)
    rsi_oversold: float = Field(30.0, gt=0, lt=100)
    bb_period: int = Field(20, ge=2, le=500)
    bb_std: float = Field(2.0, gt=0, le=10)
    ma_fast: int = Field(9, ge=1, le=500)
    ma_slow: int = Field(21, ge=2, le=1000)
    lookback: int = Field(20, ge=2, le=1000)
    atr_period: int = Field(14, ge=2, le=500)
    stop_atr: float = Field(1.5, gt=0, le=20)  # stop distance in ATRs
    take_profit_atr: float = Field(3.0, gt=0, le=50)
    # an entry's stop sits at least this far from the price the order can get (the ask for a
    # long, the bid for a short): the larger of min_stop_atr x ATR and min_stop_spreads x spread
    min_stop_atr: float = Field(1.0, ge=0, le=20)
    min_stop_spreads: float = Field(3.0, ge=0, le=100)
    policy: str | None = None  # "package.module:callable" for the policy strategy

    @model_validator(mode="after")
    def _fast_below_slow(self) -> StrategyParams:
        if self.ma_fast >= self.ma_slow:
            raise ValueError(f"ma_fast ({self.ma_fast}) must be below ma_slow ({self.ma_slow})")
        if self.rsi_oversold >= self.rsi_overbought:
            raise ValueError("rsi_oversold must be below rsi_overbought")
        return self


class PairConfig(_Strict):
    enabled: bool = True
    tier: Tier
    strategy: str
    market: Literal["spot", "futures"] = "spot"
    leverage: int = Field(1, ge=1, le=20)
    max_position_size_usd: float = Field(gt=0)
    params: StrategyParams = StrategyParams()

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from engine.core.strategies import known_strategies  # lazy: strategies import this module

        known = known_strategies()
        if v not in known:
            raise ValueError(f"unknown strategy {v!r} (known: {', '.join(sorted(known))})")
        return v

    @model_validator(mode="after")
    def _tier_stop_floor(self) -> PairConfig:
        """A stop floor the pair's params leave unset comes from its tier (noisier: further)."""
        if "min_stop_atr" not in self.params.model_fields_set:
            floor = TIER_MIN_STOP_ATR[self.tier]
            object.__setattr__(self, "params", self.params.model_copy(update={"min_stop_atr": floor}))
        return self

    @model_validator(mode="after")
    def _spot_unlevered(self) -> PairConfig:
        if self.market == "spot" and self.leverage != 1:
            raise ValueError(
                "leverage must be 1 for a spot pair (set market: futures to use leverage)"
            )
        return self


class PortfolioConfig(_Strict):
    capital_usd: float = Field(gt=0)
    max_total_exposure: float = Field(0.10, gt=0, le=1)
    max_correlated_positions: int = Field(2, ge=1)
    min_confidence: float = Field(0.60, ge=0, le=1)
    risk_per_trade_usd: float = Field(25.0, gt=0)
    atr_multiplier: float = Field(2.0, gt=0)
    correlation_groups: list[list[str]] = Field(default_factory=list)
    correlation_threshold: float = Field(0.80, gt=0, le=1)
    correlation_window: int = Field(60, ge=5, le=10_000)
    stale_after_s: float = Field(10.0, gt=0)
    taker_fee: float = Field(0.001, ge=0, lt=0.05)
    slippage_bps: float = Field(1.0, ge=0, le=500)
    # the cost check: the take-profit's distance from the mid must be at least this many
    # round-trip costs (fees both sides, the spread, slippage both sides) ...
    min_target_cost_multiple: float = Field(2.0, ge=0, le=100)
    # ... and the reward at the target over the loss at the stop, both after costs, at least this
    min_reward_risk: float = Field(1.0, ge=0, le=20)
    # the trading day (daily PnL) starts at this hour, UTC; 0 = midnight UTC
    day_start_hour_utc: int = Field(0, ge=0, le=23, strict=True)

    @property
    def max_exposure_usd(self) -> float:
        return self.capital_usd * self.max_total_exposure


class EngineConfig(_Strict):
    timeframe: str = "1m"
    history_candles: int = Field(500, ge=0, le=5000)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        parse_timeframe(v)
        return v

    @property
    def timeframe_s(self) -> int:
        return parse_timeframe(self.timeframe)


class SafeList(_Strict):
    version: Literal[1] = 1
    portfolio: PortfolioConfig
    engine: EngineConfig = EngineConfig()
    pairs: dict[str, PairConfig]
    notify: NotifyConfig = NotifyConfig()
    data: DataConfig = DataConfig()  # bad data never trades: the plausible price band

    @field_validator("pairs")
    @classmethod
    def _symbols(cls, v: dict[str, PairConfig]) -> dict[str, PairConfig]:
        if not v:
            raise ValueError("no pairs: add at least one under 'pairs:'")
        for sym in v:
            if not SYMBOL_RE.match(sym):
                raise ValueError(f"symbol {sym!r} is not BASE/QUOTE in capitals, e.g. BTC/USDT")
        return v

    @model_validator(mode="after")
    def _groups_name_pairs(self) -> SafeList:
        for group in self.portfolio.correlation_groups:
            for sym in group:
                if sym not in self.pairs:
                    raise ValueError(
                        f"portfolio.correlation_groups names {sym!r}, which is not under 'pairs:'"
                    )
        if not self.active_symbols():
            raise ValueError("every pair is disabled: set enabled: true on at least one")
        return self

    def active_symbols(self) -> list[str]:
        return [s for s, p in self.pairs.items() if p.enabled]

    def pair(self, symbol: str) -> PairConfig:
        try:
            return self.pairs[symbol]
        except KeyError:
            raise KeyError(f"{symbol} is not in the safe list") from None


def parse_timeframe(tf: str) -> int:
    m = TIMEFRAME_RE.match(tf)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"timeframe {tf!r} is not like 5s, 1m, 15m or 1h")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


_UniqueKeyLoader = SafeListLoader  # the loader, under its former name


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see docs/configuration.md)"
    if kind == "missing":
        return "required field is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def default_path() -> Path:
    """--config, else $MULTIPAR_SAFE_LIST, else ./safe_list.yaml, else the one beside the packages."""
    env = os.environ.get(ENV_SAFE_LIST)
    if env:
        return Path(env)
    cwd = Path("safe_list.yaml")
    if cwd.exists():
        return cwd
    return Path(__file__).resolve().parents[2] / "safe_list.yaml"  # the repository root


def load_safe_list(path: str | os.PathLike[str] | None = None) -> SafeList:
    """Load and validate; raise ConfigError with one line per problem."""
    return read_safe_list(path)[1]


def read_safe_list(path: str | os.PathLike[str] | None = None) -> tuple[str, SafeList]:
    """The file's text, read once, and the safe list it validates to (ConfigError otherwise).

    The console hands the engine exactly this text (console/safelist.py), never the file again.
    """
    p = Path(path) if path is not None else default_path()
    name = str(p)
    try:
        text = read_text(p)  # a regular file, capped, UTF-8 (engine/core/config_file.py)
    except FileProblem as exc:
        raise ConfigError([str(exc)]) from None
    return text, parse_safe_list(text, name)


def parse_safe_list(text: str, name: str) -> SafeList:
    """Validate a safe list's text; ``name`` (its file) starts every problem line."""
    try:
        data = load_yaml(check_text(text, name), name)
    except FileProblem as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{name}: expected a mapping with 'portfolio' and 'pairs' at the top level"]
        )
    insane = sanity_problems(data, name)
    if insane:
        raise ConfigError(insane)
    try:
        return SafeList.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = _loc(loc)
            value = err.get("input")
            shown = (
                ""
                if err["type"] in ("missing", "model_type") or isinstance(value, dict)
                else f" (got {value!r})"
            )
            if any(loc[: len(sec)] == sec for sec in SECRET_SECTIONS):
                shown = ""  # a value there may be a secret pasted in the wrong place
            problems.append(f"{name}: {where}: {_describe(err)}{shown}")
        raise ConfigError(problems) from None
    except (TypeError, ValueError, RecursionError) as exc:  # never a traceback for a bad file
        raise ConfigError([f"{name}: cannot be used: {type(exc).__name__}: {str(exc)[:200]} (fix the file)"]) from None


def get_active_symbols(cfg: SafeList | None = None) -> list[str]:
    """The seed's helper: symbols with enabled: true, in file order."""
    return (cfg or load_safe_list()).active_symbols()


def get_symbol_config(symbol: str, cfg: SafeList | None = None) -> PairConfig:
    """The seed's helper: one pair's config."""
    return (cfg or load_safe_list()).pair(symbol)
