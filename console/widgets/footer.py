"""The board's footer: Textual's ``Footer`` that updates its keys in place.

Textual's footer recomposes (removes and mounts every key) whenever the screen's bindings are
refreshed, and a recompose makes the whole screen lay out again: with 1,000 pairs that is
about 28,000 widget placements, 46 % of the console's CPU (docs/performance.md, "At a
thousand pairs"). Most refreshes only enable or dim a key (the first position opening, the
selected pair's mode): ``BoardFooter`` then toggles the keys' ``-disabled`` class (a repaint
of one line, no layout) and recomposes only when the set of keys shown changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

if TYPE_CHECKING:
    from textual.screen import Screen


class BoardFooter(Footer):
    """A ``Footer`` whose key changes repaint instead of recomposing."""

    def __init__(self) -> None:
        super().__init__()
        self._composed: tuple[object, ...] | None = None  # the keys as last composed

    def _keys(self) -> tuple[tuple[object, ...], dict[str, bool]]:
        """What the footer would show (without enabled state) and each action's enabled state,
        as ``compose`` reads them (the first binding of an action decides)."""
        active = self.screen.active_bindings
        shown: list[tuple[object, ...]] = []
        enabled: dict[str, bool] = {}
        for _node, binding, on, tooltip in active.values():
            if binding.show:
                shown.append((binding.key, binding.action, binding.description, binding.group))
                shown.append((tooltip,))
                enabled.setdefault(binding.action, on)
        palette = self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE
        if palette and (entry := active.get(self.app.COMMAND_PALETTE_BINDING)) is not None:
            enabled.setdefault(entry[1].action, entry[2])
        return (palette, *shown), enabled

    def compose(self) -> ComposeResult:
        self._composed = self._keys()[0] if self._bindings_ready else None
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._update_keys)

    async def _update_keys(self) -> None:
        if not self.is_attached:
            return
        shown, enabled = self._keys()
        if shown != self._composed:
            await self.recompose()
            return
        keys: Iterable[FooterKey] = self.query(FooterKey)
        for key in keys:
            off = not enabled.get(key.action, True)
            if key._disabled != off:
                key._disabled = off  # what a click on it does (FooterKey.on_mouse_down)
                key.set_class(off, "-disabled")
