"""The operator's actions on the console: commands with their acks, the confirm flows, the
kill switch and the per-pair progress a kill or flatten-all opens, help, quit, and the command
palette's entries.

Owns ``OperatorActions``, the ``App`` base ``MultiparApp`` derives from (``console/app.py``
owns the lifecycle, the bindings, ``check_action`` and painting). Every command runs in a
worker and shows its ack (or why there was none) with the elapsed milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

from textual.worker import Worker

from console.client import COMMAND_TIMEOUT_S as BACKEND_COMMAND_TIMEOUT_S
from console.kill_progress import KillProgress
from console.log_actions import LogActions
from console.model import Ack, Backend, ConsoleModel, PairView
from console.navigation import NavigationActions
from console.reconcile_actions import ReconcileActions
from console.screens.confirm import ConfirmScreen
from console.screens.detail import PairDetailScreen
from console.screens.main import MainScreen
from console.widgets.pair_pane import position_parts
from console.widgets.palette import fmt_price, fmt_qty, fmt_usd
from engine.core.config import SafeList

log = logging.getLogger("console.app")

# The backend answers or gives up within its own timeout; this guard, derived from it, makes
# sure the operator always sees an outcome even from a backend that never returns.
COMMAND_TIMEOUT_S = BACKEND_COMMAND_TIMEOUT_S + 0.5
# The kill path may stop the engine and flatten from the store itself: give it room.
KILL_TIMEOUT_S = 20.0
MODE_COMMANDS = {"ACTIVE": "pause", "PAUSED": "resume", "REDUCING": "resume"}


class OperatorActions(NavigationActions, ReconcileActions, LogActions):
    # set by MultiparApp.__init__
    model: ConsoleModel
    backend: Backend
    cfg: SafeList
    wall: Callable[[], float]
    selected_symbol: str | None
    main: MainScreen
    _kill_in_flight: bool
    progress: KillProgress | None = None  # the last kill's or flatten-all's

    selected_view: PairView | None  # MultiparApp's property
    # console/guards.py (GuardedActions, a base of MultiparApp): why a key cannot act
    why_not: Callable[[str], str | None]
    _refused: Callable[[str], bool]
    entries_stopped: Callable[[], tuple[bool, str]]
    select_symbol: Callable[[str], None]
    _refresh_binding_state: Callable[..., None]
    _frame: Callable[[], None]

    # ------------------------------------------------------------------ commands

    def send_command(self, cmd: str, symbol: str | None = None) -> Worker[Ack]:
        """Send one command in a worker; its ack (or failure) shows within a second."""
        return self.run_worker(
            self._command(cmd, symbol),
            name=f"command:{cmd}",
            group="commands",
            exclusive=False,  # commands for different pairs may be in flight together
            description=f"send {cmd} {symbol or ''} to the engine and show its ack".replace(
                "  ", " "
            ),
            exit_on_error=False,
        )

    async def _command(
        self, cmd: str, symbol: str | None, extra: dict[str, str] | None = None
    ) -> Ack:
        """``extra``: a command's own fields (``reconcile``: choice, who)."""
        label = " ".join(x for x in (cmd, symbol, (extra or {}).get("choice")) if x)
        t0 = time.perf_counter()
        try:
            sent = self.backend.command(cmd, symbol, **(extra or {}))
            ack = await asyncio.wait_for(sent, COMMAND_TIMEOUT_S)
        except TimeoutError:
            ack = Ack(cmd, False, f"no ack within {COMMAND_TIMEOUT_S * 1000:.0f} ms")
        except Exception as exc:
            log.exception("command %s failed", label)
            ack = Ack(cmd, False, f"{type(exc).__name__}: {exc}")
        elapsed = ack.elapsed_ms or (time.perf_counter() - t0) * 1000.0
        self.show_ack(label, ack, elapsed)
        return ack

    async def _kill(self) -> Ack:
        self._kill_in_flight = True
        self.model.add_event(
            "KILL switch: halting, cancelling orders, flattening everything", "warning"
        )
        t0 = time.perf_counter()
        try:
            ack = await asyncio.wait_for(self.backend.kill(), KILL_TIMEOUT_S)
        except TimeoutError:
            ack = Ack(
                "kill", False, f"no outcome within {KILL_TIMEOUT_S:.0f} s: check positions NOW"
            )
        except Exception as exc:
            log.exception("kill failed")
            ack = Ack("kill", False, f"{type(exc).__name__}: {exc}")
        finally:
            self._kill_in_flight = False
        elapsed = ack.elapsed_ms or (time.perf_counter() - t0) * 1000.0
        label = (
            "KILL (fallback: the daemon stopped the engine, flattened from the book)"
            if ack.fallback
            else "KILL"
        )
        self.show_ack(label, ack, elapsed)
        return ack

    def show_ack(self, label: str, ack: Ack, elapsed_ms: float) -> None:
        """Notification + event log line with the elapsed ms; modes applied at once. An ack
        that found nothing to do (already flat, already stopped) says so, not a green ok."""
        verdict = "nothing to do" if ack.ok and ack.noop else "ok" if ack.ok else "FAILED"
        # elapsed before the message: a narrow log truncates the end, never the timing
        text = f"{label}: {verdict} ({elapsed_ms:.0f} ms) — {ack.message}"
        if not ack.ok:
            level, severity = "error", "error"
        elif ack.fallback:
            level, severity = "warning", "warning"
        elif ack.noop:
            level, severity = "info", "information"
        else:
            level, severity = "success", "information"
        self.model.apply_ack(ack)  # modes and halted at once; the engine's messages confirm
        if self.progress is not None and ack.cmd == self.progress.cmd:
            self.progress.apply_ack(ack, elapsed_ms)
        elif ack.cmd == "rearm" and ack.ok:
            self.model.tap = None  # trading again: the pairs' orders are no longer the kill's
        self.model.add_event(text, level)
        # One ack toast at a time: stacked toasts cover the very rows the operator is watching
        # (at 80x24 four of them hid the board); the event log keeps every ack.
        self.clear_notifications()
        self.notify(text, severity=severity, markup=False, timeout=3 if ack.ok else 8)  # type: ignore[arg-type]
        self._refresh_binding_state(force=True)
        self._frame()  # show the outcome now, not at the next frame

    def _confirm(
        self,
        kind: str,
        title: str,
        body: str,
        on_yes: Callable[[], object],
        *,
        danger: bool = False,
        recheck: Callable[[], str | None] | None = None,
    ) -> None:
        """``recheck``, run when ``y`` confirms: why there is nothing left to do (the position
        closed while the dialog was open), or None to go ahead (console/guards.py)."""

        def done(yes: bool | None) -> None:
            why = recheck() if yes and recheck is not None else None
            if why is not None:
                text = f"{title.rstrip('?')}: nothing to do — {why}"
                self.model.add_event(text)
                self.notify(text, severity="information", markup=False)
            elif yes:
                on_yes()
            else:
                self.model.add_event(f"{title.rstrip('?')}: cancelled")

        self.push_screen(ConfirmScreen(kind, title, body, danger=danger), done)

    def _cancel_open_confirm(self) -> str | None:
        """Any other key cancels a dialog: a global key pressed over one closes it first."""
        top = self.screen
        if isinstance(top, ConfirmScreen) and not top.answered:
            top.answer(False)
            return top.kind
        return None

    # ------------------------------------------------------------------ actions

    def action_pause_toggle(self) -> None:
        pv = self.selected_view
        if self._refused("pause_toggle") or pv is None or pv.state.mode not in MODE_COMMANDS:
            return
        self.send_command(MODE_COMMANDS[pv.state.mode], pv.symbol)

    def action_reduce(self) -> None:
        pv = self.selected_view
        if pv is not None:
            self.send_command("reduce", pv.symbol)

    def action_flatten(self) -> None:
        pv = self.selected_view
        if self._refused("flatten") or pv is None:
            return
        side, qty, upnl = position_parts(pv.state.position)
        sym = pv.symbol
        self._confirm(
            "flatten",
            f"Flatten {sym}?",
            f"Close the {side} {fmt_qty(None if qty is None else abs(qty))} {sym} position at market "
            f"(last {fmt_price(pv.state.last)}, uPnL {fmt_usd(upnl, signed=True)}).",
            partial(self.send_command, "flatten", sym),
            recheck=lambda: self._position_gone(sym),
        )

    def _position_gone(self, sym: str) -> str | None:
        pv = self.model.pairs.get(sym)
        return None if pv is not None and pv.has_position else f"{sym} is already flat"

    def action_flatten_all(self) -> None:
        open_syms = self.model.open_positions()
        if self._refused("flatten_all"):
            return
        self._confirm(
            "flatten_all",
            f"Flatten all {len(open_syms)} positions?",
            "Close at market: " + ", ".join(open_syms) + ", and stop new entries on every pair "
            "until you resume them (E). Pairs keep their mode.",
            self._start_flatten_all,
            recheck=self._flatten_all_gone,
        )

    def _flatten_all_gone(self) -> str | None:
        """Nothing left for F: flat, and new entries already stopped (flat with entries still
        allowed: F goes on, it stops them)."""
        if self.model.open_positions() or not self.entries_stopped()[0]:
            return None
        return "every position is already closed and new entries are stopped"

    def _start_flatten_all(self) -> None:
        self.track_progress("flatten_all")
        self.send_command("flatten_all")

    def action_kill(self) -> None:
        if self._cancel_open_confirm() == "kill":
            return  # ctrl+k inside the kill dialog is "any other key": cancel
        if self._kill_in_flight:
            self.notify("kill switch already running", severity="warning", markup=False)
            return
        n = len(self.model.open_positions())
        self._confirm(
            "kill",
            "KILL SWITCH?",
            f"Halt every pair, cancel open orders and flatten all {n} open position(s). "
            "If the engine does not acknowledge within ~1s the console stops it and flattens "
            "from the stored positions. Nothing opens again until you re-arm (r).",
            self._start_kill,
            danger=True,
        )

    def _start_kill(self) -> None:
        self.track_progress("kill")
        self.run_worker(
            self._kill(),
            name="kill",
            group="kill",
            exclusive=False,  # never cancel a kill in flight; _kill_in_flight refuses a second
            description="kill switch: engine flattens and acks, else console fallback",
            exit_on_error=False,
        )

    def track_progress(self, cmd: str) -> None:
        """Show the per-pair progress of ``cmd``, sent now: the pairs holding a position or an
        open order, fed from here on by every message the model ingests (its ``tap``)."""
        live = self.backend.mode == "LIVE" or self.model.venue is not None
        self.progress = KillProgress.start(cmd, self.model, live=live)
        self.model.tap = self.progress.apply
        self.main.show_progress(self.progress)

    def show_progress(self) -> None:
        """The palette's way back to the last kill's progress (Escape closed it)."""
        if self.progress is None:
            return
        if isinstance(self.screen, PairDetailScreen):
            self.screen.dismiss(None)
        self.main.show_progress(self.progress)

    def action_rearm(self) -> None:
        if self._refused("rearm"):
            return
        self._confirm(
            "rearm",
            "Re-arm trading?",
            "Leave HALTED: each pair returns to its mode before the halt (a paused pair stays "
            "paused); ACTIVE pairs may open positions again.",
            partial(self.send_command, "rearm"),
            recheck=lambda: self.why_not("rearm"),
        )

    async def action_quit(self) -> None:
        """q, ctrl+q and the palette's Quit/Detach. Attached to a daemon: detach at once
        (trading goes on). The demo's own daemon stops with it: warn first about positions."""
        if self._cancel_open_confirm() == "quit":
            return  # ctrl+q inside the quit dialog is "any other key": cancel
        open_syms = self.model.open_positions()
        if getattr(self.backend, "detaches", False) or not open_syms:
            self._start_shutdown()
            return
        self._confirm(
            "quit",
            f"Quit with {len(open_syms)} open position(s)?",
            f"{', '.join(open_syms)} stay open: the engine stops, so nothing watches their stops "
            "until you start the console again. Flatten first (F) to be safe.",
            self._start_shutdown,
            danger=True,
        )

    def action_stop_trading(self) -> None:
        """S: stop the daemon (engine and feed) for good; with positions open, flatten first."""
        stop = getattr(self.backend, "stop_trading", None)
        if stop is None:
            self.notify("this console cannot stop trading", severity="warning", markup=False)
            return
        open_syms = self.model.open_positions()
        if open_syms:
            title = f"Flatten {len(open_syms)} position(s), then stop trading?"
            body = (
                f"{', '.join(open_syms)} are closed at market first; trading stops only once "
                "the book is flat. To stop and leave them open: multipar-console stop."
            )
        else:
            title, body = (
                "Stop trading?",
                "The engine and the feed stop; start them again with multipar-console.",
            )
        self._confirm(
            "stop", title, body, lambda: self._start_stop_trading(bool(open_syms)), danger=True
        )

    def _start_stop_trading(self, flatten: bool) -> None:
        async def run() -> None:
            self.model.add_event("asking the daemon to stop" + (" once flat" if flatten else ""))
            ack = await self.backend.stop_trading(flatten=flatten)  # type: ignore[attr-defined]
            self.model.apply_ack(ack)
            if ack.ok:
                await self.shutdown()
            else:
                self.notify(f"not stopped: {ack.message}", severity="error", markup=False)

        self.run_worker(run(), name="stop-trading", group="shutdown", exclusive=True)

    def _start_shutdown(self) -> None:
        self.run_worker(
            self.shutdown(),
            name="shutdown",
            group="shutdown",
            exclusive=True,
            description="stop engine and feed, then exit",
            exit_on_error=False,
        )
