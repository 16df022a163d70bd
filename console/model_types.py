"""The plain values the console model holds and hands out: ``PairView`` (one pair's latest state
and what the console keeps across messages), ``ChildStatus`` (a supervised process), ``Ack``
(the outcome of an operator command) and the ``Backend`` protocol the process side implements.
No Textual here; ``console.model`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from engine.wire.liveness import PAIR_SILENT_S
from engine.wire.schema import OrderMsg, PairStateMsg

if TYPE_CHECKING:
    from console.model import ConsoleModel


@dataclass(slots=True)
class PairView:
    """One pair: the engine's latest ``PairStateMsg`` and what the console keeps across them.

    ``state`` is a placeholder (no prices, STALE) until the first message; widgets read its
    attributes (``state.ind.rsi``, ``state.position.stop_loss``), so a renamed field fails
    loudly. ``closes`` outlives the messages: a state carries them only sometimes.
    """

    symbol: str
    state: PairStateMsg
    closes: list[float] = field(default_factory=list)
    received_at: float | None = None  # model clock when the last state arrived; None = none yet
    updates: int = 0
    order: OrderMsg | None = None  # the pair's latest order update
    silent_after_s: float = PAIR_SILENT_S  # the model sets it from its number of pairs (pair_silent_s)

    def tick_age_s(self, now: float) -> float | None:
        """Age of the latest tick now: the age the engine reported plus time since it arrived."""
        age_ms = self.state.tick_age_ms
        if self.received_at is None or age_ms is None:
            return None
        return age_ms / 1000.0 + max(0.0, now - self.received_at)

    def is_stale(self, now: float) -> bool:
        """The engine's verdict, or no state yet, or none for ``silent_after_s`` (the engine
        republishes every pair at least every ``pair_refresh_s(n)``: it is not speaking)."""
        at = self.received_at
        return self.state.stale or at is None or now - at > self.silent_after_s

    def badge(self, now: float) -> str:
        """The one state word a compact row shows: HALTED > STALE > PAUSED/REDUCING > ACTIVE."""
        mode = self.state.mode
        if mode == "HALTED":
            return "HALTED"
        if self.is_stale(now):
            return "STALE"
        return mode

    @property
    def has_position(self) -> bool:
        pos = self.state.position
        return pos is not None and pos.qty != 0.0


@dataclass(slots=True)
class ChildStatus:
    """What the supervisor knows of one child process ("feed" or "engine").

    ``next_restart_s`` is the delay announced when the state became "restarting"; the
    countdown runs from ``updated_at``. ``last_beat`` is in the model's clock (monotonic
    seconds in production).
    """

    name: str
    state: str = "starting"
    pid: int | None = None
    restarts: int = 0
    next_restart_s: float | None = None
    last_beat: float | None = None
    phase: str = ""  # the engine's own phase from its heartbeat: warming | running
    message: str = ""
    updated_at: float = 0.0

    def restart_in(self, now: float) -> float | None:
        if self.state != "restarting" or self.next_restart_s is None:
            return None
        return max(0.0, self.next_restart_s - (now - self.updated_at))

    def beat_age(self, now: float) -> float | None:
        return None if self.last_beat is None else max(0.0, now - self.last_beat)


@dataclass
class Ack:
    """The outcome of one operator command, shown within a second of the keystroke.

    ``fallback`` is True when the kill switch had to stop the engine and flatten from the
    store itself. ``modes`` and ``halted`` (None: not said) carry the engine's ack
    (``AckMsg``) so the screen shows the new state before the next ``pair``/``portfolio``
    message confirms it.
    """

    cmd: str
    ok: bool
    message: str
    elapsed_ms: float = 0.0
    fallback: bool = False
    modes: dict[str, str] = field(default_factory=dict)
    halted: bool | None = None
    flat: list[str] = field(default_factory=list)  # pairs the fallback flattened
    noop: bool = False  # the command found nothing to do (AckMsg.noop): "nothing to do", not ok


@runtime_checkable
class Backend(Protocol):
    """The process side (supervisor + bridge) as the app sees it."""

    mode: str  # "DEMO" | "PAPER" | "LIVE"

    async def start(self, model: ConsoleModel) -> None:
        """Start children and bridge; from then on keep writing into ``model``."""

    async def command(self, cmd: str, symbol: str | None = None, **extra: str) -> Ack:
        """ping/pause/…/rearm, reconcile (``extra``: choice, who): an ack or a failure in ~1 s."""

    async def kill(self) -> Ack:
        """Kill switch, including the fallback when the engine does not ack."""

    async def stop(self) -> None:
        """Orderly shutdown; idempotent."""

    # Optional: ``watch(symbols)``, the pairs on screen (the app calls it when the view moves); a
    # backend without it gets every pair once a second only.
