"""A download run: many pairs, one after another in one exchange session.

Owns ``download_pairs``, what ``multipar-console download`` runs: every pair is checked before
any candle is fetched, then each is downloaded in turn (``feed.download``'s ``Downloader``);
the run stops at the first failure after the retries or at Ctrl-C, and the pair it stopped
midway is reported with what it stored.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence

from feed.binance_history import MAX_KLINES_PER_CALL
from feed.download import FLUSH_EVERY_PAGES, FLUSH_MIN_INTERVAL_S, Downloader, DownloadError
from feed.download_report import DownloadReport, PairResult, ProgressBar


async def download_pairs(
    pairs: Sequence[str],
    timeframe: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    days: float | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    rest_url: str | None = None,
    markets_file: str | os.PathLike[str] | None = None,
    progress: ProgressBar | None = None,
    retries: int = 5,
    backoff_initial_s: float = 0.5,
    flush_every: int = FLUSH_EVERY_PAGES,
    flush_min_interval_s: float = FLUSH_MIN_INTERVAL_S,
    limit: int = MAX_KLINES_PER_CALL,
    on_result: Callable[[PairResult], None] | None = None,
) -> DownloadReport:
    """Download ``pairs`` one after another. Bad input raises DownloadConfigError before any
    candle is fetched; a network failure after the retries ends the run with ``report.error``
    set (the pairs done and the part fetched are stored); a cancellation (Ctrl-C) sets
    ``report.interrupted`` after storing what was fetched, then propagates."""
    pairs = list(dict.fromkeys(pairs))
    report = DownloadReport()
    dl = Downloader(data_dir=data_dir, rest_url=rest_url, markets_file=markets_file, progress=progress,
                    retries=retries, backoff_initial_s=backoff_initial_s, flush_every=flush_every,
                    flush_min_interval_s=flush_min_interval_s, limit=limit)
    async with dl:
        try:
            await dl.prepare(pairs, timeframe)
        except DownloadError as exc:
            report.error = str(exc)
            return report
        for pair in pairs:
            dl.current = None
            try:
                result = await dl.download(pair, timeframe, start_ms=start_ms, end_ms=end_ms, days=days)
            except DownloadError as exc:
                report.error = str(exc)
                _stopped(report, dl, on_result)
                return report
            except asyncio.CancelledError:
                report.interrupted = True
                _stopped(report, dl, on_result)
                raise
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    return report


def _stopped(report: DownloadReport, dl: Downloader, on_result: Callable[[PairResult], None] | None) -> None:
    """Record the result of the pair a failure or an interruption stopped midway."""
    if dl.current is not None:
        report.results.append(dl.current)
        if on_result is not None:
            on_result(dl.current)
