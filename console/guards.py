"""What a key may do now, and why not: the operator's keys say why they cannot act, in one
line, instead of doing nothing; the new entries keys (``P`` stops new entries on every pair,
``E`` resumes them); the re-checks a confirm dialog runs when ``y`` confirms it.

Owns ``GuardedActions``, a base of ``MultiparApp`` (``console/app.py``). A key whose action
``check_action`` disables (dimmed in the footer) would do nothing at all when pressed;
``on_key`` then shows ``why_not``'s line for it ("BTC/USDT is HALTED: re-arm first (r)").
A confirm dialog may stay open while the market moves: ``recheck`` says "nothing to do" when
what it asked about is already gone (a stop closed the position meanwhile), so the console
never sends a command only to show a green ok for it. Every fact is the engine's: the pairs'
modes and positions and the ``portfolio`` message's entries gate (``PortfolioMsg``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual import events
from textual.app import App, SystemCommand
from textual.screen import Screen

from console.model import ConsoleModel, PairView

ENTRIES_CONFIRM_BODY = (
    "Every pair may open positions again: ACTIVE pairs trade on their next signal; a PAUSED, "
    "REDUCING or HALTED pair keeps its mode."
)


class GuardedActions(App[None]):
    model: ConsoleModel
    selected_view: PairView | None  # MultiparApp's property
    send_command: Callable[..., Any]  # OperatorActions'
    _confirm: Callable[..., None]
    _nothing_to_kill: Callable[[], bool]

    # ------------------------------------------------------------------ the entries gate

    def entries_stopped(self) -> tuple[bool, str]:
        """(stopped, reason) as the engine's last ``portfolio`` message says."""
        pf = self.model.portfolio
        return (True, pf.entries_reason) if pf is not None and pf.entries_stopped else (False, "")

    def action_stop_entries(self) -> None:
        """P: no pair opens a new position until E; exits and stops still run. No confirm."""
        if self._refused("stop_entries"):
            return
        self.send_command("stop_entries")

    def action_resume_entries(self) -> None:
        """E: new entries allowed again, after a confirm (y)."""
        if self._refused("resume_entries"):
            return
        self._confirm(
            "resume_entries",
            "Resume new entries?",
            ENTRIES_CONFIRM_BODY,
            lambda: self.send_command("resume_entries"),
            recheck=lambda: self.why_not("resume_entries"),
        )

    # ------------------------------------------------------------------ why a key cannot act

    def why_not(self, action: str) -> str | None:
        """One line saying why ``action`` cannot act now; None when it can."""
        m = self.model
        pv = self.selected_view
        if action in ("pause_toggle", "flatten") and pv is None:
            return "no pair selected"
        if action == "pause_toggle" and pv is not None and pv.state.mode == "HALTED":
            return f"{pv.symbol} is HALTED: re-arm first (r)"
        if action == "flatten" and pv is not None and not pv.has_position:
            return f"{pv.symbol} has no open position: nothing to flatten"
        if action == "flatten_all" and not m.open_positions():
            stopped, _ = self.entries_stopped()
            return "no open position: nothing to flatten" + (
                "" if stopped else " (P stops new entries without closing anything)"
            )
        if action == "rearm" and not m.halted:
            return "nothing to re-arm: no pair is HALTED"
        if action == "kill" and self._nothing_to_kill():
            return "nothing to kill: every pair is HALTED and flat, and the engine runs"
        stopped, reason = self.entries_stopped()
        if action == "stop_entries" and stopped:
            return f"new entries are already stopped ({reason or 'engine'}): E resumes them"
        if action == "resume_entries" and not stopped:
            return "new entries are not stopped: nothing to resume (P stops them)"
        return None

    def _refused(self, action: str) -> bool:
        """Say why ``action`` cannot act (a key, the palette); True when it cannot."""
        why = self.why_not(action)
        if why is not None:
            self.notify(why, severity="warning", markup=False)
        return why is not None

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Stop new entries", "P: no pair opens a position until resumed", self.action_stop_entries
        )
        yield SystemCommand(
            "Resume new entries", "E: pairs may open positions again (confirm)", self.action_resume_entries
        )

    def on_key(self, event: events.Key) -> None:
        """A key bound to an action that is disabled now says why (Textual would drop it)."""
        why = None
        for namespace, bindings in self.screen._modal_binding_chain:
            for binding in bindings.key_to_bindings.get(event.key, ()):
                name = binding.action.rpartition(".")[2]
                if "(" in name:  # parametrised actions (navigation) always act
                    return
                if namespace.check_action(name, ()):
                    return  # this binding runs: nothing to explain
                if namespace is self and why is None:
                    why = self.why_not(name)
        if why is not None:
            self.notify(why, severity="warning", markup=False)
