"""Flatten from the book without the engine: the kill switch's last resort.

When the engine does not acknowledge a kill (hung, stopped, crashed), its supervisor stops it
and calls ``flatten_from_store``: a trading core is built on the same book with the same
execution client the engine uses (paper today), given the last known prices, and told to
kill. So the fallback closes positions through the one path every exit takes (journal the
order, send it, book the fill), halts every pair first, and the engine comes back halted and
flat. The caller owns no broker and no copy of the rules.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.core.config import SafeList
from engine.core.events import CoreEvent, FillBooked
from engine.core.markets import default_rules
from engine.core.models import Fill
from engine.core.trader import TradingCore
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store
from engine.node.clock import SystemClock

log = logging.getLogger(__name__)

REASON = "kill-fallback"


class _Fills:
    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def emit(self, event: CoreEvent) -> None:
        if isinstance(event, FillBooked):
            self.fills.append(event.fill)


def flatten_from_store(db_path: Path, cfg: SafeList, marks: dict[str, tuple[float, float]]) -> list[Fill]:
    """Close every open position in the book at (bid, ask) from ``marks``, all pairs HALTED.

    A position with no known price is closed at its entry price (zero PnL) and the event log
    says so: being flat matters more than the last few ticks of PnL when the engine is gone.
    """
    clock = SystemClock()
    sink = _Fills()
    with Store(db_path) as store:
        positions = store.load_positions()
        symbols = set(cfg.active_symbols()) | set(positions)
        rules = {s: default_rules(s) for s in symbols}
        pc = cfg.portfolio
        core = TradingCore(
            cfg, clock=clock, journal=store, sink=sink, rules=rules,
            client=PaperExecutionClient(pc.taker_fee, pc.slippage_bps, rules, clock),
        )
        unpriced = []
        for sym, pos in positions.items():
            bid, ask = marks.get(sym, (0.0, 0.0))
            if not (bid > 0.0 and ask > 0.0):
                bid = ask = pos.entry
                unpriced.append(sym)
            core.set_quote(sym, bid, ask)
        core.execution.poll(core.quote)  # orders of unknown outcome are looked up first
        result = core.kill(REASON)
        note = f" ({', '.join(sorted(unpriced))} closed at entry: no known price)" if unpriced else ""
        store.record_event(
            clock.time_ms(), REASON,
            f"engine did not answer the kill: flattened {len(sink.fills)} position(s) from the book, "
            f"all pairs HALTED{note}" + ("" if result.ok else f"; {result.message}"),
        )
        for f in sink.fills:
            log.warning("%s - %s: closed %g @ %.8g", f.symbol, REASON, f.qty, f.price)
    return sink.fills
