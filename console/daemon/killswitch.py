"""The kill switch, as the daemon that runs the engine does it.

Owns ``KillSwitch``, the part of the daemon (``service.py``) that halts everything: ask the engine; when
it does not confirm within ``kill_ack_timeout_s`` (or has stopped beating for
``hung_after_s``), hold the engine (SIGKILL, no restart), close every stored position through
the trading core on the book (``engine.node.fallback.flatten_from_store``; a live daemon's
closes them at the exchange with the engine's own key and endpoints, never on paper), show the
result at once, and let the engine come back halted and flat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.attach import to_ack
from console.bridge import Bridge
from console.daemon.supervisor import Supervisor
from console.model import Ack
from engine.core.config import SafeList

log = logging.getLogger(__name__)


class KillSwitch:
    # the Daemon's
    cfg: SafeList
    db_path: Path
    bridge: Bridge | None
    supervisor: Supervisor | None
    hung_after_s: float
    kill_ack_timeout_s: float
    _kill_lock: asyncio.Lock | None
    _model: Any
    _stopped: bool
    _send: Callable[..., Any]
    _reset_dealer: Callable[[], None]
    _event: Callable[[str, str], None]
    _engine_secrets: dict[str, str]  # live: the key and secret (empty on paper)
    _feed_secrets: dict[str, str]  # the URL options (a testnet or a local exchange)
    _engine_argv: list[str]

    def _live_env(self) -> tuple[dict[str, str] | None, bool]:
        """A live daemon's fallback closes at the exchange with the engine's own settings."""
        if not self._engine_secrets:
            return None, False
        return {**self._feed_secrets, **self._engine_secrets}, "--testnet" in self._engine_argv

    def engine_hung(self) -> bool:
        """No engine process, or no heartbeat for more than ``hung_after_s``."""
        if self.supervisor is None or self.supervisor.pid("engine") is None:
            return True
        age = self.bridge.beat_age("engine") if self.bridge is not None else None
        return age is None or age > self.hung_after_s

    async def kill(self) -> Ack:
        """Halt everything: ask the engine; if it does not confirm in ~1 s, do it ourselves."""
        if self._kill_lock is None:
            return Ack("kill", False, "backend is not started")
        async with self._kill_lock:
            t0 = time.perf_counter()
            if not self.engine_hung():
                ack, _ = await self._send("kill", None, self.kill_ack_timeout_s)
                if ack is not None and ack.ok:
                    log.warning("kill switch: engine acknowledged: %s", ack.message)
                    return to_ack(ack, "kill", (time.perf_counter() - t0) * 1000.0)
                why = "no ack" if ack is None else f"refused: {ack.message}"
            else:
                why = "no heartbeat"
            return await self._kill_fallback(why, t0)

    async def _kill_fallback(self, why: str, t0: float) -> Ack:
        assert self.supervisor is not None
        log.error("kill switch: engine %s; daemon takes over", why)
        self._reset_dealer()
        await self.supervisor.hold("engine", reason=f"kill switch fallback ({why})")
        marks = self._marks()
        try:
            from engine.node.fallback import flatten_from_store

            live_env, testnet = self._live_env()
            fills = await asyncio.to_thread(flatten_from_store, self.db_path, self.cfg, marks, live_env, testnet)
        except Exception as exc:
            log.exception("flatten from store failed")
            self._release_engine()
            text = f"engine hung and flatten from the store FAILED: {exc}; engine restarted, press kill again"
            self._event(text, "error")
            return Ack("kill", False, text, (time.perf_counter() - t0) * 1000.0, fallback=True)
        self._release_engine()  # it reads HALTED and the flat book back from the store
        n = len(fills)
        text = f"engine hung: daemon flattened {n} position{'' if n == 1 else 's'} from the store, all pairs HALTED"
        self._event(text, "error")
        log.error("kill switch: %s", text)
        # Show it now: the restarted engine confirms a second later, the store already says so.
        apply_flat = getattr(self._model, "apply_flat", None)
        if apply_flat is not None:
            apply_flat([f.symbol for f in fills])
        halted = dict.fromkeys(self.cfg.active_symbols(), "HALTED")
        elapsed = (time.perf_counter() - t0) * 1000.0
        flat = [f.symbol for f in fills]
        return Ack("kill", True, text, elapsed, fallback=True, modes=halted, halted=True, flat=flat)

    def _release_engine(self) -> None:
        if self.supervisor is not None and not self._stopped:  # never respawn during shutdown
            self.supervisor.release("engine")

    def _marks(self) -> dict[str, tuple[float, float]]:
        """Last known (bid, ask) per pair: the bridge's, else whatever the model holds."""
        marks: dict[str, tuple[float, float]] = (
            dict(self.bridge.marks) if self.bridge is not None else {}
        )
        pairs = getattr(self._model, "pairs", None)
        if isinstance(pairs, dict):
            for sym, pv in pairs.items():
                state = getattr(pv, "state", None)  # a PairView's PairStateMsg
                if sym in marks or state is None:
                    continue
                bid, ask = state.bid, state.ask
                if bid is not None and ask is not None and bid > 0 and ask > 0:
                    marks[sym] = (bid, ask)
        return marks
