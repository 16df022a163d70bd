"""Flatten from the book without the engine: the kill switch's last resort.

When the engine does not acknowledge a kill (hung, stopped, crashed), its supervisor stops it
and calls ``flatten_from_store``: a trading core is built on the same book with the same
execution client the engine uses, given the last known prices, and told to
kill. So the fallback closes positions through the one path every exit takes (journal the
order, send it, book the fill), halts every pair first, and the engine comes back halted and
flat. A live daemon passes the engine's environment: the fallback then closes at the exchange
through the same live client, waits for its answers, cancels every open order of ours of the pairs and
asks the exchange what is left; it never books a paper fill in a live book. The caller owns no
broker and no copy of the rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.core.config import SafeList
from engine.core.events import CoreEvent, FillBooked
from engine.core.markets import default_rules
from engine.core.models import Fill
from engine.core.orders import is_ours
from engine.core.trader import TradingCore
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store
from engine.node.clock import SystemClock

log = logging.getLogger(__name__)

REASON = "kill-fallback"
LIVE_WAIT_S = 20.0  # a live fallback waits this long for the exchange to confirm the closes


class _Fills:
    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def emit(self, event: CoreEvent) -> None:
        if isinstance(event, FillBooked):
            self.fills.append(event.fill)


def flatten_from_store(
    db_path: Path, cfg: SafeList, marks: dict[str, tuple[float, float]],
    live_env: Mapping[str, str] | None = None, testnet: bool = False, wait_s: float = LIVE_WAIT_S,
) -> list[Fill]:
    """Close every open position in the book at (bid, ask) from ``marks``, all pairs HALTED.

    A position with no known price is closed at its entry price (zero PnL) and the event log
    says so: being flat matters more than the last few ticks of PnL when the engine is gone.

    ``live_env`` (a live daemon: the key, secret and endpoints the engine had): the positions
    are closed AT THE EXCHANGE through the same live client the engine uses, never booked on
    paper; its answers are awaited (at most ``wait_s``), every open order of the pairs is then
    cancelled and the exchange is asked what is still open. ``LiveUnavailable`` when the
    exchange cannot be reached: the caller says the flatten FAILED, nothing is faked.
    """
    clock = SystemClock()
    sink = _Fills()
    live = None
    with Store(db_path) as store:
        positions = store.load_positions()
        symbols = set(cfg.active_symbols()) | set(positions)
        pc = cfg.portfolio
        if live_env is not None:
            from engine.node.live import start_live

            live, live_rules = start_live(live_env, cfg, sorted(symbols), testnet)
            rules = {s: live_rules.get(s) or default_rules(s) for s in symbols}
            client: Any = live
        else:
            rules = {s: default_rules(s) for s in symbols}
            client = PaperExecutionClient(pc.taker_fee, pc.slippage_bps, rules, clock)
        try:
            core = TradingCore(cfg, clock=clock, journal=store, sink=sink, rules=rules, client=client)
            return _flatten(core, store, positions, marks, clock, sink, live, sorted(symbols), wait_s)
        finally:
            if live is not None:
                live.close()


def _flatten(
    core: TradingCore, store: Store, positions: dict[str, Any], marks: dict[str, tuple[float, float]],
    clock: SystemClock, sink: _Fills, live: Any, symbols: list[str], wait_s: float,
) -> list[Fill]:  # fmt: skip
    unpriced = []
    for sym, pos in positions.items():
        bid, ask = marks.get(sym, (0.0, 0.0))
        if not (bid > 0.0 and ask > 0.0):
            bid = ask = pos.entry
            unpriced.append(sym)
        core.set_quote(sym, bid, ask)
    core.execution.poll(core.quote)  # orders of unknown outcome are looked up first
    result = core.kill(REASON)
    where = "from the book"
    if live is not None:
        where = "at the exchange: " + _await_flat(core, live, symbols, wait_s)
    note = f" ({', '.join(sorted(unpriced))} closed at entry: no known price)" if unpriced else ""
    store.record_event(
        clock.time_ms(), REASON,
        f"engine did not answer the kill: flattened {len(sink.fills)} position(s) {where}, "
        f"all pairs HALTED{note}" + ("" if result.ok else f"; {result.message}"),
    )
    for f in sink.fills:
        log.warning("%s - %s: closed %g @ %.8g", f.symbol, REASON, f.qty, f.price)
    return sink.fills


def _await_flat(core: TradingCore, live: Any, symbols: list[str], wait_s: float) -> str:
    """Deliver the exchange's answers until the book is flat (or ``wait_s``), cancel every open
    order of the pairs, and say what the exchange still has open."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        live.drain()
        open_ = [s for s, p in core.portfolio.positions.items() if p.is_open]
        if not open_ and not core.execution.orders and not core.execution.exits:
            break
        core.execution.poll(core.quote)
        time.sleep(0.05)
    live.drain()
    left = [s for s, p in core.portfolio.positions.items() if p.is_open]
    cancelled = live.cancel_ours(symbols)  # orders placed outside the bot are never touched
    found = live.open_orders(symbols)
    still = [o for o in found if is_ours(o.get("clientOrderId"))]
    n = sum(cancelled.values()) if isinstance(cancelled, dict) else 0
    parts = [f"{n} open order(s) of ours cancelled", f"{len(still)} still open" if still else "none of ours left open"]
    if len(found) > len(still):
        parts.append(f"{len(found) - len(still)} not ours left alone")
    if left:
        parts.append(f"NOT FLAT: {', '.join(sorted(left))}")
    return ", ".join(parts)
