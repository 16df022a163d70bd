"""Replay of recorded candles and ticks (feed/replay.py), from small files written by each test."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from feed.errors import SourceConfigError, UnknownSymbolError
from feed.replay import ReplaySource
from feed.wire import STATUS_CONNECTED, STATUS_STALE

NOW = 1_700_000_000.0 + 12.3
FILE_START_MS = 1_600_000_020_000 - 1_600_000_020_000 % 60_000  # a minute boundary in 2020


class CollectingPublisher:
    def __init__(self) -> None:
        self.ticks: list[tuple[Any, ...]] = []
        self.states: list[str] = []

    def publish_tick(self, symbol: str, ts_exchange_ms: int, bid: float, ask: float, last: float,
                     base_volume: float = 0.0, quote_volume: float = 0.0) -> None:
        self.ticks.append((symbol, ts_exchange_ms, bid, ask, last, base_volume, quote_volume))

    def set_status(self, state: str, last_error: str | None = None, reconnects: int | None = None) -> None:
        self.states.append(state)

    def of(self, symbol: str) -> list[tuple[Any, ...]]:
        return [t for t in self.ticks if t[0] == symbol]


def candle_rows(symbol: str, n: int, base: float) -> list[list[Any]]:
    rows = []
    price = base
    for i in range(n):
        o = price
        c = o * (1.01 if i % 3 else 0.985)  # two up candles, one down
        rows.append([FILE_START_MS + i * 60_000, symbol, o, max(o, c) * 1.004, min(o, c) * 0.995, c, 10.0 + i])
        price = c
    return rows


def write_csv(path: Path, header: str, rows: list[list[Any]]) -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n")
    return path


@pytest.fixture
def candles_csv(tmp_path: Path) -> Path:
    rows = candle_rows("BTC/USDT", 30, 100.0) + candle_rows("ETH/USDT", 30, 10.0)
    rows.sort(key=lambda r: r[0])
    return write_csv(tmp_path / "candles.csv", "ts,symbol,open,high,low,close,volume", rows)


async def replay_all(src: ReplaySource, timeout: float = 10.0) -> CollectingPublisher:
    """Run until the source reports the file finished (it then idles until stop)."""
    pub = CollectingPublisher()
    stop = asyncio.Event()
    task = asyncio.create_task(src.run(pub, stop))
    deadline = time.monotonic() + timeout
    while STATUS_STALE not in pub.states and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2.0)
    return pub


class TestCandleFiles:
    """Candles become open, low/high, high/low, close ticks; the first candles are history."""

    async def test_replays_candles_as_ticks_in_order(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT", "ETH/USDT"], speed=0, warmup=10,
                           clock=lambda: NOW)
        assert src.kind == "candles" and src.interval_ms == 60_000
        pub = await replay_all(src)
        assert pub.states == [STATUS_CONNECTED, STATUS_STALE]
        rows = candle_rows("BTC/USDT", 30, 100.0)[10:]  # the first 10 are history
        ticks = pub.of("BTC/USDT")
        assert len(ticks) == 4 * len(rows)
        offset = ticks[0][1] - rows[0][0]
        assert offset % 60_000 == 0  # whole minutes: candles stay aligned
        assert NOW * 1000 <= ticks[0][1] < NOW * 1000 + 60_000  # starts now, not in 2020
        for i, (ts, _, o, h, lo, c, _v) in enumerate(rows):
            four = ticks[4 * i: 4 * i + 4]
            lasts = [t[4] for t in four]
            assert lasts == ([o, lo, h, c] if c >= o else [o, h, lo, c])
            assert [t[1] - offset for t in four] == [ts, ts + 18_000, ts + 36_000, ts + 54_000]
            for t in four:
                assert 0 < t[2] < t[4] < t[3]  # small spread around the price
                assert t[5] > 0 and t[6] > 0
        all_te = [t[1] for t in pub.ticks]
        assert all_te == sorted(all_te)  # symbols merged in time order

    async def test_history_is_the_candles_before_the_replay(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT", "ETH/USDT"], speed=0, warmup=10,
                           clock=lambda: NOW)
        rows = candle_rows("ETH/USDT", 30, 10.0)
        history = await src.history("ETH/USDT", 60, 500)
        assert len(history) == 10
        offset = src.offset_ms
        assert [c[0] for c in history] == [r[0] + offset for r in rows[:10]]
        assert [c[1:] for c in history] == [r[2:] for r in rows[:10]]
        assert await src.history("ETH/USDT", 60, 3) == history[-3:]
        pub = await replay_all(src)
        assert pub.of("ETH/USDT")[0][1] == history[-1][0] + 60_000  # replay picks up right after

    async def test_history_aggregates_to_a_multiple_of_the_interval(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT"], speed=0, warmup=12, clock=lambda: NOW)
        rows = candle_rows("BTC/USDT", 30, 100.0)[:12]
        three = await src.history("BTC/USDT", 180, 100)
        assert all(c[0] % 180_000 == 0 for c in three)
        for c in three:
            members = [r for r in rows if c[0] <= r[0] + src.offset_ms < c[0] + 180_000]
            assert c[1] == members[0][2] and c[4] == members[-1][5]
            assert c[2] == max(r[3] for r in members) and c[3] == min(r[4] for r in members)
            assert c[5] == pytest.approx(sum(r[6] for r in members))
        with pytest.raises(ValueError, match="multiple"):
            await src.history("BTC/USDT", 90, 10)
        with pytest.raises(UnknownSymbolError):
            await src.history("SOL/USDT", 60, 10)

    async def test_speed_paces_the_replay(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT"], speed=6000.0, warmup=15)
        started = time.monotonic()
        pub = await replay_all(src)
        elapsed = time.monotonic() - started
        assert len(pub.ticks) == 4 * 15
        file_span_s = (pub.ticks[-1][1] - pub.ticks[0][1]) / 1000  # 14 min 54 s of candles
        assert elapsed >= file_span_s / 6000 * 0.95  # paced: ~0.15 s, not as fast as possible

    async def test_loop_keeps_time_moving_forward(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT"], speed=0, loop=True, warmup=10)
        pub = CollectingPublisher()
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(pub, stop))
        deadline = time.monotonic() + 10.0
        while len(pub.ticks) < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2.0)
        te = [t[1] for t in pub.ticks]
        assert len(te) >= 200  # more than two passes of 80 ticks
        assert all(b > a for a, b in itertools.pairwise(te))
        assert pub.ticks[80][4] == pub.ticks[0][4]  # the second pass starts over


class RefusingPublisher(CollectingPublisher):
    """A publisher with flow control: refuses every third tick twice, as a full socket would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.refusals = 0
        self.due_sent = 0
        self.finished_before: list[str] = []

    def publish_tick(self, symbol: str, ts_exchange_ms: int, bid: float, ask: float, last: float,
                     base_volume: float = 0.0, quote_volume: float = 0.0) -> bool:
        self.calls += 1
        if len(self.ticks) % 3 == 1 and self.refusals < 2 * (len(self.ticks) // 3 + 1):
            self.refusals += 1
            return False
        super().publish_tick(symbol, ts_exchange_ms, bid, ask, last, base_volume, quote_volume)
        return True

    def send_due(self) -> None:
        self.due_sent += 1

    def mark_finished(self) -> None:
        self.finished_before = list(self.states)


class TestFlowControl:
    """A refused tick (a subscriber at its high-water mark) is sent again, never skipped."""

    async def test_refused_ticks_are_resent_in_order(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT", "ETH/USDT"], speed=0, warmup=10, clock=lambda: NOW)
        expected = (await replay_all(ReplaySource(candles_csv, ["BTC/USDT", "ETH/USDT"], speed=0,
                                                  warmup=10, clock=lambda: NOW))).ticks
        pub = RefusingPublisher()
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(pub, stop))
        deadline = time.monotonic() + 10
        while STATUS_STALE not in pub.states and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2.0)
        assert pub.ticks == expected  # each once, in order, though some took three tries
        assert pub.refusals > 0 and pub.calls == len(expected) + pub.refusals
        assert src.waits > 0 and pub.due_sent >= pub.refusals  # a waiting beat goes first
        assert pub.finished_before == [STATUS_CONNECTED]  # marked, then the stale status

    async def test_stop_while_waiting(self, candles_csv: Path) -> None:
        class Full(CollectingPublisher):
            def publish_tick(self, *args: Any, **kw: Any) -> bool:
                return False

        src = ReplaySource(candles_csv, ["BTC/USDT"], speed=0, warmup=10)
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(Full(), stop))
        await asyncio.sleep(0.1)
        assert not task.done() and src.waits == 1  # held on the first tick
        stop.set()
        await asyncio.wait_for(task, 1.0)


class TestCompactLoading:
    """The file is read and the ticks built in chunks; the chunk sizes change nothing."""

    async def test_chunk_sizes_do_not_change_the_stream(
        self, candles_csv: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import feed.replay

        whole = await replay_all(ReplaySource(candles_csv, ["ETH/USDT", "BTC/USDT"], speed=0,
                                              warmup=10, clock=lambda: NOW))
        monkeypatch.setattr(feed.replay, "CHUNK_ROWS", 7)
        monkeypatch.setattr(feed.replay, "EMIT_CHUNK", 5)
        src = ReplaySource(candles_csv, ["ETH/USDT", "BTC/USDT"], speed=0, warmup=10, clock=lambda: NOW)
        chunked = await replay_all(src)
        assert chunked.ticks == whole.ticks and len(whole.ticks) == 2 * 4 * 20
        assert src.ticks == len(whole.ticks) and src.rows == 60
        assert all(len(c[0]) <= 5 for c in src.chunks())

    def test_columns_are_numpy_not_python_objects(self, candles_csv: Path) -> None:
        src = ReplaySource(candles_csv, ["BTC/USDT", "ETH/USDT"], speed=0, warmup=10)
        assert all(hasattr(c, "dtype") for c in src._cols.values())
        assert src._order is not None and src._order.dtype.itemsize == 4


class TestTickFiles:
    async def test_replays_ticks_with_iso_timestamps(self, tmp_path: Path) -> None:
        rows = [
            ["2024-03-01T00:00:00Z", "SOL/USDT", 150.0, 150.1, 150.05, 1000],
            ["2024-03-01T00:00:00.250Z", "SOL/USDT", 150.1, 150.2, 150.2, 1001],
            ["2024-03-01T00:00:01Z", "SOL/USDT", 149.9, 150.0, 149.9, 1002],
        ]
        path = write_csv(tmp_path / "ticks.csv", "TS,Symbol,Bid,Ask,Last,Volume", rows)
        src = ReplaySource(path, ["SOL/USDT"], speed=0, clock=lambda: NOW)
        assert src.kind == "ticks"
        pub = await replay_all(src)
        assert [t[2:5] for t in pub.ticks] == [(r[2], r[3], r[4]) for r in rows]
        te = [t[1] for t in pub.ticks]
        assert [b - te[0] for b in te] == [0, 250, 1000]
        assert pub.ticks[0][5] == 1000 and pub.ticks[0][6] == pytest.approx(1000 * 150.05)
        assert await src.history("SOL/USDT", 60, 100) == []  # a tick file has no candles before it


class TestBadFiles:
    """A file that cannot be replayed is one clear line; bad rows are skipped and counted."""

    def test_malformed_rows_are_skipped_and_counted(self, tmp_path: Path) -> None:
        rows = candle_rows("BTC/USDT", 10, 100.0)
        rows[3][2] = "nan"  # open missing
        rows[4][3] = rows[4][4] * 0.5  # high below low
        rows[5][5] = -1  # negative close
        path = write_csv(tmp_path / "c.csv", "ts,symbol,open,high,low,close,volume", rows)
        src = ReplaySource(path, ["BTC/USDT"], speed=0, warmup=2)
        assert src.skipped_rows == 3

    @pytest.mark.parametrize(
        ("header", "row", "symbols", "match"),
        [
            ("ts,symbol,open,high,low,close", [1, "BTC/USDT", 1, 1, 1, 1], ["BTC/USDT"], "volume"),
            ("ts,symbol,price", [1, "BTC/USDT", 1], ["BTC/USDT"], "neither candles"),
            ("ts,symbol,bid,ask,last", [1, "BTC/USDT", 1, 2, 1], ["ETH/USDT"], "no rows for ETH/USDT"),
            ("ts,symbol,bid,ask,last", [1, "BTC/USDT", 3, 2, 1], ["BTC/USDT"], "no valid rows"),
            ("ts,symbol,bid,ask,last", ["yesterday", "BTC/USDT", 1, 2, 1], ["BTC/USDT"], "ts"),
        ],
    )
    def test_unusable_file(self, tmp_path: Path, header: str, row: list[Any], symbols: list[str],
                           match: str) -> None:
        path = write_csv(tmp_path / "bad.csv", header, [row])
        with pytest.raises(SourceConfigError, match=match) as info:
            ReplaySource(path, symbols)
        assert "\n" not in str(info.value) and str(path) in str(info.value)

    def test_missing_file_and_bad_speed(self, tmp_path: Path) -> None:
        with pytest.raises(SourceConfigError, match="does not exist"):
            ReplaySource(tmp_path / "nope.csv", ["BTC/USDT"])
        with pytest.raises(SourceConfigError, match="speed"):
            ReplaySource(tmp_path / "nope.csv", ["BTC/USDT"], speed=-1)
