"""Closed-candle history of Binance spot pairs over REST, for the feed's ``binance`` source.

Owns ``BinanceHistory``, the part of ``feed.binance.BinanceSource`` that answers the engine's
warm-up: ``timeframe`` (a candle length in seconds as Binance names it) and ``history``
(``fetch_ohlcv``, paginated within Binance's 1,000 klines a call, the still-forming candle
dropped by the exchange's clock, malformed rows counted and dropped). It uses the source's ccxt
exchange, its estimate of the exchange clock and its bad-message counter.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import ccxt

from feed.binance_ccxt import _non_negative, _positive
from feed.errors import SourceConfigError, UnknownSymbolError

MAX_KLINES_PER_CALL = 1000  # Binance /api/v3/klines hard limit
MAX_HISTORY_CANDLES = 5000  # bound on one history request (5 REST calls)


class BinanceHistory:
    """Mixed into ``BinanceSource``, which sets these."""

    _exchange: Any
    _clock_offset_ms: int | None
    _bad_tickers: int

    def timeframe(self, timeframe_s: int) -> str:
        """ccxt/Binance timeframe string for a candle length in seconds (60 -> '1m')."""
        for tf in self._exchange.timeframes:
            if tf != "1M" and self._exchange.parse_timeframe(tf) == timeframe_s:
                return str(tf)
        supported = ", ".join(tf for tf in self._exchange.timeframes if tf != "1M")
        raise SourceConfigError(f"binance: no {timeframe_s} s candles; Binance has {supported}")

    async def history(self, symbol: str, timeframe_s: int, limit: int) -> list[list[float]]:
        """Closed candles ``[[ts_ms, o, h, l, c, v], ...]`` oldest first, at most ``limit``."""
        tf = self.timeframe(int(timeframe_s))
        if limit <= 0:
            return []
        limit = min(int(limit), MAX_HISTORY_CANDLES)
        ex = self._exchange
        await ex.load_markets()
        market = (ex.markets or {}).get(symbol)
        if market is None or not market.get("spot"):
            raise UnknownSymbolError(f"binance: {symbol} is not a Binance spot market")
        if self._clock_offset_ms is None:
            with contextlib.suppress(ccxt.BaseError):  # without ticks yet, ask the exchange clock
                local = time.time_ns() // 1_000_000
                self._clock_offset_ms = int(await ex.fetch_time()) - local
        tf_ms = int(timeframe_s) * 1000
        now_ex = time.time_ns() // 1_000_000 + (self._clock_offset_ms or 0)
        need = limit + 1  # Binance ends with the still-forming candle; it is dropped below
        rows: list[list[Any]] = []
        if need <= MAX_KLINES_PER_CALL:
            rows = await ex.fetch_ohlcv(symbol, tf, limit=need)
        else:
            since = (now_ex // tf_ms - need + 1) * tf_ms
            while len(rows) < need:
                page = await ex.fetch_ohlcv(symbol, tf, since=since, limit=MAX_KLINES_PER_CALL)
                if not page:
                    break
                rows.extend(page)
                since = int(page[-1][0]) + tf_ms
                if len(page) < MAX_KLINES_PER_CALL:
                    break
        closed: dict[int, list[float]] = {}
        for row in rows:
            if not (isinstance(row, list) and len(row) >= 6) or type(row[0]) is not int:
                self._bad_tickers += 1
                continue
            o, h, low, c, v = (row[i] for i in range(1, 6))
            if not (all(_positive(x) for x in (o, h, low, c)) and _non_negative(v or 0.0)):
                self._bad_tickers += 1
                continue
            if row[0] + tf_ms <= now_ex:  # closed by the exchange's clock
                closed[row[0]] = [row[0], float(o), float(h), float(low), float(c), float(v or 0.0)]
        return [closed[ts] for ts in sorted(closed)][-limit:]
