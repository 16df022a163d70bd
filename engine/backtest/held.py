"""The backtest book's facts held in memory between writes: the part of ``BacktestBook`` the
trading core calls on every trade and every candle time, compiled.

Owns ``HeldFacts``, the base of ``BacktestBook`` (engine/backtest/book.py), which adds the
SQLite file (the engine's ``Store``), writes what is held (``_flush``, ``flush_equity``) and
voids a failed run (``_fail``). Every rule is documented there; this module only keeps the
calls the core makes (a decision, an order, its updates, a fill, an equity point) from running
as Python: the book inherits the engine's interpreted ``Store``, so before this each of them
was an interpreted call with its helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mypy_extensions import mypyc_attr

from engine.core.models import Decision, Fill, Position
from engine.core.orders import Order
from engine.journal.rows import decision_row, fill_facts, order_row, order_update
from engine.journal.schema import StoreError

EquityRow = tuple[int, float, float, float, float, float, float]
FLUSH_FACTS = 4_096  # facts held before they are written: memory stays bounded on a long run
FLUSH_EQUITY = 65_536  # equity points held before they are written (a year of 1 m: 8 writes)


@mypyc_attr(allow_interpreted_subclasses=True)  # BacktestBook: this and the engine's Store
class HeldFacts:
    def __init__(self, where: str) -> None:
        self.where = where  # the book's path, for errors
        self.is_open = True  # False once the book is closed
        # the equity curve's points, (ts, equity, cash, exposure, realised, unrealised, fees), held
        # until ``flush_equity`` (every ``FLUSH_EQUITY`` points and at the end); one list for the
        # whole run (the replay reads its last point)
        self.equity_rows: list[EquityRow] = []
        self.equity_not_finite = 0  # of the points held, those with a value that is not finite
        self._failed = ""  # why a fact failed: the run's transaction is gone
        self._decision_keys: set[str] = set()
        self._order_ids: set[str] = set()  # journaled, written or not
        self._fill_ids: set[str] = set()
        self._has_account = False
        self._pending_clear()

    def _pending_clear(self) -> None:
        self._decisions: list[tuple[Any, ...]] = []
        self._new_orders: dict[str, list[Any]] = {}  # not yet written: the row, updated in place
        self._order_updates: dict[str, tuple[Any, ...]] = {}  # written orders' latest update
        self._fills: list[tuple[Any, ...]] = []
        self._positions: dict[str, tuple[Any, ...] | None] = {}  # None: flat, the row goes
        self._account: tuple[Any, ...] | None = None
        self._n_pending = 0

    # ---- BacktestBook's own (the SQLite side) --------------------------------------------------

    def _flush(self, op: str) -> None:
        raise NotImplementedError("BacktestBook writes the facts held")

    def _fail(self, op: str, exc: BaseException) -> None:
        raise NotImplementedError("BacktestBook voids the run")

    def flush_equity(self) -> None:
        raise NotImplementedError("BacktestBook writes the equity points")

    # ---- the facts of a trade, held -----------------------------------------------------------

    # A fact's checks fail as the engine's do: those the engine makes before its transaction
    # (a decision's row, a fill's values) raise and leave the run as it was; those it makes
    # inside it (an order's values, an update of an order never journaled, a fill before the
    # account) roll the run back, as a failed write does.

    def _refuse(self, op: str) -> None:
        if not self.is_open:
            raise StoreError(f"{self.where}: {op} on a closed store")
        if self._failed:
            raise StoreError(f"{self.where}: {op} refused: an earlier write failed ({self._failed})")

    def _held(self, op: str) -> None:
        """One more fact held; the held ones are written every ``FLUSH_FACTS``."""
        self._n_pending += 1
        if self._n_pending >= FLUSH_FACTS:
            self._flush(op)

    def record_decision(self, d: Decision, order: Order | None = None) -> bool:
        self._refuse("record_decision")
        row = decision_row(d)
        if d.key in self._decision_keys:
            return False
        if order is not None:
            held = self._checked_order_row("record_decision", order)
            if order.client_order_id in self._order_ids:
                return False  # the engine takes the decision back: nothing is stored
            self._hold_order(held)
        self._decision_keys.add(d.key)
        self._decisions.append(row)
        self._held("record_decision")
        return True

    def record_order(self, order: Order) -> bool:
        self._refuse("record_order")
        row = self._checked_order_row("record_order", order)
        if order.client_order_id in self._order_ids:
            return False
        self._hold_order(row)
        self._held("record_order")
        return True

    def _checked_order_row(self, op: str, order: Order) -> tuple[Any, ...]:
        """The order's row, checked as the engine checks it inside its transaction: a failure
        voids the run."""
        try:
            return order_row(order)
        except BaseException as exc:
            self._fail(op, exc)
            raise

    def _hold_order(self, row: tuple[Any, ...]) -> None:
        oid: str = row[0]
        self._order_ids.add(oid)
        self._new_orders[oid] = list(row)

    def _update_held(self, op: str, order: Order) -> None:
        """An order's new status: on its held row, or held for its written one."""
        try:
            update = order_update(order)
            oid: str = update[-1]
            if oid not in self._order_ids:
                raise StoreError(f"order {oid} was never journaled (record_order first)")
        except BaseException as exc:
            self._fail(op, exc)
            raise
        row = self._new_orders.get(oid)
        if row is None:
            self._order_updates[oid] = update
        else:
            row[7:13] = update[:6]  # status, filled_qty, avg_price, fees, updated_ts, message

    def update_order(self, order: Order) -> None:
        self._refuse("update_order")
        self._update_held("update_order", order)
        self._held("update_order")

    def record_fill(self, fill: Fill, order: Order, position: Position, account: Mapping[str, float]) -> bool:
        self._refuse("record_fill")
        fill_row, _update, pos_row, account_row = fill_facts(fill, order, position, account)
        if fill.fill_id in self._fill_ids:
            return False  # already booked: the engine's INSERT would change nothing either
        self._update_held("record_fill", order)
        if not self._has_account:
            exc = StoreError(f"{self.where}: record_fill before init_account (no account row)")
            self._fail("record_fill", exc)
            raise exc
        self._fill_ids.add(fill.fill_id)
        self._fills.append(fill_row)
        self._positions[fill.symbol] = pos_row
        self._account = account_row
        self._held("record_fill")
        return True

    def has_fill(self, fill_id: str) -> bool:
        return fill_id in self._fill_ids

    def record_equity(
        self, ts: int, equity: float, cash: float, exposure: float, realised: float, unrealised: float, fees: float
    ) -> None:
        if len(self.equity_rows) >= FLUSH_EQUITY:  # written before the point that would overflow
            self.flush_equity()  # (so the list holds this point after: the replay reads it)
        # counted here, natively (x - x is 0 for a finite x, NaN for an infinite or NaN one), so
        # the write looks for them only when there is one: an array of the held points cost
        # 0.3 s of a year's run
        total = equity + cash + exposure + realised + unrealised + fees
        if total - total != 0.0:  # NaN or infinite: a value is (or the sum overflowed)
            finite = equity - equity == 0.0 and cash - cash == 0.0 and exposure - exposure == 0.0
            if not (finite and realised - realised == 0.0 and unrealised - unrealised == 0.0 and fees - fees == 0.0):
                self.equity_not_finite += 1
        self.equity_rows.append((int(ts), equity, cash, exposure, realised, unrealised, fees))
