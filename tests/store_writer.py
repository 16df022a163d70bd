"""Crash-test writer for engine.journal.store: journals a deterministic stream of orders and fills.

Order ``n`` has client order id ``o-{n}`` and a fill that depends on ``n`` alone
(``make_fill``); positions and the account follow from the fills by ``apply_fill``. For each
``n`` it does what the engine does: journal the decision together with its order (status
new), then book the fill with the order (now filled), the position and the account after it,
then print ``n`` to stdout and flush, so every printed ``n`` is committed. At start it first
"looks up" the orders a crash left open (journaled, never filled) and books their fills, as
the engine asks the venue about an order of unknown outcome. tests/test_store.py SIGKILLs it
at random moments and checks what survived. Run by hand with:
PYTHONPATH=. python tests/store_writer.py DB --start 0
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from engine.core.models import CheckResult, Decision, Fill, Position, Side, Signal, SignalType
from engine.core.orders import Order, OrderFilled, OrderStatus, apply_event
from engine.journal.store import Store

CAPITAL = 100_000.0
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BASE_PRICE = (50_000.0, 3_000.0, 150.0)
UNIT_QTY = (0.001, 0.01, 0.3)  # not dyadic on purpose: exact float round trips are under test
FEE_RATE = 0.001
T0_MS = 1_700_000_000_000
EXIT_REPLAYED_ORDER_EXECUTED = 3
EXIT_NEW_ORDER_REFUSED = 4
EXIT_OPEN_ORDER_UNEXPECTED = 5


def buy_qty(n: int) -> float:
    """Units bought by order n (a buy); order n's pair buys twice, then sells everything."""
    i, phase = n % 3, (n // 3) % 3
    return UNIT_QTY[i] * (1 + phase + (n // 9) % 4)


def make_fill(n: int) -> Fill:
    i, phase = n % 3, (n // 3) % 3
    price = BASE_PRICE[i] * (1 + ((n * 7919) % 101 - 50) / 1000)
    if phase < 2:
        side, qty, reason = Side.BUY, buy_qty(n), "signal"
    else:  # close the two buys of this pair: same float expression as the position's qty
        side, qty, reason = Side.SELL, 0.0 + buy_qty(n - 6) + buy_qty(n - 3), "take_profit"
    return Fill(
        f"f-{n}",
        f"o-{n}",
        SYMBOLS[i],
        side,
        qty,
        price,
        qty * price * FEE_RATE,
        T0_MS + n * 1000,
        reason,
    )


def make_decision(n: int) -> Decision:
    f = make_fill(n)
    buy = f.side is Side.BUY
    signal = Signal(
        f.symbol,
        SignalType.BUY if buy else SignalType.SELL,
        0.75,
        f.price,
        f.price * 0.98,
        f.price * 1.04,
        f"writer n={n}",
        f.ts,
    )
    return Decision(
        f"d-{n}",
        f.symbol,
        f.ts,
        "open_long" if buy else "close",
        signal,
        [CheckResult("confidence", True, "")],
        True,
        f.qty,
        f.price,
    )


def make_order(n: int) -> Order:
    """The order of decision ``d-{n}``, as journaled before it is sent."""
    f = make_fill(n)
    return Order(f.order_id, f.symbol, f.side, f.qty, f.reason, f"d-{n}", f.ts, updated_ts=f.ts)


def filled_order(n: int) -> Order:
    """Order ``n`` after the venue reported its one fill."""
    order = make_order(n)
    apply_event(order, OrderFilled(order.client_order_id, make_fill(n)))
    assert order.status is OrderStatus.FILLED
    return order


def new_account(capital: float = CAPITAL) -> dict[str, float]:
    return {"capital": capital, "cash": capital, "realised": 0.0, "fees": 0.0}


def apply_fill(
    pos: Position, account: dict[str, float], fill: Fill
) -> tuple[Position, dict[str, float]]:
    """Spot long-only accounting for the test stream; returns new values, mutates nothing."""
    acct = dict(account)
    acct["fees"] = acct["fees"] + fill.fee
    notional = fill.qty * fill.price
    if fill.side is Side.BUY:
        qty = pos.qty + fill.qty
        entry = (pos.entry * pos.qty + notional) / qty
        acct["cash"] = acct["cash"] - notional - fill.fee
        new = replace(
            pos,
            qty=qty,
            entry=entry,
            stop_loss=fill.price * 0.98,
            take_profit=fill.price * 1.04,
            fees=pos.fees + fill.fee,
            opened_ts=pos.opened_ts or fill.ts,
        )
        return new, acct
    pnl = (fill.price - pos.entry) * fill.qty
    acct["cash"] = acct["cash"] + notional - fill.fee
    acct["realised"] = acct["realised"] + pnl
    qty = pos.qty - fill.qty
    if qty == 0.0:
        return Position(pos.symbol), acct  # flat: the store deletes the row
    return replace(pos, qty=qty, realised=pos.realised + pnl, fees=pos.fees + fill.fee), acct


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--start", type=int, default=0, help="first n to execute")
    ap.add_argument("--count", type=int, default=0, help="stop after this many (0: until killed)")
    ap.add_argument(
        "--retry-last", action="store_true", help="first re-submit order start-1: must be refused"
    )
    args = ap.parse_args(argv)

    store = Store(args.db)
    store.init_account(CAPITAL, T0_MS)
    account = store.load_account()
    assert account is not None
    positions = store.load_positions()

    def book(n: int) -> bool:
        nonlocal account
        f = make_fill(n)
        pos, acct = apply_fill(positions.get(f.symbol, Position(f.symbol)), account, f)
        if not store.record_fill(f, filled_order(n), pos, acct):
            return False
        positions[f.symbol] = pos
        account = acct
        return True

    # a crash between journaling an order and booking its fill leaves it open: look it up
    for o in store.open_orders():
        n = int(o.client_order_id.removeprefix("o-"))
        if o != make_order(n) or n != args.start - 1 or not book(n):
            print(f"unexpected open order {o}", file=sys.stderr)
            return EXIT_OPEN_ORDER_UNEXPECTED

    if args.retry_last and args.start > 0:
        # a restart replays its last decision: the stored key, order id and fill id must each
        # stop a second execution
        last = args.start - 1
        if (
            store.record_decision(make_decision(last), make_order(last))
            or store.record_order(make_order(last))
            or book(last)
        ):
            print(f"order o-{last} executed twice", file=sys.stderr)
            return EXIT_REPLAYED_ORDER_EXECUTED

    n = args.start
    while args.count == 0 or n < args.start + args.count:
        if not store.record_decision(make_decision(n), make_order(n)) or not book(n):
            print(f"new order o-{n} refused", file=sys.stderr)
            return EXIT_NEW_ORDER_REFUSED
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
