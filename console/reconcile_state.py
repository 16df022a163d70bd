"""The latest reconciliation of the book with the exchange, as the console holds it.

Owns ``ReconcileState`` (the engine's latest ``ReconcileReport``, when it came, which waiting
pairs the operator was already shown, the acks of the choices sent from this console) and
``ReconcileHolder``, the part of ``ConsoleModel`` that the bridge feeds: topic ``reconcile``
and a snapshot's ``reconcile`` both go to ``apply_reconcile``. A report is identified by its
time and trigger: the engine republishes the same report with the operator's choice recorded in
it (who, when), and a new check is a new report. The engine's own notice says what a check
found (the event log shows it), so nothing is added to the log here. No Textual here: the
daemon's model holds one too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.core.reconcile_view import ReconcileReport
from engine.wire.schema import ReconcileMsg

DIRTY_RECONCILE = "@reconcile"  # a flag in ConsoleModel.dirty, like "@header"


def report_of(msg: ReconcileMsg) -> ReconcileReport:
    """The wire message as the engine's own report (its dict form is the wire's)."""
    return ReconcileReport.from_dict(msg.to_wire(versioned=False))


@dataclass(slots=True)
class ReconcileState:
    report: ReconcileReport | None = None
    received_at: float | None = None  # wall clock (epoch s) of the last message
    updates: int = 0  # messages applied (a new report or a choice recorded in one)
    # waiting pairs the operator was shown; a pair leaves it when it no longer waits
    offered: set[str] = field(default_factory=set)
    acks: dict[str, str] = field(default_factory=dict)  # symbol ("" for a re-check) -> outcome

    @property
    def identity(self) -> tuple[int, str] | None:
        r = self.report
        return None if r is None else (r.ts, r.trigger)

    @property
    def waiting(self) -> list[str]:
        """Pairs halted by the report that wait for the operator's choice."""
        return [] if self.report is None else self.report.waiting

    def apply(self, report: ReconcileReport | None, at: float) -> bool:
        """Keep ``report`` (None: the engine has none); True when it is a new one (a new
        check: the acks of choices sent for the previous one are cleared)."""
        before = self.identity
        self.report = report
        self.received_at = at
        self.updates += 1
        self.offered &= set(self.waiting)
        new = report is not None and self.identity != before
        if new:
            self.acks = {k: v for k, v in self.acks.items() if not k}
        return new

    @property
    def offer_due(self) -> bool:
        """A pair waits for a choice that the operator has not been shown yet (a check every
        minute that finds the same pairs waiting does not open the screen again)."""
        return bool(set(self.waiting) - self.offered)

    def mark_offered(self) -> None:
        self.offered |= set(self.waiting)


class ReconcileHolder:
    """ConsoleModel's reconciliation: ``model.reconcile`` and ``apply_reconcile``."""

    dirty: set[str]
    wall: Callable[[], float]
    _reconcile: ReconcileState | None = None

    @property
    def reconcile(self) -> ReconcileState:
        if self._reconcile is None:
            self._reconcile = ReconcileState()
        return self._reconcile

    def apply_reconcile(self, msg: ReconcileMsg | None) -> None:
        """Topic ``reconcile``, or a snapshot's (None: the engine holds no report)."""
        self.reconcile.apply(None if msg is None else report_of(msg), self.wall())
        self.dirty.add(DIRTY_RECONCILE)
