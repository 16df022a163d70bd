"""Fills into round-trip trades, as a trader counts them.

Owns ``TradeBook``. A trade opens with the fill that takes a pair from flat to a position and
closes with the fill that brings it back to flat (or reverses it: the rest opens a new trade).
Fills that add to a position move its average entry; fills that reduce it realise PnL against
that average. A trade's ``pnl`` is its realised PnL net of every fee of its fills (entry and
exit), so the sum over trades, plus the open positions marked at the end, equals the equity's
change: the accounting reconciles with the portfolio's (a test checks it on every run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from engine.backtest.result import Trade
from engine.core.models import Fill, Position, Side

EPS: Final = 1e-12


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class _Open:
    symbol: str
    side: str
    qty: float  # largest size held (the trade's size)
    held: float  # signed quantity held now
    entry: float  # average entry price
    entry_ts: int
    exit_qty: float
    exit_value: float
    realised: float
    fees: float
    last_ts: int
    reasons: list[str]

    def __init__(self, symbol: str, side: str, qty: float, held: float, entry: float, entry_ts: int) -> None:
        self.symbol, self.side, self.qty, self.held, self.entry, self.entry_ts = symbol, side, qty, held, entry, entry_ts
        self.exit_qty = self.exit_value = self.realised = self.fees = 0.0
        self.last_ts = 0
        self.reasons = []


class TradeBook:
    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.open: dict[str, _Open] = {}
        self.stops: dict[str, list[tuple[int, float]]] = {}  # symbol -> (entry ts, stop level)

    def on_fill(self, fill: Fill, position: Position) -> None:
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        t = self.open.get(fill.symbol)
        if t is None:
            t = self._start(fill, signed, position)
            t.fees += fill.fee
            return
        if t.held * signed > 0:  # adds to the position
            new = t.held + signed
            t.entry = (t.entry * abs(t.held) + fill.price * abs(signed)) / abs(new)
            t.held = new
            t.qty = max(t.qty, abs(new))
            t.fees += fill.fee
            return
        closing = min(abs(signed), abs(t.held))
        share = closing / abs(signed) if signed else 1.0
        direction = 1.0 if t.held > 0 else -1.0
        t.realised += direction * (fill.price - t.entry) * closing
        t.fees += fill.fee * share
        t.exit_qty += closing
        t.exit_value += fill.price * closing
        t.last_ts = fill.ts
        t.reasons.append(fill.reason or "signal")
        t.held += direction * -closing
        if abs(t.held) <= EPS:
            self._finish(t)
            rest = signed + direction * closing  # what is left opens the other way
            if abs(rest) > EPS:
                nt = self._start(fill, rest, position)
                nt.fees += fill.fee * (1.0 - share)

    def _start(self, fill: Fill, signed: float, position: Position) -> _Open:
        side = "long" if signed > 0 else "short"
        t = _Open(fill.symbol, side, abs(signed), signed, fill.price, fill.ts)
        self.open[fill.symbol] = t
        if position.stop_loss:
            self.stops.setdefault(fill.symbol, []).append((fill.ts, position.stop_loss))
        return t

    def _finish(self, t: _Open, exit_reason: str | None = None) -> None:
        self.open.pop(t.symbol, None)
        self.trades.append(
            Trade(
                symbol=t.symbol,
                side=t.side,
                qty=t.qty,
                entry_ts=t.entry_ts,
                entry_price=t.entry,
                exit_ts=t.last_ts,
                exit_price=t.exit_value / t.exit_qty if t.exit_qty > 0 else t.entry,
                fees=t.fees,
                pnl=t.realised - t.fees,
                exit_reason=exit_reason or (t.reasons[-1] if t.reasons else "signal"),
            )
        )

    def close_open(self, marks: dict[str, float], ts: int) -> None:
        """Positions still open at the end: marked at the last price (no exit fee: none was
        paid), reported with ``exit_reason`` end."""
        for t in list(self.open.values()):
            mark = marks.get(t.symbol, t.entry)
            direction = 1.0 if t.held > 0 else -1.0
            t.realised += direction * (mark - t.entry) * abs(t.held)
            t.exit_value += mark * abs(t.held)
            t.exit_qty += abs(t.held)
            t.last_ts = ts
            t.held = 0.0
            self._finish(t, "end")
