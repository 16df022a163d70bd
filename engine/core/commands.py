"""Operator commands on the trading core: pause, resume, reduce, flatten one or all, kill,
re-arm, and stop or resume new entries on every pair. Each journals its change (modes, the
entries gate, events, the exit orders) before it returns the message a shell acknowledges with.

Rules: flatten all stops new entries on every pair first (nothing opens while it closes, nor
after it) until the operator resumes them (``resume_entries``); re-arm returns each HALTED pair
to its mode before the halt (kept in the book), skipping pairs that wait for a reconciliation
choice; a command that finds nothing to do says so (``CommandResult.noop``).

Owns ``OperatorCommands``, a mixin of ``TradingCore`` (the attributes it reads are the
core's), and ``CommandResult``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.core.events import ModesChanged, Notice
from engine.core.models import PairMode
from engine.core.operator_state import EntriesGate

if TYPE_CHECKING:
    from engine.core.execution import ExecutionEngine
    from engine.core.portfolio import Portfolio
    from engine.core.ports import Clock, EventSink, Journal
    from engine.core.reconcile import Reconciler
    from engine.core.trader import PairState

log = logging.getLogger("engine")


@dataclass(slots=True, frozen=True)
class CommandResult:
    ok: bool
    message: str
    noop: bool = False  # nothing to do (already flat, already stopped): not an error, not an action


class OperatorCommands:
    pairs: dict[str, PairState]
    portfolio: Portfolio
    execution: ExecutionEngine
    reconciler: Reconciler
    entries: EntriesGate  # new entries on every pair: allowed or stopped (engine/core/operator_state.py)
    journal: Journal
    sink: EventSink
    clock: Clock
    portfolio_dirty: bool

    def close_position(self, symbol: str, reason: str, key: str, *, operator: bool = False) -> str:
        raise NotImplementedError  # TradingCore's: the one path that closes a position

    def command(self, cmd: str, symbol: str | None = None, choice: str = "", who: str = "") -> CommandResult:
        """Apply one operator command; every change is journaled before this returns.
        ``reconcile`` (with ``symbol``, ``choice`` adopt | flatten | keep, ``who``) settles a pair
        a reconciliation halted (engine/core/reconcile.py)."""
        now = self.clock.time_ms()
        if cmd == "ping":
            return CommandResult(True, "pong")
        if cmd == "reconcile":
            if symbol is None:
                return CommandResult(False, "a reconciliation needs the live exchange (paper has nothing to compare)")
            return self.reconciler.choose(symbol, choice, who)
        if cmd in ("pause", "resume", "reduce", "flatten"):
            ps = self.pairs.get(symbol or "")
            if ps is None:
                return CommandResult(False, f"unknown symbol {symbol!r}")
            if cmd == "flatten":
                return self._flatten_one(ps.symbol, now)
            if ps.mode is PairMode.HALTED:
                return CommandResult(False, f"{ps.symbol} is HALTED: re-arm first")
            target = {"pause": PairMode.PAUSED, "resume": PairMode.ACTIVE, "reduce": PairMode.REDUCING}[cmd]
            self.set_modes({ps.symbol: target}, f"operator {cmd}")
            return CommandResult(True, f"{ps.symbol} {target}")
        if cmd == "flatten_all":
            # entries stop first (journaled), so nothing opens while the positions close, nor after
            gate = "new entries stay stopped" if self.entries.stopped else "new entries stopped until resumed"
            self.set_entries(True, "flatten all")
            done, failed = self.flatten_all("flatten_all", now)
            if failed:
                return CommandResult(False, f"{gate}; {done}; could not flatten {', '.join(failed)}")
            return CommandResult(True, f"{gate}; {done}")
        if cmd in ("stop_entries", "resume_entries"):
            return self._entries_command(cmd == "stop_entries")
        if cmd == "kill":
            return self.kill("kill")
        if cmd == "rearm":
            return self._rearm()
        return CommandResult(False, f"unhandled command {cmd!r}")

    def _rearm(self) -> CommandResult:
        """Every HALTED pair back to its mode before the halt (ACTIVE when the book has none),
        except the pairs a reconciliation halted that wait for the operator's choice."""
        waiting = self.reconciler.waiting()
        before = self.journal.modes_before_halt()
        halted = [s for s, p in self.pairs.items() if p.mode is PairMode.HALTED]
        back = {s: before.get(s, PairMode.ACTIVE) for s in halted if s not in waiting}
        self.set_modes(back, "operator rearm")
        text = f"re-armed {len(back)} pair(s)"
        kept = [f"{s} {m}" for s, m in back.items() if m is not PairMode.ACTIVE]
        if kept:
            text += f" ({', '.join(kept)}: as before the halt)"
        still = sorted(waiting & set(halted))
        if still:
            text += f"; {', '.join(still)} wait for a reconciliation choice (adopt, flatten or keep)"
        if self.entries.stopped:
            text += f"; new entries stay stopped ({self.entries.reason}) until resumed"
        if not back:
            return CommandResult(True, f"nothing to re-arm: {text}", noop=True)
        self._notice("rearm", "info", text)
        return CommandResult(True, text)

    def _entries_command(self, stop: bool) -> CommandResult:
        gate = self.entries
        if stop == gate.stopped:
            what = f"new entries already stopped ({gate.reason})" if stop else "new entries are not stopped"
            return CommandResult(True, f"nothing to do: {what}", noop=True)
        self.set_entries(stop, "operator")
        if stop:
            return CommandResult(True, "new entries stopped on every pair until resumed; exits and stops still run")
        paused = sorted(s for s, p in self.pairs.items() if p.mode is not PairMode.ACTIVE)
        note = f" ({', '.join(paused)} stay in their mode)" if paused else ""
        return CommandResult(True, f"new entries resumed{note}")

    def set_entries(self, stopped: bool, reason: str) -> None:
        """Stop or resume new entries on every pair: journaled, then noticed and published."""
        if stopped and self.entries.stopped:
            return  # already stopped: the first reason stays
        now = self.clock.time_ms()
        self.journal.set_entries(stopped, reason, now)
        self.entries = EntriesGate(stopped, reason if stopped else "", now)
        self.portfolio_dirty = True
        if stopped:
            text = f"new entries stopped on every pair ({reason}) until the operator resumes them"
        else:
            text = "new entries resumed"
        log.info("%s", text)
        self._notice("entries", "warning" if stopped else "info", text)

    def _flatten_one(self, symbol: str, now: int) -> CommandResult:
        outcome = self.close_position(symbol, "flatten", f"{symbol}|flatten|{now}", operator=True)
        if outcome == "flat":
            return CommandResult(True, f"nothing to do: {symbol} is already flat", noop=True)
        if outcome == "filled":
            f = self.execution.last_fill.get(symbol)
            what = f" {f.side} {f.qty:g} @ {f.price:.8g}" if f is not None else ""
            return CommandResult(True, f"{symbol} flattened:{what}")
        ex = self.execution.exits.get(symbol)
        if outcome == "pending" and ex is not None and not ex.last_error:  # a live venue answers later
            return CommandResult(True, f"{symbol} closing ({ex.waiting or 'order sent'})")
        if outcome == "pending":
            return CommandResult(False, f"{symbol} {self._why_not_flat(symbol, outcome)}: retried until flat")
        return CommandResult(False, f"{symbol} could not be flattened: {self._why_not_flat(symbol, outcome)}")

    def flatten_all(self, reason: str, now: int) -> tuple[str, list[str]]:
        """Close every position; returns what was done ("2 position(s) flattened", "1 closing
        (orders sent)": a live venue answers later, an exit sent and not refused is closing)
        and the positions that could not be closed."""
        n, closing, failed = 0, 0, []
        for sym, pos in list(self.portfolio.positions.items()):
            if not pos.is_open:
                continue
            outcome = self.close_position(sym, reason, f"{sym}|{reason}|{now}", operator=True)
            ex = self.execution.exits.get(sym)
            if outcome == "filled":
                n += 1
            elif outcome == "pending" and ex is not None and not ex.last_error:
                closing += 1
            elif outcome != "flat":
                failed.append(f"{sym} ({self._why_not_flat(sym, outcome)})")
        done = f"{n} position(s) flattened" + (f", {closing} closing (orders sent)" if closing else "")
        return done, failed

    def _why_not_flat(self, symbol: str, outcome: str) -> str:
        if outcome != "pending":
            return outcome.removeprefix("blocked: ")
        ex = self.execution.exits.get(symbol)
        why = (ex.last_error or ex.waiting) if ex is not None else ""
        return f"exit pending: {why}" if why else "exit pending"

    def kill(self, reason: str = "kill") -> CommandResult:
        """Halt every pair (journaled first, so nothing opens while we flatten), then flatten."""
        now = self.clock.time_ms()
        symbols = set(self.pairs) | {s for s, p in self.portfolio.positions.items() if p.is_open}
        self.set_modes(dict.fromkeys(sorted(symbols), PairMode.HALTED), "kill switch" if reason == "kill" else reason)
        self.reconciler.halted_here.clear()  # a settled reconciliation no longer lifts the kill's halt
        self._notice(reason, "error", "kill switch: all pairs HALTED")
        done, failed = self.flatten_all(reason, now)
        log.warning("KILL SWITCH: %s, all pairs HALTED", done)
        if failed:
            return CommandResult(False, f"HALTED; {done}; could not flatten {', '.join(failed)}")
        return CommandResult(True, f"all pairs HALTED, {done}")

    def set_modes(self, modes: Mapping[str, PairMode], reason: str) -> None:
        if not modes:
            return
        self.journal.set_modes(modes, reason, self.clock.time_ms())
        for sym, mode in modes.items():
            ps = self.pairs.get(sym)
            if ps is not None:
                ps.mode = mode
                ps.dirty = True
            log.info("%s - mode %s (%s)", sym, mode, reason)
        self.portfolio_dirty = True
        self.sink.emit(ModesChanged(dict(modes), reason))

    def notice(self, kind: str, level: str, message: str) -> None:
        """Journal a notice, then publish it (a shell's own news: the kill checked at the venue)."""
        self._notice(kind, level, message)

    def _notice(self, kind: str, level: str, message: str) -> None:
        ts = self.clock.time_ms()
        self.journal.record_event(ts, kind, message)
        self.sink.emit(Notice(ts, kind, level, message))

    def modes(self) -> dict[str, str]:
        return {s: str(p.mode) for s, p in self.pairs.items()}

