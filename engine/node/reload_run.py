"""The engine's side of a safe-list reload: the ``reload`` command and the pairs leaving.

Owns ``ReloadRunner``. The daemon validated the new file and wrote its text beside the engine's
run copy as ``safe_list.next.yaml`` (``PENDING_NAME``); the command names its digest (the first
16 hex digits of its SHA-256), so the engine applies exactly what was validated and previewed.
The engine reads it through the same validation, diffs it against the safe list in force,
refuses it whole when a change cannot be made live (``engine.core.reload.refusals``) or, live,
when the exchange cannot trade an added pair (its rules are asked of the live client, on the
loop, at most ``LIVE_ADD_TIMEOUT_S``; the pair's entries then wait for a reconciliation that
covers it), else makes it the run copy (``os.replace``: a restart trades the new list) and applies it to the core
(``engine.core.reload.apply``): added pairs are subscribed on the feed socket and warmed from
the feed's history, rebuilt pairs warmed again, removed flat pairs unsubscribed (here and, through the feed's ``unsubscribe``, at the feed:
it stops streaming them). The history
requests run on worker threads (``engine.node.warmup.ask_history``) and ``poll`` warms each pair
on the engine thread once its answer is in: the other pairs are decided meanwhile (until then
the new pair's indicators fill from live candles, as when the feed has no history). Each timer turn,
``sweep`` lets the pairs a reload removed leave once flat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core import reload
from engine.core.candles import Candle
from engine.core.config import ConfigError, SafeList, read_safe_list
from engine.core.ports import HistoryUnavailable
from engine.node.tick_in import TopicStats
from engine.node.warmup import ask_history, history_pool
from engine.wire.schema import AckMsg
from feed.history import request_unsubscribe

if TYPE_CHECKING:
    from engine.node.service import EngineNode

log = logging.getLogger("engine")

PENDING_NAME = "safe_list.next.yaml"
LIVE_ADD_TIMEOUT_S = 8.0  # the exchange asked (on the loop) for an added pair's rules, at most
LEAVE_AFTER_S = 2.5  # a leaving pair flat this long leaves (its flat state published: <= 1 s)


def _log_drop(symbols: list[str], fut: Future[list[str]]) -> None:
    exc = fut.exception() if not fut.cancelled() else None
    if exc is not None:
        log.warning("the feed was not told to stop streaming %s: %s", ", ".join(symbols), exc)
    elif not fut.cancelled():
        log.info("the feed no longer streams %s", ", ".join(symbols))


def digest(text: str) -> str:
    """A safe list's version tag: the first 16 hex digits of its text's SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ReloadRunner:
    def __init__(self, node: EngineNode, config_path: Path | None) -> None:
        self.node = node
        self.config_path = config_path
        self.applied = 0
        self._flat_since: dict[str, float] = {}  # leaving pairs flat since (monotonic)
        self._pool: ThreadPoolExecutor | None = None
        self.warming: dict[str, tuple[Future[list[Candle]], float]] = {}  # history asked, since

    def handle(self, m: dict[str, Any]) -> AckMsg:
        node, core = self.node, self.node.core
        want = m.get("digest") or ""
        if self.config_path is None:
            return AckMsg(m["id"], "reload", False, "this engine was started without a safe list file: cannot reload")
        pending = self.config_path.with_name(PENDING_NAME)
        try:
            text, new = read_safe_list(pending)
        except ConfigError as exc:
            return AckMsg(m["id"], "reload", False, f"not reloaded: {exc.problems[0]}")
        if digest(text) != want:
            return AckMsg(m["id"], "reload", False,
                          f"not reloaded: the pending safe list is {digest(text)}, the command names {want!r}")  # fmt: skip
        d = reload.diff(node.cfg, new)
        refused = reload.refusals(d, reload.open_positions(core))
        if refused:
            return AckMsg(m["id"], "reload", False, "not reloaded: " + "; ".join(refused), modes=core.modes())
        fresh = [s for s in d.added if s not in core.pairs]  # (a pair re-added while leaving is known)
        why = self._live_add(new, fresh) if node.live is not None and fresh else ""
        if why:
            return AckMsg(m["id"], "reload", False, f"not reloaded: {why}", modes=core.modes())
        try:
            os.replace(pending, self.config_path)  # the commit point: a restart trades the new list
        except OSError as exc:
            return AckMsg(m["id"], "reload", False, f"not reloaded: cannot replace the run copy: {exc.strerror or exc}")
        done = reload.apply(core, new, d)
        node.cfg = new
        self.applied += 1
        for sym in done.added:
            node.stats[sym] = TopicStats()
            node.left_topics.discard(sym.encode())
        for sym in done.left:
            self._forget(sym)
        self._feed_drops(done.left)
        self._rebuild_topics()
        for sym in done.warm:
            self._warm(sym)
        if node.live is not None and fresh:  # no entry on them before the exchange agrees with the book
            core.reconciler.expect_pairs(fresh)
            if node._reconcile is not None:
                node._reconcile.request("command")
        what = "; ".join(x for x in (d.summary(), done.message()) if x)
        core.notice("reload", "info", f"safe list {want} in force: {what}")
        log.info("reload %s applied: %s", want, what)
        return AckMsg(m["id"], "reload", True, what, modes=core.modes(),
                      halted=core.portfolio_summary().halted)  # fmt: skip

    def _live_add(self, new: SafeList, fresh: list[str]) -> str:
        """Live: the exchange's rules for the added pairs (a futures pair's leverage set), the
        live client polling and reconciling them from now on; why not, or "". On the engine
        loop, at most ``LIVE_ADD_TIMEOUT_S``: the markets are loaded already, so this is no
        request for a spot pair listed at start, one (leverage) for a futures pair."""
        assert self.node.live is not None
        want = {s: new.pairs[s].leverage if new.pairs[s].market == "futures" else None for s in fresh}
        try:
            rules = self.node.live.add_symbols(want, LIVE_ADD_TIMEOUT_S)
        except Exception as exc:  # LiveClientError: one scrubbed line
            return f"the exchange cannot trade {', '.join(fresh)}: {exc}"
        self.node.core.rules.update(rules)
        log.info("reload: the exchange's rules for %s: %s", ", ".join(fresh),
                 "; ".join(f"{s} step {r.amount_step:g}, min {r.min_qty:g}" for s, r in rules.items()))  # fmt: skip
        return ""

    def _warm(self, sym: str) -> None:
        """Ask ``sym``'s history on a worker thread; ``poll`` warms the pair once it is in. The
        loop keeps deciding the other pairs meanwhile (a slow history answer stalls no one)."""
        node = self.node
        if node.history_limit <= 0:
            reload.warm(node.core, sym, [])
            return
        if self._pool is None:
            self._pool = history_pool()
        self.warming[sym] = (ask_history(node, self._pool, sym), time.monotonic())  # a newer ask wins

    def poll(self) -> None:
        """Each loop turn: the pairs whose history came in are warmed (on the engine thread)."""
        for sym, (fut, t0) in list(self.warming.items()):
            if not fut.done():
                continue
            del self.warming[sym]
            candles: list[Candle] = []
            try:
                candles = fut.result()
            except HistoryUnavailable as exc:
                log.warning("%s - no history from the feed (%s): indicators warm up live", sym, exc)
            except Exception as exc:  # the request itself failed: the pair warms up live
                log.warning("%s - history request failed (%s: %s): indicators warm up live", sym, type(exc).__name__, exc)
            t1 = time.monotonic()
            n = reload.warm(self.node.core, sym, candles)
            log.info("%s - warmed on %d candles after the reload (history %.0f ms off the loop, warm-up %.1f ms on it)",
                     sym, n, (t1 - t0) * 1e3, (time.monotonic() - t1) * 1e3)  # fmt: skip

    def _feed_drops(self, symbols: list[str]) -> None:
        """The engine let these pairs go: the feed stops streaming them (``unsubscribe``, on a
        worker thread: the loop never waits on the feed; a refusal or silence is only logged)."""
        endpoint = getattr(self.node.history, "endpoint", None)
        if not symbols or not isinstance(endpoint, str):
            return
        if self._pool is None:
            self._pool = history_pool()
        fut = self._pool.submit(request_unsubscribe, endpoint, list(symbols))
        fut.add_done_callback(lambda f: _log_drop(symbols, f))

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _forget(self, sym: str) -> None:
        """A pair that left: its transport stats go. Its ticks stop at the SUB when
        ``_rebuild_topics`` (``EngineNode.subscribe_ticks``) drops a first byte no pair shares;
        until the feed stops streaming it, any that still come are dropped, not counted bad."""
        self.node.stats.pop(sym, None)
        self.node.left_topics.add(sym.encode())

    def _rebuild_topics(self) -> None:
        node = self.node
        node._by_topic = {sym.encode(): (ps, node.stats[sym]) for sym, ps in node.core.pairs.items()}
        node.subscribe_ticks()
        pub = node.publisher  # its per-pair caches follow the pairs traded (a publisher that keeps any)
        if hasattr(pub, "_views"):
            pub._views = {}
        if hasattr(pub, "_subs_changed"):
            pub._subs_changed = True

    def sweep(self) -> None:
        """Pairs a reload removed leave (unsubscribed) once flat for ``LEAVE_AFTER_S``: their
        flat state has been published by then, so every console's pane shows them flat."""
        core, now = self.node.core, time.monotonic()
        for s in list(core.leaving):
            if reload.busy(core, s):
                self._flat_since.pop(s, None)
            else:
                self._flat_since.setdefault(s, now)
        ready = {s for s, t in self._flat_since.items() if now - t >= LEAVE_AFTER_S}
        if not ready:
            return
        for s in ready:
            self._flat_since.pop(s, None)
        gone = reload.sweep(core, ready)
        for sym in gone:
            self._forget(sym)
        if gone:
            self._rebuild_topics()
            self._feed_drops(gone)
