"""After a live kill or flatten-all: ask the exchange whether anything is still open.

Owns ``KillCheck``. The core's kill halts every pair and sends the closing orders; a live
exchange answers later. The engine arms a check; each loop turn ``poll`` waits until the core
has no order in flight and no exit pending (or ``wait_s`` passed), then asks the exchange, on a
thread of its own so the engine loop never blocks on the network, which of the pairs' orders are
still open (orders not ours, placed by hand, are named and left alone). The answer comes back as one line the engine journals and publishes (an event the
console shows and the daemon's log keeps): "kill verified at the exchange: no open order" or
what is left, with the positions the book still holds (dust aside).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.core.orders import is_ours

log = logging.getLogger("engine")

WAIT_S = 10.0  # the closing orders' answers are awaited this long before the exchange is asked


class KillCheck:
    def __init__(self, live: Any, core: Any, say: Callable[[str, str], None]) -> None:
        self.live, self.core, self.say = live, core, say
        self._due_at = 0.0  # monotonic deadline of an armed check; 0 = none
        self._result: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, what: str) -> None:
        self._what = what
        self._due_at = time.monotonic() + WAIT_S

    def poll(self) -> None:
        """Engine loop: start the question when the book has settled; say the answer."""
        result, self._result = self._result, None
        if result is not None:
            self.say(*result)
        if not self._due_at or (self._thread is not None and self._thread.is_alive()):
            return
        ex = self.core.execution
        if (ex.orders or ex.exits) and time.monotonic() < self._due_at:
            return
        self._due_at = 0.0
        symbols = sorted(self.core.pairs)
        left = [s for s, p in self.core.portfolio.positions.items() if p.is_open and not ex.is_dust(p)]
        self._thread = threading.Thread(target=self._ask, args=(symbols, left), name="kill-check", daemon=True)
        self._thread.start()

    def _ask(self, symbols: list[str], left: list[str]) -> None:
        try:
            found = self.live.open_orders(symbols)
        except Exception as exc:  # the client's errors are one scrubbed line
            self._result = (f"{self._what}: could not ask the exchange what is open: {exc}", "error")
            return
        still = [o for o in found if is_ours(o.get("clientOrderId"))]
        foreign = len(found) - len(still)
        book = f"; the book still holds {', '.join(left)}" if left else ""
        book += f"; {foreign} order(s) not ours left alone" if foreign else ""
        if still:
            names = ", ".join(sorted({str(o.get("symbol", "?")) for o in still}))
            self._result = (f"{self._what}: {len(still)} order(s) still open at the exchange ({names}){book}",
                            "error")  # fmt: skip
        else:
            level = "warning" if left else "info"
            self._result = (f"{self._what} verified at the exchange: no open order{book}", level)
