"""What the ``portfolio`` message carries of the correlations (issue 16).

Owns ``CorrelationView``: the part of the tracker's correlations a console shows, as a
``CorrelationMsg`` (wire version 2: the matrix of at most ``CORR_SHOWN`` symbols, the open
positions first, and the ``CORR_LINKS`` strongest couples of all pairs). It is built only when
the tracker's ``version`` or the open positions moved, at most every ``CORR_INTERVAL_S``, so the
portfolio message costs the same at 3 pairs and at 1,000; between builds the message leaves
``corr`` out (the console keeps the last one), except every ``CORR_REFRESH_S`` (a console that
missed the one that changed catches up) and in a snapshot.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.wire.schema import CorrelationMsg, CorrLinkMsg

if TYPE_CHECKING:
    from engine.core.trader import TradingCore

CORR_INTERVAL_S = 1.0  # at most one build a second
CORR_REFRESH_S = 10.0  # the last one sent again this often, changed or not
CORR_SHOWN = 12  # symbols in the shown matrix (the console's bar shows up to its height − 1 rows)
CORR_LINKS = 8  # strongest couples of all pairs (the console's folded line)


class CorrelationView:
    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._msg: CorrelationMsg | None = None
        self._built_at = -1e9
        self._sent_at = -1e9
        self.builds = 0
        self.last_build_s = 0.0  # wall time of the last build (bench/scaling.py reads it)

    @staticmethod
    def _key_of(core: TradingCore) -> tuple[Any, ...]:
        open_syms = tuple(sorted(s for s, p in core.portfolio.positions.items() if p.qty != 0.0))
        return (id(core.corr), core.corr.version, open_syms)

    def _build(self, core: TradingCore, key: tuple[Any, ...]) -> CorrelationMsg:
        t0 = time.perf_counter()
        corr = core.corr
        syms, matrix, links = corr.view(list(key[2]), CORR_SHOWN, CORR_LINKS)
        self._msg = CorrelationMsg(
            syms, matrix, corr.threshold, [CorrLinkMsg(a, b, r) for a, b, r in links],
            pairs=len(corr.symbols), version=2,
        )  # fmt: skip
        self._key = key
        self.builds += 1
        self.last_build_s = time.perf_counter() - t0
        return self._msg

    def current(self, core: TradingCore) -> CorrelationMsg:
        """The latest view, built now if the tracker moved (a snapshot always carries one)."""
        key = self._key_of(core)
        if self._msg is None or key != self._key:
            return self._build(core, key)
        return self._msg

    def due(self, core: TradingCore, now: float) -> CorrelationMsg | None:
        """The view to put in the portfolio message about to go out, or None (left out)."""
        key = self._key_of(core)
        if key != self._key and now - self._built_at >= CORR_INTERVAL_S:
            self._sent_at = self._built_at = now
            return self._build(core, key)
        if self._msg is not None and now - self._sent_at >= CORR_REFRESH_S:
            self._sent_at = now
            return self._msg
        return None
