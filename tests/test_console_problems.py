"""Feed and engine problems on screen: the feed says why it is not connected (the error it
wraps, first) and since when (``since`` on its ``_status``), the console's problem bar shows
what, since when, why and the ``--demo`` hint when the network is not there, and hides again
when the feed connects; STALE is a warning colour beside a green ACTIVE.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import ccxt
import zmq

from console.app import MultiparApp, make_app
from console.model import ChildStatus
from console.problems import CONNECT_GRACE_S, DEMO_HINT, board_problems, offline_cause
from console.widgets.palette import DEFAULT_PALETTE
from feed.binance_ccxt import _why
from feed.publisher import TickPublisher
from feed.wire import STATUS_CONNECTED, STATUS_RECONNECTING, TOPIC_STATUS, decode_map
from tests.console_fakes import (
    FEED_DNS_ERROR,
    FEED_DOWN_SINCE_NS,
    FROZEN_EPOCH_S,
    FROZEN_NS,
    FakeBackend,
    FrozenClock,
    feed_down_status_map,
    feed_status_map,
    make_safe_list,
    screen_text,
)

# ---------------------------------------------------------------------- the feed


def test_the_feed_says_the_error_a_ccxt_error_wraps_first() -> None:
    try:
        try:
            raise OSError("Cannot connect to host api.binance.com:443 ssl:default [Name or service not known]")
        except OSError as dns:
            raise ccxt.ExchangeNotAvailable("binance GET https://api.binance.com/api/v3/exchangeInfo") from dns
    except ccxt.ExchangeNotAvailable as exc:
        why = _why(exc)
    assert why.startswith("OSError: Cannot connect to host api.binance.com:443"), why
    assert why.endswith("(ExchangeNotAvailable: binance GET https://api.binance.com/api/v3/exchangeInfo)")
    assert _why(ccxt.NetworkError("socket closed")) == "NetworkError: socket closed"  # nothing wrapped
    assert offline_cause(why) == "DNS lookup failed"


async def test_the_feed_status_says_since_when(feed_ipc_dir: Path) -> None:
    """``since`` is when the state began: retries with new errors keep it, a new state moves it."""
    endpoint = f"ipc://{feed_ipc_dir}/pub"
    pub = TickPublisher(endpoint, "binance", symbols=["BTC/USDT"])
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
    sub.connect(endpoint)
    stop = asyncio.Event()
    housekeeping = asyncio.create_task(pub.run(stop))
    seen: list[dict[str, Any]] = []

    async def read_until(state: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(m["state"] == state for m in seen):
            if await asyncio.to_thread(sub.poll, 100):
                seen.append(decode_map(sub.recv_multipart()[1]))
        assert any(m["state"] == state for m in seen), seen

    try:
        await read_until(STATUS_RECONNECTING)  # the welcome status of a new subscriber
        started = pub.state_since_ns
        assert seen[0]["since"] == started
        await asyncio.sleep(0.01)
        pub.set_status(STATUS_RECONNECTING, "NetworkError: refused", reconnects=1)
        pub.set_status(STATUS_RECONNECTING, "NetworkError: timed out", reconnects=2)
        assert pub.state_since_ns == started  # still never connected: since it started
        await asyncio.sleep(0.01)
        pub.set_status(STATUS_CONNECTED, None)
        connected_at = pub.state_since_ns
        assert connected_at > started
        await read_until(STATUS_CONNECTED)
    finally:
        stop.set()
        await asyncio.wait_for(housekeeping, 5)
        pub.close()
        sub.close(linger=0)
    retries = [m for m in seen if m["state"] == STATUS_RECONNECTING and m["last_error"]]
    assert retries and all(m["since"] == started for m in retries), seen
    assert seen[-1]["since"] == connected_at and seen[-1]["since"] <= seen[-1]["ts"]


# ---------------------------------------------------------------------- what is a problem


def _children(**states: str) -> dict[str, ChildStatus]:
    out = {}
    for name in ("feed", "engine"):
        c = ChildStatus(name, state=states.get(name, "running"), last_beat=100.0, updated_at=90.0)
        out[name] = c
    return out


def test_problems_from_the_feed_status_and_the_children() -> None:
    wall, now = FROZEN_EPOCH_S, 100.0
    (p,) = board_problems(feed_down_status_map(), _children(), wall, now)
    assert (p.who, p.what, p.retries, p.offline, p.error) == ("feed", "reconnecting", 6, "DNS lookup failed", False)
    assert p.since == FEED_DOWN_SINCE_NS / 1e9 and p.for_s == 195.0 and p.detail == FEED_DNS_ERROR
    assert board_problems(feed_status_map("connected"), _children(), wall, now) == []
    # starting: no error yet and within the grace: not news; past it, it is
    starting = feed_status_map("reconnecting", 0, None) | {"since": FROZEN_NS - 10**9}
    assert board_problems(starting, _children(), wall, now) == []
    late = starting | {"since": FROZEN_NS - int((CONNECT_GRACE_S + 1) * 1e9)}
    assert [p.what for p in board_problems(late, _children(), wall, now)] == ["reconnecting"]
    stopped = feed_status_map("stopped", 0, "no Binance spot market among BTC/USDT")
    (s,) = board_problems(stopped, _children(), wall, now)
    assert s.error and s.offline == "" and "no Binance spot market" in s.detail
    kids = _children(feed="dead", engine="restarting")
    kids["feed"].message = "exited with code 2"
    kids["engine"].next_restart_s = 4.0
    dead, restarting = board_problems(feed_down_status_map(), kids, wall, now)
    assert (dead.who, dead.what, dead.error, dead.detail) == ("feed", "dead", True, "exited with code 2")
    assert (restarting.who, restarting.what, restarting.for_s) == ("engine", "restarting in 0s", 10.0)
    silent = _children()
    silent["engine"].last_beat = 95.0
    assert [p.what for p in board_problems(feed_status_map(), silent, wall, now)] == ["silent 5s"]


def test_offline_causes() -> None:
    assert offline_cause("[Errno -3] Temporary failure in name resolution") == "DNS lookup failed"
    assert offline_cause("OSError: [Errno 101] Network is unreachable") == "network unreachable"
    assert offline_cause("Connect call failed ('127.0.0.1', 9443)") == "connection refused"
    assert offline_cause("binance 418 I'm a teapot: banned until 12:00") == ""


# ---------------------------------------------------------------------- on screen


def build(backend: FakeBackend) -> MultiparApp:
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    return app


async def painted(pilot: Any, app: MultiparApp) -> None:
    app.repaint_now()
    await pilot.pause()
    await pilot.pause()


async def test_a_feed_that_never_connects_says_why_since_when_and_suggests_demo() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=(160, 48)) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        assert not app.main.problems.display
        grid_before = app.main.grid.outer_size.height
        app.model.apply_feed_status(feed_down_status_map())
        await painted(pilot, app)
        assert app.main.problems.display
        lines = screen_text(app).splitlines()
        head = next(i for i, line in enumerate(lines) if " FEED " in line)
        assert head == 1, "the problem bar sits right under the header"
        assert "reconnecting since 22:10:05 UTC (3m 15s) · 6 retries · DNS lookup failed" in lines[head]
        assert DEMO_HINT in lines[head]
        why = " ".join(line.strip() for line in lines[head + 1 : head + 3])
        assert why.startswith("why ClientConnectorDNSError: Cannot connect to host api.binance.com:443")
        assert "[Name or service not known]" in why
        # the bar's rows come out of the panes' share, never out of the header or the gauges
        assert app.main.portfolio.region.y == 1 + app.main.problems.rows
        assert app.main.grid.outer_size.height < grid_before
        app.model.apply_feed_status(feed_status_map("connected", 6) | {"since": FROZEN_NS})
        await painted(pilot, app)
        assert not app.main.problems.display and " FEED " not in screen_text(app)
        assert app.main.grid.outer_size.height == grid_before


async def test_at_80_columns_the_problem_still_says_why_and_the_hint() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await backend.started.wait()
        app.model.apply_feed_status(feed_down_status_map())
        await painted(pilot, app)
        text = screen_text(app)
        assert "FEED  reconnecting since 22:10:05 UTC (3m 15s) · 6 retries · DNS lookup failed" in text
        assert "why ClientConnectorDNSError: Cannot connect" in text
        assert "no network? try --demo" in text
        assert all(len(line) <= 80 for line in text.splitlines())


async def test_a_dead_engine_says_what_the_supervisor_said() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=(160, 48)) as pilot:
        await backend.started.wait()
        app.model.set_child("engine", state="dead", message="exited with code 1 five times in 60 s")
        await painted(pilot, app)
        text = app.main.problems.text()
        assert "ENGINE  dead for 0s" in text and "why exited with code 1 five times in 60 s" in text
        assert "--demo" not in text


async def test_stale_is_a_warning_colour_never_a_calm_one() -> None:
    """SOL is ACTIVE (green) and STALE: the STALE badge is the theme's warning colour, as the
    compact row's badge; never the muted grey of a calm state."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=(160, 48)) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        pal = app.palette
        assert pal.badge("STALE").bgcolor == pal.warn.color
        assert pal.badge("STALE").bgcolor != pal.muted.color
        assert DEFAULT_PALETTE.badge("STALE").bgcolor == DEFAULT_PALETTE.warn.color
        quote = app.main.panes["SOL/USDT"].quote.render()
        stale_spans = [s for s in quote.spans if quote.plain[s.start : s.end] == " STALE "]
        assert stale_spans and stale_spans[0].style == pal.badge("STALE")
