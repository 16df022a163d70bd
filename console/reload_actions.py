"""The console's reload key (``C``): the safe list's diff previewed, confirmed, applied.

Owns ``ReloadActions``, a mixin of the app. ``C`` asks the daemon for ``reload_preview`` (the
same validation as ``check-config``; a bad file's one line is shown and nothing changes), shows
each change and what it will do in the confirm dialog (``y`` applies, any other key cancels),
then sends ``reload`` with the digest previewed (a file changed since is refused). Once applied,
the board gets a pane for each added pair and loses the panes of removed flat pairs
(``console.reload_view.set_pairs``; a removed pair with a position keeps its pane, REDUCING).
Every other attached console does the same when the daemon's ``config`` topic says a reload
was applied (``on_config_message``, called by the bridge), whoever triggered it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from console.model import DIRTY_HEADER
from console.reload_view import set_pairs
from console.screens.confirm import ConfirmScreen

log = logging.getLogger(__name__)

PREVIEW_TIMEOUT_S = 10.0
APPLY_TIMEOUT_S = 30.0
LEAVING_POLL_S = 1.0


class ReloadActions:
    model: Any
    backend: Any
    screen: Any

    def action_reload_config(self) -> None:
        self.run_worker(self._reload_preview(), exclusive=True, group="reload")  # type: ignore[attr-defined]

    async def _ask(self, cmd: str, timeout_s: float, **extra: Any) -> dict[str, Any] | None:
        request = getattr(self.backend, "_request_map", None)
        if request is None:
            return None
        m, _ = await request(cmd, None, timeout_s, **extra)
        return m if isinstance(m, dict) else None

    def _say(self, text: str, error: bool = False) -> None:
        self.notify(text, severity="error" if error else "information", markup=False)  # type: ignore[attr-defined]

    async def _reload_preview(self) -> None:
        m = await self._ask("reload_preview", PREVIEW_TIMEOUT_S)
        if m is None:
            self._say("reload: the daemon did not answer", error=True)
            return
        if not m.get("ok"):
            self._say(str(m.get("message", "reload refused")), error=True)
            return
        lines = [str(x) for x in m.get("preview") or []]
        digest = str(m.get("digest", ""))
        body = "\n".join(lines[:30]) + (f"\n… and {len(lines) - 30} more" if len(lines) > 30 else "")

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._reload_apply(digest), exclusive=True, group="reload")  # type: ignore[attr-defined]

        self.push_screen(  # type: ignore[attr-defined]
            ConfirmScreen("reload", f"Reload the safe list? ({m.get('message', '')})", body), answered
        )

    async def _reload_apply(self, digest: str) -> None:
        m = await self._ask("reload", APPLY_TIMEOUT_S, confirm=digest)
        if m is None:
            self._say("reload: the daemon did not answer", error=True)
            return
        self._say(str(m.get("message", "")), error=not m.get("ok"))
        if m.get("ok"):
            await self.follow_safe_list()

    def on_config_message(self, m: dict[str, Any]) -> None:
        """The daemon's ``config`` topic (every attached console hears it): an applied reload
        that moved the version is followed: panes added and removed, the header's version."""
        version = m.get("version")
        if m.get("ok") and isinstance(version, int) and version != getattr(self.model, "config_version", 0):
            self.run_worker(self.follow_safe_list(), exclusive=True, group="reload-follow")  # type: ignore[attr-defined]

    async def follow_safe_list(self) -> None:
        """The board follows the daemon's safe list: panes added and removed."""
        from engine.core.config import ConfigError, parse_safe_list

        status = await self.backend.status()
        if status is None:
            return
        try:
            cfg = parse_safe_list("\n".join(status.safe_list) + "\n", "the daemon's safe list")
        except ConfigError:
            return
        added, removed = set_pairs(self.model, cfg)
        if set(self.model.pairs) - set(cfg.active_symbols()):  # removed with a position: REDUCING
            self.run_worker(self._sweep_leaving(cfg), exclusive=True, group="reload-sweep")  # type: ignore[attr-defined]
        self.model.config_version = status.config_version
        self.model.dirty.add(DIRTY_HEADER)
        await self._follow_board(added, removed)

    async def _sweep_leaving(self, cfg: Any) -> None:
        """Each second: a removed pair's pane goes once it is flat (the engine lets it go too)."""
        while set(self.model.pairs) - set(cfg.active_symbols()):
            await asyncio.sleep(LEAVING_POLL_S)
            added, removed = set_pairs(self.model, cfg)
            if removed:
                await self._follow_board(added, removed)

    async def _follow_board(self, added: list[str], removed: list[str]) -> None:
        board = self.screen if hasattr(self.screen, "panes") else None
        if board is None or not (added or removed):
            return
        await board.follow_pairs(added, removed)
        log.info("the board follows the safe list: +%s -%s", ",".join(added) or "-", ",".join(removed) or "-")
