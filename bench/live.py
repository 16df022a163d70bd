"""The live path (issue 13) against the local Binance-protocol exchange: signal → order on the
wire, signal → fill booked, and kill switch → flat at the exchange.

    python -m bench --only live             # 200 orders, 9 kill runs (~35 s)
    python -m bench --only live --quick     # 50 orders, 3 kill runs (~12 s)

Everything is the production code except the venue: ``tests/binance_exchange.py`` run in this
process on its own thread and event loop (``ThreadedExchange``, 127.0.0.1), the real
``BinanceLiveClient`` (its worker thread, ccxt REST and user stream, pointed at the exchange by
URL only as ``engine --live --rest-url/--ws-url`` does, markets loaded from its exchangeInfo,
the production timings), a real ``TradingCore`` on the system clock and a real
``engine.journal.store.Store`` (durable: fsync) in a temp dir. This thread plays the engine's:
it feeds the core ticks, waits on the client's wakeup fd as the engine's poller does, then
``drain()`` and ``on_timer()``.

1. **Signal → order on the wire.** BTC/USDT trades the ``policy`` strategy with a policy in this
   module that says BUY when flat and SELL when long, so every candle close makes a decision
   that goes all the way: strategy → risk pipeline → journal (decision and order, one fsync) →
   ``client.submit`` → worker → ccxt → ``POST /api/v3/order``. Measured from just before the
   ``on_tick`` whose tick closes the candle (the core decides inside it) to the exchange's
   receipt of that order (its request record's ``t``, ``time.monotonic()`` on the exchange's
   thread: the same clock), and to the moment the fill is booked in the book (the ``drain()``
   that applied it has returned). Entries and exits alternate; orders are paced at 8 a second
   (Binance's spot limit is 100 orders per 10 s) and one round trip before the measured ones
   warms the connection. The breakdown in the notes: how long the engine thread is busy in that
   ``on_tick`` (decision, journal, hand-off), and how long the order waits in ccxt's rate
   limiter (``throttle``, timed by wrapping that one method of the client's ccxt instance).

2. **Kill switch → flat at the exchange.** BTC, ETH and SOL spot each open a position through
   the same strategy path (one candle close, three BUYs, all booked), then ``core.command("kill")``
   and this thread pumps ``drain()`` until the exchange (read on its own loop) shows no open
   order and the account's BTC, ETH and SOL balances are back to what they were before the
   entries; also when the book's positions are all flat. The kill comes 0.25 s after the entries
   are booked (a kill right after the very first fills waits behind the client's fetch of the
   fee asset's price). Median over several runs (``rearm`` between runs). The account pays its fees in BNB, so a position holds exactly what was
   bought. The same kill once more on an account that pays fees in the asset it receives
   (Binance's default without BNB): see the figure's note for whether it gets flat.

The figures are for a local exchange in the same process: no network, no Binance matching
engine; they measure our path (and contend for one GIL with the exchange's thread), not
Binance's.
"""

from __future__ import annotations

import logging
import math
import select
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Figure

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}
TF_MS = 60_000
WARM_CANDLES = 60
RANGE = 0.003  # each candle's high/low around the price: keeps ATR (stops, sizing, costs) alive
ORDER_PACE_S = 0.125  # 8 orders a second: under Binance's 100 orders / 10 s
MAX_POSITION_USD = 100.0
WAIT_S = 10.0
SETTLE_S = 0.25
POLICY = "bench.live:policy"

HOLD, BUY, SELL = 0, 1, 2
_action = [HOLD]  # what ``policy`` answers at the next candle close


def policy(state: Any) -> int:
    """The ``policy`` strategy's callable (``params.policy = "bench.live:policy"``)."""
    return _action[0]


def _union_ms(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """How long (ms) at least one request was waiting in ccxt's limiter between ``lo`` and ``hi``."""
    total, end = 0.0, lo
    for s, e in sorted(spans):
        s, e = max(s, end), min(e, hi)
        if e > s:
            total += e - s
            end = e
    return total * 1e3


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


@dataclass
class _Venue:
    """The core, the live client and the exchange account they trade on."""

    symbols: tuple[str, ...]
    fee_in_bnb: bool
    exchange: Any  # ThreadedExchange
    key: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:12]}")
    secret: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)
    client: Any = None
    core: Any = None
    store: Any = None
    tmp: Any = None
    ts: int = 0
    throttled: list[tuple[float, float]] = field(default_factory=list)  # ccxt throttle (start, end)

    def start(self) -> None:
        from engine.core.candles import Candle
        from engine.core.config import SafeList
        from engine.core.trader import TradingCore
        from engine.execution.binance_live import BinanceLiveClient, LiveConfig
        from engine.journal.store import Store
        from engine.node.clock import SystemClock

        server = self.exchange.server
        balances = {"USDT": 100_000.0, "BNB": 10.0, **{s.split("/")[0]: 0.0 for s in self.symbols}}
        server.add_account(self.key, self.secret, balances=balances, fee_in_bnb=self.fee_in_bnb)
        for sym in self.symbols:
            self.exchange.run(server.set_price(sym, PRICES[sym]))
        clock = SystemClock()
        self.client = BinanceLiveClient(
            LiveConfig(
                self.key, self.secret, self.symbols, rest_url=server.rest_url, ws_url=server.ws_url
            ),
            clock,
        )
        rules = self.client.start(30.0)
        rest = self.client.worker.rest
        throttle = rest.throttle

        async def timed_throttle(cost: Any = None) -> Any:
            t0 = time.monotonic()
            try:
                return await throttle(cost)
            finally:
                self.throttled.append((t0, time.monotonic()))

        rest.throttle = timed_throttle
        cfg = SafeList.model_validate({
            "portfolio": {"capital_usd": 10_000, "correlation_groups": [], "max_correlated_positions": 3},
            "engine": {"timeframe": "1m", "history_candles": 0},
            "pairs": {s: {"tier": "STABLE", "strategy": "policy", "max_position_size_usd": MAX_POSITION_USD,
                          "params": {"policy": POLICY, "take_profit_atr": 6.0}} for s in self.symbols},
        })  # fmt: skip
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-live-")
        self.store = Store(Path(self.tmp.name) / "book.sqlite")
        self.core = TradingCore(
            cfg, clock=clock, journal=self.store, client=self.client, rules=rules
        )
        start = (clock.time_ms() // TF_MS) * TF_MS - WARM_CANDLES * TF_MS
        for sym in self.symbols:
            p = PRICES[sym]
            candles = [Candle(start + i * TF_MS, p, p * (1 + RANGE), p * (1 - RANGE), p, 10.0, 5)
                       for i in range(WARM_CANDLES)]  # fmt: skip
            self.core.warm_pair(sym, candles)
        self.ts = start + WARM_CANDLES * TF_MS

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.store is not None:
            self.store.close()
        if self.tmp is not None:
            self.tmp.cleanup()

    # ------------------------------------------------------------------ the engine's side

    def quote(self, sym: str) -> tuple[float, float]:
        m = self.exchange.server.market(sym)
        return float(m.bid), float(m.ask)

    def fill_candle(self) -> None:
        """Two ticks inside the forming candle (its high and low) on every pair."""
        for sym in self.symbols:
            ps = self.core.pairs[sym]
            bid, ask = self.quote(sym)
            for i, k in enumerate((1 + RANGE, 1 - RANGE)):
                self.core.on_tick(
                    ps, self.ts + 1_000 * (i + 1), bid * k, ask * k, (bid + ask) / 2 * k, 0.0
                )

    def close_candle(self, sym: str) -> tuple[float, float]:
        """The tick that closes the candle (the core decides inside this call): (before, after)."""
        ps = self.core.pairs[sym]
        bid, ask = self.quote(sym)
        t0 = time.monotonic()
        self.core.on_tick(ps, self.ts + TF_MS + 1, bid, ask, (bid + ask) / 2, 0.0)
        return t0, time.monotonic()

    def pump(self, until: Any, timeout: float = WAIT_S, wait_s: float = 0.02) -> float | None:
        """The engine loop: wait on the client's wakeup fd, drain, run the timer; when ``until()``."""
        end = time.monotonic() + timeout
        fd = self.client.wakeup_fd
        while True:
            if until():
                return time.monotonic()
            left = end - time.monotonic()
            if left <= 0:
                return None
            select.select([fd], [], [], min(wait_s, left))
            self.client.drain()
            self.core.on_timer()

    def position(self, sym: str) -> float:
        pos = self.core.portfolio.positions.get(sym)
        return pos.qty if pos is not None else 0.0

    def posts(self, cid: str) -> list[Any]:
        return [r for r in list(self.exchange.server.stats.requests)
                if r.method == "POST" and r.path == "/api/v3/order" and r.params.get("newClientOrderId") == cid]  # fmt: skip

    def venue_state(self) -> tuple[int, dict[str, Decimal]]:
        """Open orders and base balances (free + locked) at the exchange, read on its loop."""
        server = self.exchange.server
        bases = [s.split("/")[0] for s in self.symbols]

        async def read() -> tuple[int, dict[str, Decimal]]:
            bal = server.spot.account(self.key).balances
            return len(server.spot.open_orders(self.key)), {
                a: sum(bal.get(a, [Decimal(0)]), Decimal(0)) for a in bases
            }

        return self.exchange.run(read())


# --------------------------------------------------------------------------- 1. signal → wire


def _orders(quick: bool, say: Any) -> dict[str, Any]:
    from tests.binance_exchange import ThreadedExchange

    n = 50 if quick else 200
    sym = "BTC/USDT"
    out: dict[str, Any] = {"wire_ms": [], "booked_ms": [], "engine_ms": [], "throttle_ms": [], "kinds": [],
                           "missed": [], "orders": n}  # fmt: skip
    with ThreadedExchange() as ex:
        v = _Venue((sym,), True, ex)
        try:
            v.start()
            for i in range(n + 2):  # the first round trip warms up (connection, BNB fee price)
                step0 = time.monotonic()
                long = v.position(sym) > 0
                _action[0] = SELL if long else BUY
                v.fill_candle()
                before = set(v.core.execution.orders)
                t0, t1 = v.close_candle(sym)
                _action[0] = HOLD
                v.ts += TF_MS

                def sent(before: set[str] = before) -> list[str]:  # the new market order (not a stop)
                    return [c for c, o in v.core.execution.orders.items() if c not in before and o.order_type == "market"]

                if long:  # an exit goes out once the exchange confirmed the resting stop's cancel
                    v.pump(lambda: bool(sent()))
                new = sent()
                if len(new) != 1:
                    ps = v.core.pairs[sym]
                    why = "; ".join(ps.decision.reasons) if ps.decision is not None else ""
                    out["missed"].append(
                        f"#{i}: {len(new)} orders ({why or (ps.signal.reasoning if ps.signal else '?')})"
                    )
                    continue
                cid = new[0]
                booked = v.pump(lambda cid=cid: cid not in v.core.execution.orders)
                posts = v.posts(cid)
                if booked is None or not posts:
                    out["missed"].append(
                        f"#{i}: {cid} not booked within {WAIT_S:.0f} s ({len(posts)} POST)"
                    )
                    continue
                if not long and not v.pump(lambda: v.core.execution.protect.resting(sym)):
                    out["missed"].append(f"#{i}: no protective stop rests after the entry")
                    continue
                if i >= 2:
                    wire = posts[0].t
                    out["wire_ms"].append((wire - t0) * 1e3)
                    out["booked_ms"].append((booked - t0) * 1e3)
                    out["engine_ms"].append((t1 - t0) * 1e3)
                    out["throttle_ms"].append(_union_ms(v.throttled, t1, wire))
                    out["kinds"].append("exit" if long else "entry")
                    out["resent"] = out.get("resent", 0) + (len(posts) > 1)
                time.sleep(max(0.0, ORDER_PACE_S - (time.monotonic() - step0)))
            st = v.client.status()
            out["client"] = {"requests": st.requests, "lookups": st.lookups, "resends": st.resends,
                             "polls": st.polls, "stream_ok": st.stream_ok, "fills": st.fills}  # fmt: skip
        finally:
            _action[0] = HOLD
            v.close()
    return out


# --------------------------------------------------------------------------- 2. kill → flat


def _open_three(v: _Venue) -> bool:
    """One candle close on every pair with the policy saying BUY; True when all three are booked."""
    _action[0] = BUY
    try:
        v.fill_candle()
        for sym in v.symbols:
            v.close_candle(sym)
    finally:
        _action[0] = HOLD
    v.ts += TF_MS
    protect = v.core.execution.protect  # each position's stop rests at the exchange before the kill
    ok = v.pump(lambda: all(v.position(s) > 0 and protect.resting(s) for s in v.symbols)
                and all(o.order_type == "stop" for o in v.core.execution.orders.values()))  # fmt: skip
    return ok is not None


def _kill_run(v: _Venue, stop_when_settled: bool) -> dict[str, Any]:
    before = v.venue_state()[1]
    if not _open_three(v):
        raise RuntimeError(f"entries not all booked: {[(s, v.position(s)) for s in v.symbols]}")
    held = {s: v.position(s) for s in v.symbols}
    # let the entries' follow-up requests (a fee asset's price) pass first: a kill right after
    # the first fills queues behind them in ccxt's limiter (measured: +55 ms)
    v.pump(lambda: False, timeout=SETTLE_S)
    n_req = len(v.exchange.server.stats.requests)
    marks: dict[str, float] = {}

    # flat = nothing a lot step can trade: a remainder below it is dust (Binance took a buy's
    # fee in the asset bought), kept in the book and at the exchange, closed by no order
    steps = {s.split("/")[0]: Decimal(str(v.core.execution.rules[s].amount_step)) for s in v.symbols}
    positions = v.core.portfolio.positions

    def book_flat() -> bool:
        return (all(s not in positions or not positions[s].is_open or v.core.execution.is_dust(positions[s])
                    for s in v.symbols) and not v.core.execution.orders)  # fmt: skip

    def venue_flat(bal: dict[str, Decimal]) -> bool:
        return all(abs(bal[a] - before[a]) < steps[a] for a in bal)

    def check() -> bool:
        now = time.monotonic()
        if "book" not in marks and book_flat():
            marks["book"] = now
        if "venue" not in marks:
            n_open, bal = v.venue_state()
            if n_open == 0 and venue_flat(bal):
                marks["venue"] = time.monotonic()
        if stop_when_settled and not v.core.execution.orders and "settled" not in marks:
            marks["settled"] = now  # the kill's orders are all answered: nothing else will come
        if "settled" in marks and now - marks["settled"] > 0.5:
            return True
        return "book" in marks and "venue" in marks

    t0 = time.monotonic()
    result = v.core.command("kill")
    t1 = time.monotonic()
    v.pump(check, wait_s=0.001)
    kill_posts = [r for r in list(v.exchange.server.stats.requests)[n_req:]
                  if r.method == "POST" and r.path == "/api/v3/order"]  # fmt: skip
    n_open, bal = v.venue_state()
    left = {s: v.position(s) for s in v.symbols if v.position(s) != 0.0}
    exits = {s: (e.reason, e.blocked) for s, e in v.core.execution.exits.items()}
    out = {
        "held": held,
        "command": {"ok": result.ok, "message": result.message, "ms": (t1 - t0) * 1e3},
        "venue_flat_ms": (marks["venue"] - t0) * 1e3 if "venue" in marks else None,
        "book_flat_ms": (marks["book"] - t0) * 1e3 if "book" in marks else None,
        "last_kill_order_received_ms": (max(r.t for r in kill_posts) - t0) * 1e3
        if kill_posts
        else None,
        "kill_orders": len(kill_posts),
        "throttle_ms": _union_ms(v.throttled, t0, max((r.t for r in kill_posts), default=t0)),
        "venue_open_orders": n_open,
        "venue_base_left": {a: str(bal[a] - before[a]) for a in bal if bal[a] != before[a]},
        "book_left": left,
        "exits_pending": exits,
    }
    v.core.command("rearm")
    return out


def _kills(quick: bool, say: Any) -> dict[str, Any]:
    from tests.binance_exchange import ThreadedExchange

    runs = 3 if quick else 9
    out: dict[str, Any] = {"bnb": [], "base": None, "errors": []}
    with ThreadedExchange() as ex:
        v = _Venue(SYMBOLS, True, ex)
        try:
            v.start()
            for i in range(runs):
                try:
                    r = _kill_run(v, stop_when_settled=False)
                    out["bnb"].append(r)
                    say(f"live kill {i + 1}/{runs} (fees in BNB): flat at the exchange {_ms(r['venue_flat_ms'])}, "
                        f"book flat {_ms(r['book_flat_ms'])}; kill() returned in {r['command']['ms']:.1f} ms: "
                        f"ok={r['command']['ok']} {r['command']['message']!r}")  # fmt: skip
                except Exception as exc:
                    out["errors"].append(f"run {i + 1}: {exc}")
                    say(f"live kill {i + 1}/{runs} failed: {exc}")
                time.sleep(0.3)
        finally:
            v.close()
        v = _Venue(SYMBOLS, False, ex)  # fees in the asset received: Binance's default without BNB
        try:
            v.start()
            r = _kill_run(v, stop_when_settled=True)
            out["base"] = r
            say(f"live kill (fees in the base asset): flat at the exchange {_ms(r['venue_flat_ms'])}, book flat "
                f"{_ms(r['book_flat_ms'])}; left at the exchange {r['venue_base_left']}, in the book "
                f"{r['book_left']}, exits {r['exits_pending']}")  # fmt: skip
        except Exception as exc:
            out["errors"].append(f"base-asset fees: {exc}")
            say(f"live kill (fees in the base asset) failed: {exc}")
        finally:
            v.close()
    return out


def _ms(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f} ms"


# --------------------------------------------------------------------------- figures


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    quiet = [logging.getLogger(n) for n in ("engine", "engine.live", "engine.live.ccxt")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # the kill's warnings, once per run: the figures and notes say what happened
        lg.setLevel(logging.ERROR)
    try:
        orders = _orders(quick, say)
        w, b = orders["wire_ms"], orders["booked_ms"]
        if w:
            say(f"live orders: {len(w)} measured, signal → wire p50 {_pct(w, 0.5):.2f} p99 {_pct(w, 0.99):.2f} "
                f"max {max(w):.2f} ms; → booked p50 {_pct(b, 0.5):.2f} p99 {_pct(b, 0.99):.2f} ms; "
                f"{len(orders['missed'])} missed")  # fmt: skip
        kills = _kills(quick, say)
    finally:
        for lg, lvl in zip(quiet, levels, strict=True):
            lg.setLevel(lvl)
    return _figures(orders, kills), {"orders": orders, "kills": kills}


def _figures(orders: dict[str, Any], kills: dict[str, Any]) -> list[Figure]:
    w, b = orders["wire_ms"], orders["booked_ms"]
    missing = "" if w else f"no order measured ({'; '.join(orders['missed'][:3])})"
    where = "local exchange in-process, 127.0.0.1: our path only, no network"
    note = ""
    if w:
        eng, thr = orders["engine_ms"], orders["throttle_ms"]
        entries = [x for x, k in zip(w, orders["kinds"], strict=True) if k == "entry"]
        exits = [x for x, k in zip(w, orders["kinds"], strict=True) if k == "exit"]
        rest = [x - e - t for x, e, t in zip(w, eng, thr, strict=True)]
        note = (
            f"{len(w)} market orders on BTC/USDT from a policy strategy's candle close ({len(entries)} entries "
            f"p50 {statistics.median(entries):.1f} ms, {len(exits)} exits p50 {statistics.median(exits):.1f} ms: an "
            f"exit first cancels the position's stop resting at the exchange and goes out on the cancel's answer), "
            f"{where}. Of the p50: the engine thread's on_tick (strategy, risk, journal with fsync, hand-off) "
            f"{statistics.median(eng):.2f} ms, ccxt's rate limiter (throttle) {statistics.median(thr):.2f} ms, "
            f"the rest (worker, ccxt request building and signing, HTTP to the exchange) "
            f"{statistics.median(rest):.2f} ms. {len(orders['missed'])} not measured; "
            f"{orders.get('resent', 0)} sent more than once"
        )
    figures = [
        Figure("live.order_wire.p50_ms", "signal → order at the exchange, p50 (per-order spread)", "ms", "", None,
               w, note=note, missing=missing),
        Figure("live.order_wire.p99_ms", "signal → order at the exchange, p99", "ms", "", None,
               [_pct(w, 0.99)] if w else [], missing=missing),
        Figure("live.order_wire.max_ms", "signal → order at the exchange, max", "ms", "", None,
               [max(w)] if w else [], missing=missing),
        Figure("live.fill_booked.p50_ms", "signal → fill booked in the book, p50 (per-order spread)", "ms", "", None,
               b, missing=missing),
        Figure("live.fill_booked.p99_ms", "signal → fill booked in the book, p99", "ms", "", None,
               [_pct(b, 0.99)] if b else [], missing=missing),
    ]  # fmt: skip
    runs = kills["bnb"]
    venue = [r["venue_flat_ms"] for r in runs if r["venue_flat_ms"] is not None]
    book = [r["book_flat_ms"] for r in runs if r["book_flat_ms"] is not None]
    knote = ""
    if runs:
        recv = [
            r["last_kill_order_received_ms"]
            for r in runs
            if r["last_kill_order_received_ms"] is not None
        ]
        cmd = [r["command"]["ms"] for r in runs]
        msgs = sorted({f"ok={r['command']['ok']}: {r['command']['message']}" for r in runs})
        knote = (
            f"3 spot positions (BTC, ETH, SOL, ~{MAX_POSITION_USD:.0f} USDT each, fees paid in BNB) opened through the "
            f"strategy, each with its stop resting at the exchange; core.command('kill') (each pair: cancel the "
            f"resting stop, then the market exit on the cancel's answer) then drain() until the exchange shows no "
            f"open order and the base "
            f"balances are back (read on the exchange's loop after each turn); {len(venue)}/{len(runs)} runs got "
            f"there. The command itself returns in {statistics.median(cmd):.1f} ms (p50: halt, 3 exit orders "
            f"journaled and handed over); the last of the 3 exit orders reaches the exchange at "
            f"{statistics.median(recv):.1f} ms (p50), of which {statistics.median(r['throttle_ms'] for r in runs):.1f} ms "
            f"(p50) with an order waiting in ccxt's rate limiter (the three pass it one after the other); the book is flat at "
            f"{statistics.median(book) if book else float('nan'):.1f} ms (p50). The command's answer: "
            f"{' | '.join(msgs)}. {where}"
            + (f"; errors: {kills['errors']}" if kills["errors"] else "")
        )
    figures += [
        Figure("live.kill_flat_ms", "kill switch → flat at the exchange, 3 spot pairs", "ms", "", None, venue,
               note=knote, missing="" if venue else f"never flat ({'; '.join(kills['errors']) or 'see the log'})"),
        Figure("live.kill_book_ms", "kill switch → book flat (3 fills booked)", "ms", "", None, book,
               missing="" if book else "book never flat"),
    ]  # fmt: skip
    base = kills["base"]
    if base is not None:
        flat = base["venue_flat_ms"] is not None and base["book_flat_ms"] is not None
        bnote = (
            f"the same kill on an account that pays fees in the asset received (Binance's default): exit orders "
            f"sent {base['kill_orders']}, open orders at the exchange after {base['venue_open_orders']}, base "
            f"balances left at the exchange {base['venue_base_left'] or 'none'}, positions left in the book "
            f"{base['book_left'] or 'none'}, exits still pending {base['exits_pending'] or 'none'}; the command "
            f"answered ok={base['command']['ok']}: {base['command']['message']}"
        )
        figures.append(
            Figure("live.kill_flat_base_fee_ms", "kill switch → flat, fees in the base asset", "ms", "", None,
                   [base["venue_flat_ms"]] if flat else [], note=bnote,
                   missing="" if flat else "NOT FLAT: a remainder below the lot step stays (see note)")
        )  # fmt: skip
    return figures


def main() -> None:
    import argparse

    from bench import report

    ap = argparse.ArgumentParser(
        description="The live path against the local exchange (see bench/live.py)."
    )
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    figs, _ = run(args.quick, lambda text: print(text, file=sys.stderr, flush=True))
    print(report.table(figs))


if __name__ == "__main__":
    # the policy is imported as bench.live: run that module, not this __main__ copy of it
    from bench import live

    live.main()
