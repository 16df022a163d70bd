"""Flatten from the store without the engine: the kill switch's last resort.

When the engine does not acknowledge a kill (hung, stopped, crashed), the console stops it and
calls ``flatten_from_store``: every stored open position is closed at the last known price
through the same broker, portfolio and store code the engine uses, and every pair is marked
HALTED, so the engine comes back halted and flat.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.broker import BrokerError, PaperBroker
from engine.config import SafeList
from engine.markets import default_rules
from engine.models import (
    CheckResult,
    Decision,
    Fill,
    PairMode,
    Side,
    Signal,
    SignalType,
    client_order_id,
)
from engine.portfolio import Portfolio
from engine.store import Store

log = logging.getLogger(__name__)


def flatten_from_store(
    db_path: Path,
    cfg: SafeList,
    marks: dict[str, tuple[float, float]],
    ts_ms: int,
    reason: str = "kill-fallback",
) -> list[Fill]:
    """Close every open position in the store at (bid, ask) from ``marks`` and halt every pair.

    A position with no known price is closed at its entry price (zero PnL) and the event log
    says so: being flat matters more than the last few ticks of PnL when the engine is gone.
    """
    store = Store(db_path)
    try:
        positions = store.load_positions()
        symbols = sorted(set(cfg.active_symbols()) | set(positions))
        # Halt first and durably: if we die half-way, nothing re-opens on restart.
        store.set_modes({s: PairMode.HALTED for s in symbols}, reason, ts_ms)
        portfolio = Portfolio(cfg.portfolio.capital_usd)
        acct = store.load_account()
        if acct is not None:
            portfolio.cash, portfolio.realised, portfolio.fees = acct["cash"], acct["realised"], acct["fees"]
        portfolio.positions.update(positions)
        rules = {s: default_rules(s) for s in symbols}
        broker = PaperBroker(cfg.portfolio.taker_fee, cfg.portfolio.slippage_bps, rules)
        fills: list[Fill] = []
        for sym, pos in positions.items():
            if pos.qty == 0.0:
                continue
            bid, ask = marks.get(sym, (0.0, 0.0))
            note = ""
            if not (bid > 0.0 and ask > 0.0):
                bid = ask = pos.entry
                note = " (no known price: closed at entry)"
            key = f"{sym}|{reason}|{ts_ms}"
            side = Side.SELL if pos.qty > 0 else Side.BUY
            signal = Signal(
                sym,
                SignalType.SELL if pos.qty > 0 else SignalType.BUY,
                1.0,
                bid if pos.qty > 0 else ask,
                reasoning=reason,
                ts=ts_ms,
            )
            decision = Decision(
                key=key,
                symbol=sym,
                ts=ts_ms,
                action="close_long" if pos.qty > 0 else "close_short",
                signal=signal,
                checks=[CheckResult("kill_fallback", True, f"engine did not answer the kill{note}")],
                approved=True,
                qty=abs(pos.qty),
                price=signal.entry,
            )
            if not store.record_decision(decision):
                continue
            try:
                fill = broker.execute(client_order_id(key), sym, side, abs(pos.qty), bid, ask, ts_ms, reason)
            except BrokerError as exc:  # e.g. dust below the lot step: the rest still gets flat
                log.warning("%s - %s: not closed: %s", sym, reason, exc)
                continue
            new_pos = portfolio.apply_fill(fill)
            account = {"cash": portfolio.cash, "realised": portfolio.realised, "fees": portfolio.fees}
            if store.record_execution(fill, new_pos, account, key):
                fills.append(fill)
                log.warning("%s - %s: closed %g @ %.8g%s", sym, reason, fill.qty, fill.price, note)
        store.record_event(
            ts_ms, reason, f"console flattened {len(fills)} position(s) from the store; all pairs HALTED"
        )
        return fills
    finally:
        store.close()
