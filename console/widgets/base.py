"""The base of every console widget that draws from the ``ConsoleModel``.

Owns the attributes-down wiring: a widget gets the model (and a symbol when it shows one
pair) at construction, reads it in ``render()`` and colours values with the app's
``Palette``. The app's repaint timer calls ``refresh()``; the widgets hold no state of their own.
"""

from __future__ import annotations

from textual.widget import Widget

from console.model import ConsoleModel
from console.widgets.palette import DEFAULT_PALETTE, Palette


class ModelWidget(Widget):
    """A widget rendered from the model; ``symbol`` is set for per-pair widgets."""

    def __init__(
        self,
        model: ConsoleModel,
        symbol: str | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.model = model
        self.symbol = symbol

    @property
    def palette(self) -> Palette:
        return getattr(self.app, "palette", DEFAULT_PALETTE)
