"""Candle history from Binance into the data directory: the paginated fetcher, ``Downloader``.

Owns ``Downloader``: ccxt's (async) Binance pointed where the feed points it (``rest_url`` or
``$MULTIPAR_BINANCE_REST_URL``; a markets file spares the exchangeInfo call), and per pair and
timeframe:

* what is missing: the candles of the wanted range that the file lacks (before its first,
  between its candles, after its last); only those are asked for, so a second run appends
  only the new candles, and a run after an interruption continues where the first stopped;
* ``fetch_ohlcv`` paginated (1000 candles a call, ``startTime`` and ``endTime`` bounded),
  ccxt's rate limiter on (``enableRateLimit``: each call waits ``exchange.rateLimit`` ms
  times its weight), network errors and 5xx retried with exponential backoff and jitter;
* the file rewritten atomically every ``flush_every`` pages (at most every
  ``flush_min_interval_s``) and when the pair ends, fails or is interrupted: a run stopped at
  any point keeps what it fetched, less at most the pages since the last write when the
  process is killed outright;
* only closed candles (open + timeframe <= the exchange's clock): the forming one never;
* gaps: a range the exchange returns nothing for stays missing and is reported
  (``PairResult.gaps``); nothing is filled in or invented.

Many pairs in one session, what ``multipar-console download`` runs: ``feed.download_run``; the
result, the run's report and the progress line: ``feed.download_report``.

Public market data only: no API key is read, sent or logged; URLs are redacted in messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import numpy as np

from feed.binance import REST_URL_KEYS
from feed.binance_ccxt import _one_line, load_markets_file
from feed.binance_history import MAX_KLINES_PER_CALL
from feed.candlefiles import read_candle_file, write_candle_file
from feed.candles import Candles, DataError, Gap, fmt_ts, missing_ranges, timeframe_to_ms
from feed.datadir import DEFAULT_EXCHANGE, candle_path, exchange_dir
from feed.download_report import PairResult, ProgressBar
from feed.errors import FeedError, SourceConfigError
from feed.private import ENV_REST_URL, redact_url

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 30  # a pair with no file and no range given: the last 30 days, as freqtrade
FLUSH_EVERY_PAGES = 10
# ...and no more often than this: each write rewrites the whole file (about 0.5 s for a year of
# 1m candles), so a long download does not spend its time rewriting.
FLUSH_MIN_INTERVAL_S = 15.0
DAY_MS = 86_400_000
# Where candles open relative to multiples of their length since the epoch (a Thursday):
# Binance's weekly candles open on Mondays.
ALIGN_OFFSET_MS = {"1w": 4 * DAY_MS}


class DownloadConfigError(SourceConfigError):
    """Bad input (pair, timeframe, range, URL, markets file): exit 2, nothing fetched."""


class DownloadError(FeedError):
    """The exchange failed after the retries: exit 1; what was fetched is on disk."""


def parse_rest_url(url: str) -> str:
    """The API host root of ``url`` (``http://h:p``, ``.../api`` and ``.../api/v3`` accepted)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadConfigError(
            f"binance: rest url {redact_url(url)!r} (--rest-url / {ENV_REST_URL}) must start with http:// or https://"
        )
    base = url.rstrip("/")
    for suffix in ("/api/v3", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _valid_row(row: Any) -> bool:
    if not (isinstance(row, list | tuple) and len(row) >= 6) or type(row[0]) is not int:
        return False
    o, h, lo, c, v = row[1:6]
    prices = (o, h, lo, c)
    if not all(type(x) in (int, float) and math.isfinite(x) and x > 0 for x in prices):
        return False
    v = 0.0 if v is None else v
    return type(v) in (int, float) and math.isfinite(v) and v >= 0


class Downloader:
    """Binance spot candles into the data directory; one exchange session for many pairs."""

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        rest_url: str | None = None,
        markets_file: str | os.PathLike[str] | None = None,
        exchange: str = DEFAULT_EXCHANGE,
        limit: int = MAX_KLINES_PER_CALL,
        flush_every: int = FLUSH_EVERY_PAGES,
        flush_min_interval_s: float = FLUSH_MIN_INTERVAL_S,
        retries: int = 5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        progress: ProgressBar | None = None,
    ) -> None:
        if exchange != DEFAULT_EXCHANGE:
            raise DownloadConfigError(f"exchange {exchange!r}: only {DEFAULT_EXCHANGE} is supported")
        if not 1 <= limit <= MAX_KLINES_PER_CALL:
            raise DownloadConfigError(f"limit {limit}: expected 1..{MAX_KLINES_PER_CALL}")
        if retries < 0:
            raise DownloadConfigError(f"--retries {retries}: expected 0 or more")
        self.data_dir = exchange_dir(data_dir, exchange)
        self.limit = int(limit)
        self.flush_every = max(1, int(flush_every))
        self.flush_min_interval_s = max(0.0, float(flush_min_interval_s))
        self.retries = int(retries)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.progress = progress if progress is not None else ProgressBar(enabled=False)
        self.requests = 0
        self._clock_offset_ms = 0
        self._markets_loaded = False
        self.current: PairResult | None = None  # the pair being (or last) downloaded

        rest_url = rest_url or os.environ.get(ENV_REST_URL) or None
        self.exchange = ccxt_async.binance({
            "enableRateLimit": True,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},  # one exchangeInfo call, no futures endpoints
                "fetchCurrencies": False,
            },
        })
        if rest_url:
            base = parse_rest_url(rest_url)
            for key, path in REST_URL_KEYS.items():
                self.exchange.urls["api"][key] = base + path
        if markets_file:
            try:
                markets = load_markets_file(markets_file)
            except SourceConfigError as exc:
                raise DownloadConfigError(str(exc)) from None
            try:
                self._install_markets(markets)
            except Exception as exc:  # ccxt raises KeyError/TypeError on a market missing fields
                raise DownloadConfigError(f"{markets_file}: not usable as Binance markets: {_one_line(exc)}") from None
            self._markets_loaded = True
        logger.info("download: rest %s", redact_url(self.exchange.urls["api"]["public"]))

    def _install_markets(self, markets: Any) -> None:
        ex = self.exchange
        if isinstance(markets, list):  # raw exchangeInfo symbols
            ex.options["crossMarginPairsData"] = []
            ex.options["isolatedMarginPairsData"] = []
            ex.set_markets([m for m in (ex.parse_market(s) for s in markets) if m is not None])
        else:
            ex.set_markets(dict(markets))

    # ------------------------------------------------------------------ session

    async def __aenter__(self) -> Downloader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.exchange.close()

    def _backoff_s(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, attempt - 1))
        return base * random.uniform(0.8, 1.2)

    async def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``await fn()`` with retries on network trouble; DownloadError after the last."""
        attempt = 0
        while True:
            try:
                result = await fn()
                self.requests += 1
                return result
            except ccxt.BadRequest as exc:  # bad symbol, bad interval, bad parameter: our input
                raise DownloadConfigError(f"binance: {what}: {_one_line(exc)}") from None
            except ccxt.OperationFailed as exc:  # network, timeout, 429/418, 5xx, -1001
                attempt += 1
                self.requests += 1
                if attempt > self.retries:
                    tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                    raise DownloadError(f"binance: {what}: {_one_line(exc)} ({tries})") from None
                delay = self._backoff_s(attempt)
                if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):  # 429/418, -1003: slow down
                    delay = max(delay, min(self.backoff_max_s, 10.0))
                self.progress.finish()  # the note gets a line of its own
                logger.warning("binance: %s: %s; retry %d/%d in %.1f s",
                               what, _one_line(exc), attempt, self.retries, delay)
                await asyncio.sleep(delay)
            except ccxt.BaseError as exc:
                raise DownloadError(f"binance: {what}: {_one_line(exc)}") from None

    async def prepare(self, pairs: Sequence[str], timeframe: str) -> None:
        """Load the markets (unless a file gave them), read the exchange's clock, and check the
        pairs and the timeframe: DownloadConfigError names every unusable one."""
        tfs = [tf for tf in self.exchange.timeframes if tf != "1M"]
        if timeframe not in tfs:
            raise DownloadConfigError(
                f"timeframe {timeframe!r}: Binance has no such candles (use one of {', '.join(tfs)})"
            )
        if not pairs:
            raise DownloadConfigError("no pairs: pass --pairs BTC/USDT,ETH/USDT or enable pairs in the safe list")
        if not self._markets_loaded:
            await self._call("loading markets", self.exchange.load_markets)
            self._markets_loaded = True
        markets = self.exchange.markets or {}
        bad = [p for p in pairs if not (markets.get(p) or {}).get("spot")]
        if bad:
            raise DownloadConfigError(
                f"not Binance spot markets: {', '.join(bad)} (check --pairs or the safe list's pairs)"
            )
        local = time.time_ns() // 1_000_000
        with contextlib.suppress(ccxt.BaseError):  # without it, the local clock is trusted
            self._clock_offset_ms = int(await self.exchange.fetch_time()) - local
            self.requests += 1

    def now_ms(self) -> int:
        """The exchange's clock (local clock plus the offset read in ``prepare``)."""
        return time.time_ns() // 1_000_000 + self._clock_offset_ms

    # ------------------------------------------------------------------ one pair

    def plan(
        self, pair: str, timeframe: str, *, start_ms: int | None, end_ms: int | None, days: float | None,
        stored: Candles | None = None,
    ) -> tuple[int, int]:
        """The wanted range ``[start, end)`` aligned to the timeframe, closed candles only."""
        tf = timeframe_to_ms(timeframe)
        off = ALIGN_OFFSET_MS.get(timeframe, 0)

        def down(t: int) -> int:
            return (t - off) // tf * tf + off

        def up(t: int) -> int:
            return -(-(t - off) // tf) * tf + off

        closed_end = down(self.now_ms())  # the forming candle opens here
        end = closed_end if end_ms is None else min(closed_end, up(end_ms))
        if start_ms is not None:
            start = up(start_ms)
        elif days is not None:
            start = down(end - int(days * DAY_MS))
        elif stored is not None and len(stored):
            start = int(stored.ts[-1]) + tf  # extend the file; holes are filled on request only
        else:
            start = down(end - DEFAULT_DAYS * DAY_MS)
        return start, max(start, end)

    async def download(
        self,
        pair: str,
        timeframe: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        days: float | None = None,
    ) -> PairResult:
        """Fetch what ``pair``'s file lacks in the wanted range and store it.

        Range: ``[start_ms, end_ms)`` (open times; ``end_ms`` None = now), or the last ``days``;
        everything the file lacks inside it is asked for (before its first candle, its holes,
        after its last). With neither, the file is extended from its last candle to now, or the
        last 30 days are fetched when there is no file. Raises DownloadError (the exchange failed
        after the retries) and DataError (the file); what was fetched is on disk either way, and
        ``self.current`` holds the result so far.
        """
        path = candle_path(pair, timeframe, data_dir=self.data_dir)
        try:
            stored = read_candle_file(path, pair=pair, timeframe=timeframe) if path.exists() else Candles(pair, timeframe)
        except DataError as exc:
            raise DataError(f"{exc} (move the file away to download it again)") from None
        stored = Candles(pair, timeframe, *stored.columns(), path=path)
        tf = timeframe_to_ms(timeframe)
        start, end = self.plan(pair, timeframe, start_ms=start_ms, end_ms=end_ms, days=days, stored=stored)
        result = PairResult(pair, timeframe, path, start, end, rows_before=len(stored))
        self.current = result
        ranges = missing_ranges(stored.ts, tf, start, end)
        total = sum((b - a) // tf for a, b in ranges)
        self.progress.start(f"{pair} {timeframe}", total)
        pending: list[list[list[Any]]] = []
        done = 0
        reached = start  # the exchange has been asked about everything before this
        last_flush = time.monotonic()
        requests_before = self.requests

        def flush() -> None:
            nonlocal stored, last_flush
            last_flush = time.monotonic()
            rows = [r for page in pending for r in page]
            pending.clear()
            if not rows:
                return
            arr = np.asarray([r[:6] for r in rows], dtype=np.float64)
            new = Candles(pair, timeframe, np.asarray([r[0] for r in rows], dtype=np.int64),
                          *(np.ascontiguousarray(arr[:, i]) for i in range(1, 6)), path=path)
            merged = stored.merged(new)
            write_candle_file(path, merged)
            stored = merged

        try:
            for a, b in ranges:
                cursor = reached = a
                while cursor < b:
                    since = cursor

                    async def page_call(since: int = since, until: int = b - 1) -> Any:
                        return await self.exchange.fetch_ohlcv(
                            pair, timeframe, since=since, limit=self.limit, params={"until": until}
                        )

                    raw = await self._call(f"{pair} {timeframe} candles from {fmt_ts(since)}", page_call)
                    raw = raw if isinstance(raw, list) else []
                    now_closed = self.now_ms()
                    rows = [r for r in raw if _valid_row(r) and since <= r[0] < b and r[0] + tf <= now_closed]
                    opens = [r[0] for r in raw if isinstance(r, list | tuple) and r and type(r[0]) is int]
                    pending.append(rows)
                    ahead = [t for t in opens if t >= since]
                    if not ahead:  # nothing at or after `since` up to `b`: the rest is missing
                        if opens:
                            raise DownloadError(f"binance: {pair} {timeframe}: candles before the asked "
                                                f"start {fmt_ts(since)} came back; the server ignores startTime")
                        cursor = b
                    else:
                        cursor = max(ahead) + tf
                        if len(raw) < self.limit:  # the server has nothing more up to `b`
                            cursor = max(cursor, b)
                    done += (min(cursor, b) - since) // tf
                    reached = min(cursor, b)
                    self.progress.update(done)
                    if len(pending) >= self.flush_every and time.monotonic() - last_flush >= self.flush_min_interval_s:
                        flush()
            reached = end
        except asyncio.CancelledError:
            result.interrupted = True
            raise
        except DownloadError as exc:
            result.error = str(exc)
            raise
        finally:
            self.progress.update(done, force=True)
            self.progress.finish()
            try:
                flush()
            finally:
                self._finish(result, stored, tf, reached)
                result.requests = self.requests - requests_before
        return result

    @staticmethod
    def _finish(result: PairResult, stored: Candles, tf: int, reached: int) -> None:
        """Rows, range and what the exchange lacks: only the part it was asked about before
        ``reached`` (all of the range when the run completed) is reported missing."""
        result.rows = len(stored)
        result.first_ts, result.last_ts = stored.first_ts, stored.last_ts
        inside = stored.between(result.start_ms, result.end_ms)
        result.other_gaps = len(stored.gaps()) - len(inside.gaps())
        if len(inside):
            result.gaps = [g for g in inside.gaps(result.start_ms, result.end_ms) if g.end_ms <= reached]
            if result.start_ms < int(inside.ts[0]) <= reached:
                result.missing_before = Gap(result.start_ms, int(inside.ts[0]), tf)
            if int(inside.ts[-1]) + tf < result.end_ms and reached >= result.end_ms:
                result.missing_after = Gap(int(inside.ts[-1]) + tf, result.end_ms, tf)
        elif result.start_ms < result.end_ms <= reached:
            result.missing_before = Gap(result.start_ms, result.end_ms, tf)

