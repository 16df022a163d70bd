"""``multipar-console download`` and the data directory, against the local Binance-protocol server.

The real ccxt (async) talks to ``tests/binance_server.py`` on 127.0.0.1: pagination beyond one
call, a second run that fetches only what is new, a run dropped midway (503s, then Ctrl-C) that
keeps its pages and a second run that completes it without a duplicate or a hole, a hole in the
server's data reported and never filled, the forming candle never stored, one-line errors with
exit 2 and 1. Then the files themselves: a freqtrade data directory (Feather and Parquet written
the way freqtrade writes them with pandas) read as it is, and our Parquet read the way freqtrade
reads it. Temporary directories only, no network beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from console.cli import main
from feed import candlefiles, datadir
from feed.candlefiles import COLUMNS, read_candle_file
from feed.candles import Candles, DataError, Gap, missing_ranges
from feed.datadir import list_data, load_candles
from feed.download import Downloader
from feed.download_report import ProgressBar
from feed.download_run import download_pairs

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:  # the server module sits next to this file
    sys.path.insert(0, str(_TESTS_DIR))

import binance_server  # noqa: E402
from binance_server import BinanceServer  # noqa: E402

MARKETS_FILE = _TESTS_DIR / "data" / "binance_markets.json"
MIN = 60_000
DAY = 86_400_000
# A fixed past range: the server's candles are a pure function of (pair, interval, open time).
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    srv = BinanceServer(MARKETS_FILE)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _no_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing reaches the user's XDG directories or a REST URL from the environment."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.delenv("MULTIPAR_BINANCE_REST_URL", raising=False)
    yield


def klines(srv: BinanceServer) -> list[dict[str, str]]:
    return [q for p, q in srv.rest_requests if p == "/api/v3/klines"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def cli(*args: str) -> int:
    """``multipar-console download ARGS`` in a thread: its own event loop, ours serves."""
    return await asyncio.to_thread(main, ["download", *args])


def server_args(srv: BinanceServer, data: Path) -> list[str]:
    return ["--data", str(data), "--rest-url", srv.rest_url, "--markets-file", str(MARKETS_FILE), "--quiet"]


def assert_candles_are_the_servers(srv: BinanceServer, c: Candles, pair: str = "BTC/USDT", tf: int = MIN) -> None:
    m = srv.market(pair)
    for i in np.linspace(0, len(c) - 1, num=min(len(c), 25)).astype(int):
        row = srv.kline(m, tf, int(c.ts[i]))
        assert [c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i]] == [float(x) for x in row[1:6]]


def assert_contiguous(c: Candles, start: int, end: int, tf: int = MIN) -> None:
    assert c.ts.tolist() == list(range(start, end, tf))


# --------------------------------------------------------------------------- pagination


async def test_pagination_beyond_1000_through_the_command(
    server: BinanceServer, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    code = await cli("--pairs", "BTC/USDT,ETH/USDT", "--timeframe", "1m",
                     "--from", "2024-01-01", "--to", "2024-01-03", *server_args(server, data))
    elapsed = time.monotonic() - t0
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""  # --quiet, and no warning
    for pair, name in (("BTC/USDT", "BTC_USDT-1m.parquet"), ("ETH/USDT", "ETH_USDT-1m.parquet")):
        c = read_candle_file(data / "binance" / name)
        assert_contiguous(c, T0, T0 + 2 * DAY)  # 2,880 candles, 3 calls each
        assert_candles_are_the_servers(server, c, pair)
        assert f"{pair} 1m: +2,880 candles, 2,880 stored 2024-01-01 00:00 → 2024-01-02 23:59 UTC [{name}]" in out
    reqs = klines(server)
    assert len(reqs) == 6
    assert all(q["limit"] == "1000" and q["interval"] == "1m" for q in reqs)
    btc = [int(q["startTime"]) for q in reqs if q["symbol"] == "BTCUSDT"]
    assert btc == [T0, T0 + 1000 * MIN, T0 + 2000 * MIN]
    assert {int(q["endTime"]) for q in reqs} == {T0 + 2 * DAY - 1}
    assert "done: 2 pair(s), +5,760 candles" in out
    assert not any(p == "/api/v3/exchangeInfo" for p, _ in server.rest_requests)  # markets file
    assert elapsed < 10


async def test_rate_limit_spaces_the_calls(server: BinanceServer, data: Path) -> None:
    """ccxt's limiter is on: calls are at least rateLimit (50 ms) x their cost (klines: 0.4) apart."""
    async with Downloader(data_dir=data, rest_url=server.rest_url, markets_file=MARKETS_FILE) as dl:
        assert dl.exchange.enableRateLimit and dl.exchange.rateLimit == 50
        assert dl.exchange.api["public"]["get"]["klines"]["cost"] == 0.4
        await dl.prepare(["BTC/USDT"], "1m")
        t0 = time.monotonic()
        await dl.download("BTC/USDT", "1m", start_ms=T0, end_ms=T0 + 4000 * MIN)
        elapsed = time.monotonic() - t0
    assert len(klines(server)) == 4
    assert elapsed >= 3 * 0.4 * 0.05


# --------------------------------------------------------------------------- incremental


async def test_second_run_fetches_only_what_is_new(server: BinanceServer, data: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--pairs", "BTC/USDT", "--timeframe", "1m", *server_args(server, data)]
    assert await cli(*args, "--from", "2024-01-01", "--to", "2024-01-02") == 0
    path = data / "binance" / "BTC_USDT-1m.parquet"
    assert len(read_candle_file(path)) == 1440
    n = len(klines(server))

    # the same range again: nothing missing, no call
    assert await cli(*args, "--from", "2024-01-01", "--to", "2024-01-02") == 0
    assert len(klines(server)) == n
    assert "+0 candles" in capsys.readouterr().out

    # a later end: only the new day is asked for
    assert await cli(*args, "--from", "2024-01-01", "--to", "2024-01-03") == 0
    new = klines(server)[n:]
    assert [int(q["startTime"]) for q in new] == [T0 + DAY, T0 + DAY + 1000 * MIN]
    c = read_candle_file(path)
    assert_contiguous(c, T0, T0 + 2 * DAY)
    assert "+1,440 candles, 2,880 stored" in capsys.readouterr().out

    # an earlier start: only the day before is asked for
    n = len(klines(server))
    assert await cli(*args, "--from", "2023-12-31", "--to", "2024-01-03") == 0
    assert [int(q["startTime"]) for q in klines(server)[n:]] == [T0 - DAY, T0 - DAY + 1000 * MIN]
    assert_contiguous(read_candle_file(path), T0 - DAY, T0 + 2 * DAY)


async def test_no_range_extends_the_file_to_now(server: BinanceServer, data: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--pairs", "BTC/USDT", "--timeframe", "1h", *server_args(server, data)]
    assert await cli(*args, "--days", "3") == 0
    path = data / "binance" / "BTC_USDT-1h.parquet"
    first = read_candle_file(path)
    assert len(first) in (72, 73)
    n = len(klines(server))
    assert await cli(*args) == 0  # no range: from the last stored candle to now
    after = read_candle_file(path)
    assert after.ts.tolist()[: len(first)] == first.ts.tolist()
    new = klines(server)[n:]
    if len(after) > len(first):  # an hour turned between the runs
        assert int(new[0]["startTime"]) == first.last_ts + 3_600_000
    else:
        assert new == []  # nothing missing: no call
    assert after.last_ts + 3_600_000 <= now_ms()
    capsys.readouterr()


# --------------------------------------------------------------------------- interruption


async def test_drop_midway_keeps_the_pages_and_the_next_run_completes(
    server: BinanceServer, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--pairs", "BTC/USDT", "--timeframe", "1m", "--from", "2024-01-01", "--to", "2024-01-03",
            "--retries", "1", *server_args(server, data)]
    server.klines_fail_after = 2  # two pages, then every call answers 503
    assert await cli(*args) == 1
    out, err = capsys.readouterr()
    *notes, last = err.strip().splitlines()
    assert len(notes) == 1 and "retry 1/1 in" in notes[0], err  # told as it happened
    assert last.startswith("multipar-console download: binance: BTC/USDT 1m candles from 2024-01-02 09:20: ")
    assert "Internal error" in last and "(2 attempts); what was fetched is stored, run again to continue" in last
    path = data / "binance" / "BTC_USDT-1m.parquet"
    kept = read_candle_file(path)
    assert_contiguous(kept, T0, T0 + 2000 * MIN)  # the two pages it got
    assert "+2,000 candles" in out and "failed:" in out
    assert "no candles after" not in out and "gap" not in out  # not asked yet: not called missing

    server.klines_fail_after = None
    n = len(klines(server))
    assert await cli(*args) == 0
    assert [int(q["startTime"]) for q in klines(server)[n:]] == [T0 + 2000 * MIN]  # continues there
    done = read_candle_file(path)
    assert_contiguous(done, T0, T0 + 2 * DAY)  # no duplicate, no hole
    assert_candles_are_the_servers(server, done)
    assert "+880 candles, 2,880 stored" in capsys.readouterr().out


async def test_interrupt_during_a_retry_keeps_what_was_fetched(server: BinanceServer, data: Path) -> None:
    """Ctrl-C (the task cancelled) while backing off: the pages fetched are written first."""
    server.klines_fail_after = 3
    task = asyncio.create_task(download_pairs(
        ["BTC/USDT"], "1m", start_ms=T0, end_ms=T0 + 5000 * MIN, data_dir=data,
        rest_url=server.rest_url, markets_file=MARKETS_FILE, retries=5, backoff_initial_s=30.0,
    ))
    deadline = time.monotonic() + 10
    while len(klines(server)) < 4:  # the 4th call got a 503: the downloader is backing off
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    path = data / "binance" / "BTC_USDT-1m.parquet"
    assert_contiguous(read_candle_file(path), T0, T0 + 3000 * MIN)

    server.klines_fail_after = None
    report = await download_pairs(["BTC/USDT"], "1m", start_ms=T0, end_ms=T0 + 5000 * MIN, data_dir=data,
                                  rest_url=server.rest_url, markets_file=MARKETS_FILE)
    assert report.error is None and report.results[0].added == 2000
    assert_contiguous(read_candle_file(path), T0, T0 + 5000 * MIN)


async def test_pages_are_written_every_flush_every_pages(server: BinanceServer, data: Path) -> None:
    """A run killed outright loses at most the pages since the last write."""
    path = data / "binance" / "BTC_USDT-1m.parquet"
    sizes: list[int] = []
    real = candlefiles.write_candle_file

    def spy(p: Path, c: Candles) -> None:
        sizes.append(len(c))
        real(p, c)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("feed.download.write_candle_file", spy)
        report = await download_pairs(["BTC/USDT"], "1m", start_ms=T0, end_ms=T0 + 5500 * MIN, data_dir=data,
                                      rest_url=server.rest_url, markets_file=MARKETS_FILE, flush_every=2,
                                      flush_min_interval_s=0.0)
    assert report.error is None
    assert sizes == [2000, 4000, 5500]
    assert len(read_candle_file(path)) == 5500


# --------------------------------------------------------------------------- gaps


async def test_a_hole_in_the_servers_data_is_reported_not_invented(
    server: BinanceServer, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hole = (T0 + 900 * MIN, T0 + 1150 * MIN)  # straddles the first page's end
    young = (0, T0 + 30 * MIN)  # the pair "lists" 30 minutes into the range
    server.kline_holes = [young, hole]
    args = ["--pairs", "BTC/USDT", "--timeframe", "1m", "--from", "2024-01-01", "--to", "2024-01-03",
            *server_args(server, data)]
    assert await cli(*args) == 0
    out, _ = capsys.readouterr()
    c = read_candle_file(data / "binance" / "BTC_USDT-1m.parquet")
    expected = [t for t in range(T0 + 30 * MIN, T0 + 2 * DAY, MIN) if not hole[0] <= t < hole[1]]
    assert c.ts.tolist() == expected  # nothing filled in
    assert_candles_are_the_servers(server, c)
    assert c.gaps() == [Gap(hole[0], hole[1], MIN)]
    assert "1 gap(s) in the exchange's data, 250 candles missing (left empty, not filled):" in out
    assert "2024-01-01 15:00 → 2024-01-01 19:10 (250 candles)" in out
    assert "no candles before 2024-01-01 00:30" in out
    assert "1 gap(s) in the exchange's data left empty" in out

    # listed as such, and a second run asks once more for what is missing, finds nothing, invents nothing
    info = list_data(data)
    assert [(i.pair, i.timeframe, i.rows, i.gaps) for i in info] == [
        ("BTC/USDT", "1m", len(expected), (Gap(hole[0], hole[1], MIN),))]
    n = len(klines(server))
    assert await cli(*args) == 0
    again = klines(server)[n:]
    assert [(int(q["startTime"]), int(q["endTime"])) for q in again] == [
        (T0, T0 + 30 * MIN - 1), (hole[0], hole[1] - 1)]
    assert read_candle_file(data / "binance" / "BTC_USDT-1m.parquet").ts.tolist() == expected
    assert "+0 candles" in capsys.readouterr().out


async def test_the_forming_candle_is_never_stored(server: BinanceServer, data: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The exchange's clock decides: with the server 5 minutes ahead of ours, its last closed
    candle is stored (ahead of our clock) and its forming one is not."""
    real_now = binance_server._now_ms
    monkeypatch.setattr(binance_server, "_now_ms", lambda: real_now() + 5 * MIN)
    report = await download_pairs(["BTC/USDT"], "1m", days=0.1, data_dir=data,
                                  rest_url=server.rest_url, markets_file=MARKETS_FILE)
    after = real_now() + 5 * MIN
    c = read_candle_file(report.results[0].path)
    forming = after - after % MIN
    assert c.last_ts in (forming - MIN, forming - 2 * MIN)  # a minute may turn during the run
    assert c.last_ts > real_now() - 2 * MIN  # we followed the server's clock, not ours
    assert forming not in c.ts
    assert len(c) in (143, 144) and not c.gaps()

    # a server that ignores endTime returns the forming candle: it is still not stored
    dl = Downloader(data_dir=data / "other", rest_url=server.rest_url, markets_file=MARKETS_FILE)
    async with dl:
        await dl.prepare(["ETH/USDT"], "1m")
        real_fetch = dl.exchange.fetch_ohlcv

        async def no_end(symbol: str, timeframe: str, since: int | None = None, limit: int | None = None,
                         params: dict[str, object] | None = None) -> list[list[float]]:
            return await real_fetch(symbol, timeframe, since=since, limit=limit)

        dl.exchange.fetch_ohlcv = no_end
        dl.plan = lambda *a, **k: (forming - 10 * MIN, forming + MIN)  # type: ignore[method-assign]
        result = await dl.download("ETH/USDT", "1m")
        server_now = dl.now_ms()
    last = read_candle_file(result.path).last_ts
    assert last is not None and last >= forming - MIN
    assert last + MIN <= server_now  # closed by the server's clock when it was stored


# --------------------------------------------------------------------------- errors


async def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, data: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    dead = ["--data", str(data), "--rest-url", "http://127.0.0.1:9", "--markets-file", str(MARKETS_FILE)]
    cases = [
        (["--pairs", "NOPE/USDT,BTC/USDT", "--timeframe", "1m"], "not Binance spot markets: NOPE/USDT"),
        (["--pairs", "BTC/USDT", "--timeframe", "2s"], "--timeframe '2s': Binance has no such candles (use one of 1s, 1m"),
        (["--pairs", "btc-usdt", "--timeframe", "1m"], "--pairs 'BTC-USDT': expected BASE/QUOTE pairs"),
        (["--pairs", "BTC/USDT", "--timeframe", "1m", "--to", "2024-01-01"], "--to needs --from"),
        (["--pairs", "BTC/USDT", "--timeframe", "1m", "--rest-url", "ftp://x"], "must start with http:// or https://"),
        (["--pairs", "BTC/USDT", "--timeframe", "1m", "--markets-file", str(tmp_path / "none.json")],
         "none.json: cannot read markets file"),
    ]
    for extra, expected in cases:
        code = await cli(*dead, *extra)
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert len(err.strip().splitlines()) == 1 and expected in err, (extra, err)
    bad = tmp_path / "safe.yaml"
    bad.write_text("portfolio: {capital_usd: 1000}\nengine: {timeframe: 15s}\npairs:\n"
                   "  BTC/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 100}\n")
    assert await cli(*dead, "--config", str(bad)) == 2
    assert f"{bad}: engine.timeframe '15s': Binance has no such candles" in capsys.readouterr().err
    bad.write_text("portfolio: {}\n")
    assert await cli(*dead, "--config", str(bad)) == 2
    assert f"{bad}: portfolio.capital_usd: required field is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        await cli("--days", "0")
    assert exc.value.code == 2
    assert not data.exists()  # nothing written

    (data / "binance").mkdir(parents=True)
    (data / "binance" / "BTC_USDT-1m.parquet").write_bytes(b"PAR1 not parquet")
    assert await cli(*dead, "--pairs", "BTC/USDT", "--timeframe", "1m") == 2
    err = capsys.readouterr().err
    assert "BTC_USDT-1m.parquet: not a readable parquet candle file" in err
    assert err.strip().endswith("(move the file away to download it again)")


async def test_unreachable_exchange_is_exit_1_and_secrets_stay_hidden(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli("--pairs", "BTC/USDT", "--timeframe", "1m", "--days", "1", "--retries", "0",
                     "--data", str(data), "--rest-url", "http://trader:hunter2@127.0.0.1:9/api/v3?apiKey=k3y")
    out, err = capsys.readouterr()
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "loading markets" in err, err
    assert "hunter2" not in out + err and "k3y" not in out + err


async def test_the_safe_list_gives_pairs_and_timeframe(server: BinanceServer, tmp_path: Path, data: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "safe.yaml"
    cfg.write_text(
        "portfolio: {capital_usd: 1000}\nengine: {timeframe: 1h}\npairs:\n"
        "  SOL/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 100}\n"
        "  ETH/USDT: {enabled: false, tier: STABLE, strategy: momentum, max_position_size_usd: 100}\n"
    )
    assert await cli("--config", str(cfg), "--days", "2", *server_args(server, data)) == 0
    assert [(i.pair, i.timeframe) for i in list_data(data)] == [("SOL/USDT", "1h")]
    assert {q["symbol"] for q in klines(server)} == {"SOLUSDT"}
    capsys.readouterr()


async def test_progress_bar_on_a_terminal_only(server: BinanceServer, data: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream, d in ((tty, data / "a"), (pipe, data / "b")):
        await download_pairs(["BTC/USDT"], "1m", start_ms=T0, end_ms=T0 + 2500 * MIN, data_dir=d,
                             rest_url=server.rest_url, markets_file=MARKETS_FILE,
                             progress=ProgressBar(stream, min_interval_s=0.0))
    shown = tty.getvalue()
    assert "\rBTC/USDT 1m [" in shown and "100% 2,500/2,500 candles" in shown and "40% 1,000/2,500" in shown
    assert shown.endswith("\r") and "\n" not in shown  # one line, cleared at the end
    assert pipe.getvalue() == ""


def test_missing_ranges() -> None:
    ts = np.array([10, 11, 12, 15, 16], dtype=np.int64)
    assert missing_ranges(ts, 1, 8, 20) == [(8, 10), (13, 15), (17, 20)]
    assert missing_ranges(ts, 1, 11, 16) == [(13, 15)]
    assert missing_ranges(ts, 1, 10, 17) == [(13, 15)]
    assert missing_ranges(np.array([], dtype=np.int64), 1, 3, 6) == [(3, 6)]
    assert missing_ranges(ts, 1, 5, 5) == []


# --------------------------------------------------------------------------- freqtrade's files


def freqtrade_frame(start: int, n: int, tf: int, skip: tuple[int, ...] = ()) -> pd.DataFrame:
    """Candles as freqtrade holds them: ``date`` a UTC datetime (ohlcv_to_dataframe)."""
    ts = np.array([start + i * tf for i in range(n) if i not in skip], dtype=np.int64)
    rng = np.random.default_rng(3)
    close = 100 + np.cumsum(rng.normal(0, 1, len(ts)))
    return pd.DataFrame({
        "date": pd.to_datetime(ts, unit="ms", utc=True),
        "open": close + 0.1, "high": close + 1.0, "low": close - 1.0, "close": close,
        "volume": rng.uniform(1, 10, len(ts)),
    })


def freqtrade_store(df: pd.DataFrame, path: Path) -> None:
    """FeatherDataHandler / ParquetDataHandler.ohlcv_store, as freqtrade writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.reset_index(drop=True).loc[:, list(COLUMNS)]
    if path.suffix == ".feather":
        out.to_feather(path, compression_level=9, compression="lz4")
    else:
        out.to_parquet(path)


def freqtrade_load(path: Path) -> pd.DataFrame:
    """FeatherDataHandler / ParquetDataHandler._ohlcv_load, as freqtrade reads them."""
    pairdata = pd.read_feather(path) if path.suffix == ".feather" else pd.read_parquet(path)
    pairdata.columns = list(COLUMNS)  # by position
    pairdata = pairdata.astype(dtype={c: "float" for c in COLUMNS[1:]})
    pairdata["date"] = pd.to_datetime(pairdata["date"], unit="ms", utc=True)
    return pairdata


def test_a_freqtrade_data_directory_is_read_as_it_is(tmp_path: Path) -> None:
    user_data = tmp_path / "user_data" / "data"
    ex = user_data / "binance"
    btc = freqtrade_frame(T0, 500, 5 * MIN, skip=(100, 101, 102, 300))
    eth = freqtrade_frame(T0, 48, 3_600_000)
    fut = freqtrade_frame(T0, 24, 3_600_000)
    freqtrade_store(btc, ex / "BTC_USDT-5m.feather")  # freqtrade's default format
    freqtrade_store(eth, ex / "ETH_USDT-1h.parquet")
    freqtrade_store(fut, ex / "futures" / "BTC_USDT_USDT-1h-futures.feather")
    freqtrade_store(fut, ex / "futures" / "BTC_USDT_USDT-1h-mark.feather")
    (ex / "BTC_USDT-trades.feather").write_bytes(b"not candles")  # trades files are skipped
    (ex / "pairs.json").write_text('["BTC/USDT"]')

    for given in (user_data, ex):  # the data root or the exchange directory, as --datadir
        assert datadir.exchange_dir(given) == ex
        c = load_candles("BTC/USDT", "5m", data_dir=given)
        assert c.path == ex / "BTC_USDT-5m.feather"
        assert c.ts.tolist() == btc["date"].dt.as_unit("ms").astype("int64").tolist()
        assert np.array_equal(c.close, btc["close"].to_numpy())
        assert np.array_equal(c.volume, btc["volume"].to_numpy())
        assert c.gaps() == [Gap(T0 + 100 * 5 * MIN, T0 + 103 * 5 * MIN, 5 * MIN),
                            Gap(T0 + 300 * 5 * MIN, T0 + 301 * 5 * MIN, 5 * MIN)]
    part = load_candles("BTC/USDT", "5m", data_dir=ex, start_ms=T0 + 50 * 5 * MIN, end_ms=T0 + 60 * 5 * MIN)
    assert part.ts.tolist() == [T0 + i * 5 * MIN for i in range(50, 60)]
    frame = part.to_frame()
    assert list(frame.columns[:6]) == list(COLUMNS) and str(frame["date"].dt.tz) == "UTC"
    e = load_candles("ETH/USDT", "1h", data_dir=user_data)
    assert len(e) == 48 and np.array_equal(e.open, eth["open"].to_numpy())
    f = load_candles("BTC/USDT:USDT", "1h", data_dir=user_data, candle_type="futures")
    assert f.path == ex / "futures" / "BTC_USDT_USDT-1h-futures.feather" and len(f) == 24

    listed = {(i.pair, i.timeframe, i.candle_type): i for i in list_data(user_data)}
    assert set(listed) == {("BTC/USDT", "5m", "spot"), ("ETH/USDT", "1h", "spot"),
                           ("BTC/USDT:USDT", "1h", "futures"), ("BTC/USDT:USDT", "1h", "mark")}
    b = listed[("BTC/USDT", "5m", "spot")]
    assert (b.rows, b.first_ts, b.last_ts, b.missing, b.format) == (496, T0, T0 + 499 * 5 * MIN, 4, "feather")

    with pytest.raises(DataError, match=r"no SOL/USDT 1h candles \(run: multipar-console download"):
        load_candles("SOL/USDT", "1h", data_dir=user_data)
    (ex / "XRP_USDT-1h.json").write_text("[]")
    with pytest.raises(DataError, match="freqtrade convert-data"):
        load_candles("XRP/USDT", "1h", data_dir=user_data)
    broken = ex / "ADA_USDT-1h.parquet"
    broken.write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match=r"ADA_USDT-1h\.parquet: not a readable parquet candle file"):
        load_candles("ADA/USDT", "1h", data_dir=user_data)
    assert next(i for i in list_data(user_data) if i.pair == "ADA/USDT").error


def test_freqtrade_names() -> None:
    assert datadir.candle_filename("BTC/USDT", "1m") == "BTC_USDT-1m.parquet"
    assert datadir.candle_filename("BTC/USDT:USDT", "1h", candle_type="futures", fmt="feather") == \
        "futures/BTC_USDT_USDT-1h-futures.feather"
    assert datadir.candle_filename("ETH/BTC", "1M") == "ETH_BTC-1Mo.parquet"  # month != minute
    assert datadir.pair_from_filename("BTC_USDT") == "BTC/USDT"
    assert datadir.pair_from_filename("BTC_USDT_USDT") == "BTC/USDT:USDT"
    assert datadir.pair_from_filename("1000SHIB_USDT") == "1000SHIB/USDT"
    assert datadir.timeframe_to_ms("15m") == 900_000 and datadir.timeframe_to_ms("1w") == 604_800_000


async def test_our_files_read_the_way_freqtrade_reads_them(server: BinanceServer, tmp_path: Path) -> None:
    """Our Parquet has freqtrade's columns in its order; a download into a freqtrade directory
    extends a Feather file as Feather, which freqtrade's loader still reads."""
    ours = tmp_path / "ours"
    await download_pairs(["BTC/USDT"], "1m", start_ms=T0, end_ms=T0 + 1500 * MIN, data_dir=ours,
                         rest_url=server.rest_url, markets_file=MARKETS_FILE)
    path = ours / "binance" / "BTC_USDT-1m.parquet"
    raw = pd.read_parquet(path)
    assert list(raw.columns) == list(COLUMNS)
    assert str(raw["date"].dt.tz) == "UTC" and all(raw[c].dtype == np.float64 for c in COLUMNS[1:])
    ft = freqtrade_load(path)
    assert len(ft) == 1500 and ft["date"].iloc[0] == pd.Timestamp(T0, unit="ms", tz="UTC")
    assert ft["date"].diff().dropna().eq(pd.Timedelta(minutes=1)).all()
    c = read_candle_file(path)
    assert np.array_equal(ft["close"].to_numpy(), c.close)

    # a freqtrade directory with a Feather file: continued in Feather, no Parquet beside it
    ex = tmp_path / "user_data" / "data" / "binance"
    first = pd.DataFrame({"date": pd.to_datetime([T0 + i * MIN for i in range(100)], unit="ms", utc=True),
                          **{k: [float(x) for x in v] for k, v in zip(
                              COLUMNS[1:],
                              zip(*(server.kline(server.market("ETH/USDT"), MIN, T0 + i * MIN)[1:6]
                                    for i in range(100)), strict=True), strict=True)}})
    freqtrade_store(first, ex / "ETH_USDT-1m.feather")
    report = await download_pairs(["ETH/USDT"], "1m", start_ms=T0, end_ms=T0 + 1200 * MIN,
                                  data_dir=ex.parent, rest_url=server.rest_url, markets_file=MARKETS_FILE)
    assert report.results[0].added == 1100 and report.results[0].path == ex / "ETH_USDT-1m.feather"
    assert sorted(p.name for p in ex.iterdir()) == ["ETH_USDT-1m.feather"]  # no temp file left
    ft = freqtrade_load(ex / "ETH_USDT-1m.feather")
    assert len(ft) == 1200 and ft["date"].is_monotonic_increasing
    assert_candles_are_the_servers(server, read_candle_file(ex / "ETH_USDT-1m.feather"), "ETH/USDT")


def test_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "binance" / "BTC_USDT-1m.parquet"
    c = Candles("BTC/USDT", "1m", np.array([T0, T0 + MIN], dtype=np.int64),
                *(np.array([1.0, 2.0]) for _ in range(5)))
    candlefiles.write_candle_file(path, c)
    import pyarrow.parquet as pq

    def boom(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", boom)
    bigger = c.merged(Candles("BTC/USDT", "1m", np.array([T0 + 2 * MIN], dtype=np.int64),
                              *(np.array([3.0]) for _ in range(5))))
    with pytest.raises(DataError, match="cannot write: No space left on device"):
        candlefiles.write_candle_file(path, bigger)
    assert len(read_candle_file(path)) == 2  # the old file, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["BTC_USDT-1m.parquet"]
    with contextlib.suppress(Exception):
        monkeypatch.undo()
