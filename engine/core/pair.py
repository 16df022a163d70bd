"""Per-pair runtime: the pair's config, its strategy instance and its incremental indicators.

Owns ``PairRuntime``, the one path candle → indicators → strategy. ``on_candle_close``
commits one closed candle to every indicator *and* to the strategy's own state (e.g. the
breakout's volume average), and returns the ``Indicators`` snapshot the strategy and the risk
pipeline read: previous MA and RSI values for crossovers, and the highest high / lowest low of
the ``lookback`` candles BEFORE this one (so "close above the 20-candle high" compares against
candles that do not include it). Warm-up is ``on_candle_close`` over history; live trading is
``analyze`` = ``on_candle_close`` + the strategy's decision, so a warmed pair and a pair that
saw the same candles live are in the same state. ``preview`` shows the forming candle's values
without committing anything. All are O(1).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from engine.core.candles import Candle
from engine.core.config import PairConfig
from engine.core.indicators import (
    ATR,
    RSI,
    SMA,
    BollingerBands,
    RollingMax,
    RollingMin,
    bollinger_position,
)
from engine.core.models import Indicators, Signal
from engine.core.strategies import Strategy, create_strategy
from engine.core.strategies.base import INDICATOR_GROUPS

logger = logging.getLogger(__name__)

DAY_S: Final = 86_400
_INF: Final = math.inf
NO_CANDLE: Final = -(1 << 61)  # ``last_ts`` before the first candle: below every candle time, and a native int


class PairRuntime:
    """One pair's strategy and indicators, fed closed candles in order."""

    def __init__(self, symbol: str, cfg: PairConfig, timeframe_s: int = 60, every_indicator: bool = True) -> None:
        """``every_indicator``: compute every indicator (a live engine: the console shows them);
        False, only those the strategy reads (``Strategy.reads``) and ATR (a backtest: the same
        decisions, tests/test_backtest_golden.py)."""
        self.symbol = symbol
        self.cfg = cfg
        p = cfg.params
        self.strategy: Strategy = create_strategy(cfg.strategy, symbol, p)
        reads: frozenset[str] = INDICATOR_GROUPS if every_indicator else frozenset(type(self.strategy).reads)
        unknown = reads - INDICATOR_GROUPS
        if unknown:
            raise ValueError(
                f"strategy {cfg.strategy!r}: reads {', '.join(sorted(unknown))}: not an indicator group "
                f"(the groups: {', '.join(sorted(INDICATOR_GROUPS))})"
            )
        self._rsi, self._averages = "rsi" in reads, "averages" in reads
        self._bands, self._extremes = "bands" in reads, "extremes" in reads
        self._day = every_indicator  # the close a day ago: the console's change
        self.warmup_need = self.strategy.warmup_candles()  # closed candles before it can decide
        # whether the strategy keeps state of its own: the base's ``observe`` does nothing, and a
        # call of a method a Python subclass may override is a lookup by name every candle
        self._observes = type(self.strategy).observe is not Strategy.observe
        self.rsi = RSI(p.rsi_period)
        self.bb = BollingerBands(p.bb_period, p.bb_std)
        self.ma_fast = SMA(p.ma_fast)
        self.ma_slow = SMA(p.ma_slow)
        self.atr = ATR(p.atr_period)
        self.highs = RollingMax(p.lookback)
        self.lows = RollingMin(p.lookback)
        self.ind = Indicators()
        self.candles = 0  # closed candles committed
        self.bad_candles = 0
        self.last_ts = NO_CANDLE  # the newest committed candle's open time (an int, not None: unboxed)
        # closes of the last 24 h (+1) so change_pct compares against the close a day ago
        self._day_closes: deque[float] = deque(maxlen=max(DAY_S // max(timeframe_s, 1), 1) + 1)

    @property
    def reference_close(self) -> float | None:
        """The close 24 h ago, or the oldest close held when there is less history."""
        return self._day_closes[0] if self._day_closes else None

    def on_candle_close(self, candle: Candle) -> Indicators:
        """Commit one closed candle; return the new snapshot (the previous one if the candle is bad)."""
        c = candle
        o, high, low, close = c.open, c.high, c.low, c.close
        # ``0 < x < inf`` is exactly "finite and positive" (NaN fails every comparison); one
        # chained test per price instead of a generator of isfinite calls (hot: every candle)
        if not (0.0 < o < _INF and 0.0 < high < _INF and 0.0 < low < _INF and 0.0 < close < _INF) or high < low:
            self.bad_candles += 1
            logger.warning("%s - candle %s ignored: OHLC %r/%r/%r/%r", self.symbol, c.ts, o, high, low, close)
            return self.ind
        if self.last_ts != NO_CANDLE and c.ts <= self.last_ts:
            self.bad_candles += 1
            logger.warning("%s - candle %s ignored: not after %s", self.symbol, c.ts, self.last_ts)
            return self.ind
        prev = self.ind
        # the extremes of the candles before this one, read before this candle enters the window
        extremes = self._extremes
        highest = self.highs.value if extremes else None
        lowest = self.lows.value if extremes else None
        bands = self.bb.update(close) if self._bands else None
        averages = self._averages
        upper: float | None = None
        middle: float | None = None
        lower: float | None = None
        if bands is not None:  # (a conditional's union of tuples would unpack as an iterator)
            upper, middle, lower = bands
        # positional (in field order): a 12-keyword call costs about 2.5x as much, every candle
        ind = Indicators(
            self.rsi.update(close) if self._rsi else None,  # rsi
            prev.rsi,  # prev_rsi
            upper,  # bb_upper
            middle,  # bb_middle
            lower,  # bb_lower
            self.ma_fast.update(close) if averages else None,  # ma_fast
            self.ma_slow.update(close) if averages else None,  # ma_slow
            prev.ma_fast,  # prev_ma_fast
            prev.ma_slow,  # prev_ma_slow
            self.atr.update(high, low, close),  # atr
            highest,  # highest
            lowest,  # lowest
        )
        if extremes:
            self.highs.update(high)
            self.lows.update(low)
        if self._day:
            self._day_closes.append(close)
        self.candles += 1
        self.last_ts = c.ts
        self.ind = ind
        if self._observes:
            self.strategy.observe(c, ind)
        return ind

    def decide(self, candle: Candle, position_qty: float) -> Signal:
        """Ask the strategy about the candle just committed by ``on_candle_close``; a candle
        that was refused there is never decided on (the strategy did not see it either)."""
        if self.last_ts != candle.ts:
            return self.strategy.hold(candle, f"candle {candle.ts} refused: no decision")
        return self.strategy.analyze(candle, self.ind, position_qty)

    def analyze(self, candle: Candle, position_qty: float) -> tuple[Indicators, Signal]:
        """Commit the candle and ask the strategy: ``on_candle_close`` then ``decide``."""
        ind = self.on_candle_close(candle)
        return ind, self.decide(candle, position_qty)

    def warm_up(self, candles: Iterable[Candle]) -> list[Candle]:
        """Commit history: indicators and the strategy's own state, no decisions. Returns the
        candles committed (a refused one is counted in ``bad_candles`` and left out)."""
        committed = []
        for c in candles:
            self.on_candle_close(c)
            if self.last_ts == c.ts:
                committed.append(c)
        return committed

    def preview(self, price: float, high: float | None = None, low: float | None = None) -> dict[str, Any]:
        """Indicator values if the forming candle closed at ``price`` (wire ``ind`` map).

        ATR needs the forming candle's range: pass ``high`` and ``low`` for a live value,
        otherwise the committed ATR is shown.
        """
        bands = self.bb.preview(price)
        upper, middle, lower = bands if bands is not None else (None, None, None)
        if high is not None and low is not None:
            atr = self.atr.preview(max(high, price), min(low, price), price)
        else:
            atr = self.atr.value
        return {
            "rsi": self.rsi.preview(price),
            "bb_upper": upper,
            "bb_middle": middle,
            "bb_lower": lower,
            "bb_pos": bollinger_position(price, upper, lower) if upper is not None and lower is not None else None,
            "ma_fast": self.ma_fast.preview(price),
            "ma_slow": self.ma_slow.preview(price),
            "atr": atr,
        }
