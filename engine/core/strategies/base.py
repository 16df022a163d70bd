"""Strategy base class and registry: a new strategy is one new file in this package.

A strategy turns a closed candle and the pair's committed indicators into a ``Signal``.
Subclasses register themselves by name with ``@register("name")`` (the compiled built-ins call
``register("name")(Cls)`` after the class: mypyc compiles no decorated class); the safe list's
``strategy:`` field picks one. No engine code changes to add a strategy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from engine.core.models import Indicators, Signal, SignalType

if TYPE_CHECKING:
    from engine.core.candles import Candle
    from engine.core.config import StrategyParams

_REGISTRY: dict[str, type[Strategy]] = {}
# the pair's indicators a strategy may read, by group (ATR is always computed: the risk pipeline
# sizes every entry and places its stop by it)
INDICATOR_GROUPS: Final = frozenset({"rsi", "averages", "bands", "extremes"})


@mypyc_attr(allow_interpreted_subclasses=True)  # a strategy of one's own needs no compiler
class Strategy:
    """One pair's strategy. ``analyze`` runs once per closed candle, never per tick."""

    name: ClassVar[str]
    # The indicator groups ``observe`` and ``analyze`` read (``INDICATOR_GROUPS``; ATR always).
    # A backtest computes only these; a live engine computes every one (the console shows them).
    # Every one unless a strategy says less: a strategy of one's own need not say anything.
    reads: ClassVar[frozenset[str]] = INDICATOR_GROUPS

    def __init__(self, symbol: str, params: StrategyParams) -> None:
        self.symbol = symbol
        self.params = params
        # Set by the trading core: the portfolio part of the ML state for this pair
        # (``total_exposure``, ``daily_pnl`` as fractions of capital, ``correlation``).
        self.portfolio_state: Callable[[str], Mapping[str, Any]] | None = None

    def observe(self, candle: Candle, ind: Indicators) -> None:
        """Fold one closed candle into the strategy's own state; runs on every candle, in
        warm-up and live, before ``analyze``. Most strategies read only ``ind`` and keep none."""

    def warmup_candles(self) -> int:
        """Closed candles before every indicator this strategy reads has a value (the pair's
        "warming up: n/need"); a strategy that reads fewer says so. By default, every indicator
        the pair computes: RSI and ATR need ``period + 1``, the Bollinger Bands ``bb_period``,
        the slow MA and its previous value ``ma_slow + 1``, the window before a candle
        ``lookback + 1``."""
        p = self.params
        return max(p.rsi_period + 1, p.bb_period, p.ma_slow + 1, p.atr_period + 1, p.lookback + 1)

    def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
        """Return BUY / SELL / HOLD for the candle that just closed: every strategy's own.

        ``position_qty`` is the pair's current net position (0 when flat), so a strategy can
        emit an exit (SELL while long, BUY while short). (Not an ``abc`` abstract method: a
        class with an ``ABC`` base compiles to an ordinary Python class, whose every attribute
        is a dict lookup; ``register`` refuses a class that does not define it.)
        """
        raise NotImplementedError(f"{type(self).__name__} does not define analyze")

    def hold(self, candle: Candle, reasoning: str = "") -> Signal:
        """A HOLD for ``candle``. (The built-in strategies call ``hold_signal`` itself, so a
        subclass of one of them that overrides ``hold`` changes only its own calls.)"""
        return hold_signal(self.symbol, candle, reasoning)


def hold_signal(symbol: str, candle: Candle, reasoning: str) -> Signal:
    """``Strategy.hold`` as a function: a compiled strategy calls it directly (a method of a
    class that allows interpreted subclasses is looked up by name at every call)."""
    return Signal(symbol, SignalType.HOLD, 0.0, candle.close, 0.0, 0.0, reasoning, candle.ts)


def one_decimal(v: float) -> str:
    """``f"{v:.1f}"`` (the reasons' RSI), the same text without the format machinery, which
    cost as much as the rest of a candle's decision: below 1e5, ``10 v`` in floats is within
    1.2e-10 of the exact product, so unless its fraction lies within 1e-9 of a half the float
    decides the rounding; near a half (a tie goes to the even digit), zero, negative or large
    values take ``format`` itself (tests/test_strategies.py holds the two equal)."""
    if 0.0 < v < 1e5:
        t = v * 10.0
        n = math.floor(t)
        f = t - n
        if abs(f - 0.5) > 1e-9:
            if f > 0.5:
                n += 1
            if n < len(_TENTHS):  # an RSI's (0 to 100): the text made once, not per candle
                return _TENTHS[n]
            return str(n // 10) + "." + str(n % 10)
    return f"{v:.1f}"


_TENTHS: Final = [str(n // 10) + "." + str(n % 10) for n in range(1001)]  # "0.0" ... "100.0"


def clip01(x: float) -> float:
    """Clamp a confidence component into [0, 1]."""
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def register(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    def deco(cls: type[Strategy]) -> type[Strategy]:
        if cls.analyze is Strategy.analyze:
            raise TypeError(f"strategy {name!r}: {cls.__name__} does not define analyze")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"strategy {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registry() -> dict[str, type[Strategy]]:
    return dict(_REGISTRY)
