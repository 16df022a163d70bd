"""Decisions and fills as the engine makes them, for the decision detail and trades tests.

Decisions come from the real ``RiskEngine`` (all nine checks with the engine's own figures)
turned into wire messages by the node's own builder; keys follow the core's (a strategy's
``symbol|candle ts|BUY``, an exit the core makes ``symbol|reason|ts``). Fills are
``FillMsg``s with the paper client's 0.1 % fee; ``scenario_fills`` is a fixed history of round
trips on the reference board's pairs (a win, a stop, a take-profit, a flatten, the exchange's
protective stop, a partial exit, and the open longs of BTC and ETH).
"""

from __future__ import annotations

from engine.core.models import PairMode, Position, Signal, SignalType
from engine.core.orders import client_order_id
from engine.core.risk import RiskContext, RiskEngine
from engine.node.publisher import decision_msg as wire_decision
from engine.wire.schema import DecisionMsg, FillMsg
from tests.console_fakes import BTC_ENTRY, BTC_QTY, ETH_ENTRY, ETH_QTY, FROZEN_MS, make_safe_list

FEE = 0.001
MIN = 60_000


def entry_decision(
    symbol: str,
    *,
    entry: float,
    stop: float,
    target: float,
    reasoning: str,
    ts: int,
    confidence: float = 0.72,
    atr: float | None = None,
    mode: PairMode = PairMode.ACTIVE,
    stale: bool = False,
) -> DecisionMsg:
    """A BUY through the real risk pipeline (approved unless the context refuses it)."""
    risk = RiskEngine(make_safe_list())
    sig = Signal(symbol, SignalType.BUY, confidence, entry, stop, target, reasoning, ts)
    ctx = RiskContext(
        positions={},
        marks={symbol: entry},
        atr={symbol: atr if atr is not None else entry * 0.004},
        modes={symbol: mode},
        stale={symbol: stale},
        quotes={symbol: (entry * 0.9999, entry * 1.0001)},
        cash=10_000.0,
    )
    msg = wire_decision(risk.evaluate(sig, ctx, f"{symbol}|{ts}|BUY"))
    return msg


def exit_decision(symbol: str, reason: str, qty: float, price: float, ts: int) -> DecisionMsg:
    """An exit the core makes itself (stop, take-profit, flatten, kill…), as ``close_position``."""
    risk = RiskEngine(make_safe_list())
    sig = Signal(symbol, SignalType.SELL, 1.0, price, reasoning=reason, ts=ts)
    pos = Position(symbol, qty=qty, entry=price)
    d = risk.exit_decision(sig, pos, f"{symbol}|{reason}|{ts}", reason)
    return wire_decision(d)


_n = [0]


def fill(
    symbol: str, side: str, qty: float, price: float, ts: int, reason: str, order_id: str = ""
) -> FillMsg:
    _n[0] += 1
    oid = order_id or client_order_id(f"{symbol}|{ts}|{side}")
    return FillMsg(
        fill_id=f"paper-{_n[0]}",
        order_id=oid,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=round(qty * price * FEE, 8),
        ts=ts,
        reason=reason,
        seq=_n[0],
    )


def protective_order_id(symbol: str, opened_ts: int, n: int = 1) -> str:
    """The id the core gives the ``n``-th protective stop of a position (engine/core/protect.py)."""
    return client_order_id(f"{symbol}|protect|{opened_ts}#{n}")


def scenario_fills() -> list[FillMsg]:
    """Six closed round trips and the open longs of BTC and ETH (the reference board's),
    oldest first."""
    t = FROZEN_MS - 90 * MIN
    eth_stop_open = t + 40 * MIN
    protective_id = protective_order_id("ETH/USDT", eth_stop_open, 2)  # its 2nd placement
    return [
        # BTC: a signal exit with a profit
        fill("BTC/USDT", "buy", 0.01, 36_000.0, t, "signal"),
        fill("BTC/USDT", "sell", 0.01, 36_300.0, t + 12 * MIN, "signal"),
        # ETH: stopped out
        fill("ETH/USDT", "buy", 0.2, 2_050.0, t + 5 * MIN, "signal"),
        fill("ETH/USDT", "sell", 0.2, 2_030.0, t + 9 * MIN, "stop"),
        # SOL: take-profit
        fill("SOL/USDT", "buy", 5.0, 56.0, t + 15 * MIN, "signal"),
        fill("SOL/USDT", "sell", 5.0, 57.1, t + 47 * MIN, "take_profit"),
        # BTC: flattened by the operator at a small loss
        fill("BTC/USDT", "buy", 0.01, 36_400.0, t + 30 * MIN, "signal"),
        fill("BTC/USDT", "sell", 0.01, 36_380.0, t + 35 * MIN, "flatten"),
        # ETH: the exchange's protective stop filled (the core books it as "stop")
        fill("ETH/USDT", "buy", 0.2, 2_060.0, eth_stop_open, "signal"),
        fill("ETH/USDT", "sell", 0.2, 2_041.0, t + 55 * MIN, "stop", protective_id),
        # SOL: two partial exits by signal, then flat
        fill("SOL/USDT", "buy", 4.0, 56.5, t + 60 * MIN, "signal"),
        fill("SOL/USDT", "sell", 2.0, 56.9, t + 70 * MIN, "signal"),
        fill("SOL/USDT", "sell", 2.0, 56.2, t + 75 * MIN, "kill"),
        # BTC: the open long the board shows (BTC_QTY @ BTC_ENTRY)
        fill("BTC/USDT", "buy", BTC_QTY, BTC_ENTRY, t + 80 * MIN, "signal"),
        fill("ETH/USDT", "buy", ETH_QTY, ETH_ENTRY, t + 85 * MIN, "signal"),
    ]
