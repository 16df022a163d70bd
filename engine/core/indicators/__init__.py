"""Incremental technical indicators for the engine's tick path.

This package owns every indicator the engine computes per pair: SMA, EMA, RSI,
Bollinger Bands, ATR, rolling max/min (breakouts) and rolling correlation
(pair filters), plus the ``bollinger_position`` helper.

Contract shared by all indicators:

* ``update(...)`` COMMITS one closed candle and returns the new value, or
  ``None`` while warming up.
* ``preview(...)`` returns what ``update`` would return if the forming candle
  closed at that price, without touching state. ``preview(x)`` followed by
  ``update(x)`` yields bit-identical values because both run the same code.
* ``.value`` is the last committed value (or ``None``), ``.ready`` says whether
  warm-up is over.
* Every call is O(1) on plain Python floats (no numpy/pandas on the hot path).
  Windowed sums are re-derived exactly from the window once every ``period``
  updates, an O(period) step that amortises to O(1). BollingerBands and
  RollingCorrelation also compute a value exactly from the window (O(period))
  in the rare state where their running sums could have lost precision.

Warm-up and seeding match TA-Lib 0.6 (``SMA``, ``EMA``, ``RSI``,
``BBANDS(matype=0)``, ``ATR``) index for index; see tests/test_indicators.py.
Zero tests are exact (``gain + loss == 0``), never against an absolute epsilon
(as TA-Lib before 0.6 did), so a coin priced at 1e-8 behaves like BTC.
"""

from __future__ import annotations

from engine.core.indicators.averages import EMA, SMA
from engine.core.indicators.rsi import RSI
from engine.core.indicators.volatility import ATR, BBValue, BollingerBands, bollinger_position
from engine.core.indicators.windows import RollingCorrelation, RollingMax, RollingMin

__all__ = [
    "ATR",
    "EMA",
    "RSI",
    "SMA",
    "BBValue",
    "BollingerBands",
    "RollingCorrelation",
    "RollingMax",
    "RollingMin",
    "bollinger_position",
]
