"""The daemon's side of a safe-list reload: validate, preview, apply pair by pair, record.

Owns ``DaemonReload``, the part of the daemon (``service.py``) behind ``multipar-console reload``,
SIGHUP and the console's reload key. A reload reads the operator's file (the one the daemon
started from) through the one validation (``console.config_checks.check_safe_list``: the file
hardened, the models, the size check): a bad file changes nothing, and its one-line error goes
to the caller, the log, every console (a ``config`` message and an event) and the book. A good
file is diffed against the safe list in force and described change by change
(``engine.core.reload``); ``reload_preview`` stops there. ``reload`` then refuses what cannot
change live, asks the feed to stream the added pairs on its connection, writes the text beside
the engine's run copy and has the engine apply it (``engine/node/reload_run.py``); once the
engine says so, the daemon's own safe list, model and feed command line follow. Every attempt
is a row of the book's ``reloads`` table and a message on the ``config`` topic; the config
version (1 + reloads applied in the book) is in ``status`` and the console's header.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.config_checks import check_safe_list
from console.daemon.wire import TOPIC_CONFIG
from console.preflight import write_private
from engine.core import reload as core_reload
from engine.core.config import ConfigError, SafeList
from engine.journal import reloads as book_reloads
from engine.journal.schema import StoreError
from engine.node.reload_run import PENDING_NAME, digest
from engine.wire.schema import AckMsg
from feed.history import request_subscribe

log = logging.getLogger("console.daemon.service")

RELOAD_TIMEOUT_S = 20.0  # the engine warms each added pair from the feed's history meanwhile


class DaemonReload:
    # the Daemon's
    cfg: SafeList
    cfg_path: Path
    cfg_text: str
    db_path: Path
    model: Any
    mode: str
    endpoints: Any
    supervisor: Any
    _feed_argv: list[str]
    _request_map: Callable[..., Any]
    _publish: Callable[[bytes, dict[str, Any]], None]
    _event: Callable[..., None]
    _spawn: Callable[..., Any]
    on_second: list[Callable[[], None]]

    cfg_source: Path | None = None  # the operator's file (main.py sets it); None: the run copy
    config_version = 1
    _reload_lock: asyncio.Lock | None = None

    def init_reload(self) -> None:
        with contextlib.suppress(StoreError, OSError):
            self.config_version = book_reloads.config_version(self.db_path)
        self.on_second.append(self._sweep_panes)

    def _sweep_panes(self) -> None:
        """A removed pair's pane goes once it is flat (the engine lets it go then too)."""
        if len(self.model.pairs) != len(self.cfg.active_symbols()):
            from console.reload_view import set_pairs

            set_pairs(self.model, self.cfg)

    @property
    def config_digest(self) -> str:
        return digest(self.cfg_text)

    def request_reload(self, trigger: str) -> None:
        """From a signal handler: a reload in its own task (its outcome is logged and published)."""
        self._spawn(self.reload(trigger), "reload")

    async def reload(self, trigger: str, *, preview: bool = False, confirm: str = "") -> dict[str, Any]:
        """One reload (or its preview); the reply map: an ack with ``preview`` (the lines),
        ``digest`` (of the file read) and ``version`` (in force after it)."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:  # one at a time: each diffs against the one before
            ok, message, lines, dg, diff = await self._reload(trigger, preview, confirm)
        if not preview:
            self._after(trigger, ok, message, lines, dg, diff)
        reply = AckMsg("", "reload_preview" if preview else "reload", ok, message, modes=self._modes()).to_wire()
        reply.update(preview=lines, digest=dg, version=self.config_version)
        return reply

    def _modes(self) -> dict[str, str]:
        return {s: str(pv.state.mode) for s, pv in self.model.pairs.items()}

    async def _reload(
        self, trigger: str, preview: bool, confirm: str
    ) -> tuple[bool, str, list[str], str, dict[str, Any]]:
        path = self.cfg_source or self.cfg_path
        try:
            text, new = await asyncio.to_thread(check_safe_list, path)
        except ConfigError as exc:
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            return False, f"not reloaded, the safe list in force is kept: {exc.problems[0]}{more}", exc.problems, "", {}
        dg = digest(text)
        d = core_reload.diff(self.cfg, new)
        # the book's open positions too: the daemon's model may not have heard of one yet
        held = set(self.model.open_positions()) | await asyncio.to_thread(_held_in_book, self.db_path)
        lines = core_reload.describe(d, held, self._modes(), live=self.mode == "LIVE")
        refused = core_reload.refusals(d, held)
        if refused:
            return False, "not reloaded, nothing changed: " + "; ".join(refused), [*refused, *lines], dg, d.to_dict()
        if preview:
            return True, f"{path}: {d.summary()}", lines, dg, d.to_dict()
        if confirm and confirm != dg:
            return False, "not reloaded: the file changed since the preview (preview it again)", lines, dg, d.to_dict()
        if d.empty:
            return True, "no change: the file is the safe list in force", lines, dg, {}
        streamed = None
        if d.added:
            tiers = {s: new.pairs[s].tier.value for s in d.added}
            try:
                streamed = await asyncio.to_thread(request_subscribe, self.endpoints.feed_rep, d.added, tiers, 5.0)
            except Exception as exc:  # the feed's refusal or silence: nothing changed yet
                return False, f"not reloaded, nothing changed: the feed cannot stream {', '.join(d.added)}: {exc}", lines, dg, d.to_dict()
        try:
            await asyncio.to_thread(write_private, self.cfg_path.with_name(PENDING_NAME), text)
        except OSError as exc:
            return False, f"not reloaded: cannot write beside the run copy: {exc.strerror or exc}", lines, dg, d.to_dict()
        m, _ = await self._request_map("reload", None, RELOAD_TIMEOUT_S, time.time_ns() + int(RELOAD_TIMEOUT_S * 1e9), digest=dg)
        if m is None:
            return False, f"not reloaded: the engine did not answer in {RELOAD_TIMEOUT_S:.0f} s", lines, dg, d.to_dict()
        if not m.get("ok"):
            return False, str(m.get("message", "the engine refused it")), lines, dg, d.to_dict()
        self.cfg, self.cfg_text = new, text
        self.config_version += 1
        self._follow(new, streamed)
        return True, f"safe list v{self.config_version} in force: {m.get('message', '')}", lines, dg, d.to_dict()

    def _follow(self, new: SafeList, streamed: list[str] | None) -> None:
        """The daemon's model gets the added pairs; a feed restart streams them too."""
        from console.reload_view import set_pairs

        set_pairs(self.model, new)
        if streamed and self.supervisor is not None:
            argv = list(self._feed_argv)
            with contextlib.suppress(ValueError, IndexError):
                argv[argv.index("--symbols") + 1] = ",".join(streamed)
                tiers = dict(kv.split("=", 1) for kv in argv[argv.index("--tiers") + 1].split(",") if "=" in kv)
                tiers.update({s: new.pairs[s].tier.value for s in streamed if s in new.pairs})
                argv[argv.index("--tiers") + 1] = ",".join(f"{s}={t}" for s, t in tiers.items())
            self._feed_argv = argv
            child = self.supervisor._children.get("feed")  # the spec a restart uses
            if child is not None:
                child.spec = dataclasses.replace(child.spec, argv=argv)

    def config_msg(self, trigger: str = "", ok: bool = True, result: str = "", lines: list[str] | None = None) -> dict[str, Any]:
        return {"v": 1, "ts": time.time_ns(), "version": self.config_version, "digest": self.config_digest,
                "pairs": self.cfg.active_symbols(), "trigger": trigger, "ok": ok, "result": result[:4000],
                "lines": [x[:400] for x in (lines or [])[:200]]}  # fmt: skip

    def _after(self, trigger: str, ok: bool, message: str, lines: list[str], dg: str, diff: dict[str, Any]) -> None:
        (log.info if ok else log.error)("reload (%s): %s", trigger, message)
        self._event(f"reload ({trigger}): {message}", "info" if ok else "error", "config")
        self._publish(TOPIC_CONFIG, self.config_msg(trigger, ok, message, lines))
        try:
            book_reloads.record(self.db_path, time.time_ns() // 1_000_000, trigger, self.config_version, dg or "-",
                                ok, diff, message)  # fmt: skip
        except (StoreError, OSError) as exc:
            log.error("reload (%s) not recorded in the book: %s", trigger, exc)


def _held_in_book(db: Path) -> set[str]:
    """The symbols the book holds a position in (read-only; empty when it cannot be read)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)) as conn:
            return {str(r[0]) for r in conn.execute("SELECT symbol FROM positions WHERE qty != 0")}
    except sqlite3.Error:
        return set()
