"""What the board pays per pair (issue 16): the footer enables and dims keys in place
(console/widgets/footer.py), so a binding change does not lay the board out again (at 1,000
pairs a relayout was 46 % of the console's CPU); a pane sends a part only when its text
changed, and its stats at half its price rate (terminal bytes)."""

from __future__ import annotations

from textual.widgets._footer import FooterKey

from console.widgets.footer import BoardFooter
from tests.console_fakes import WIDE, FakeBackend, pair_msg, position_msg
from tests.test_console_pilot import build, ready


def _keys(footer: BoardFooter) -> dict[str, FooterKey]:
    return {k.action: k for k in footer.query(FooterKey)}


async def test_a_position_opening_enables_flatten_in_place() -> None:
    backend = FakeBackend()
    async with build(backend).run_test(size=WIDE) as pilot:
        app = await ready(pilot, backend)
        footer = app.main.query_one(BoardFooter)
        sym = app.selected_symbol
        assert sym is not None
        app.model.apply_pair(pair_msg(sym))  # flat
        app._refresh_binding_state(force=True)
        await pilot.pause()
        await pilot.pause()
        before = _keys(footer)
        assert before["flatten"].has_class("-disabled")
        app.model.apply_pair(pair_msg(sym, position=position_msg(sym, 0.5, 100.0, 101.0)))
        app._refresh_binding_state(force=True)
        await pilot.pause()
        await pilot.pause()
        after = _keys(footer)
        assert not after["flatten"].has_class("-disabled")  # enabled: shown undimmed
        assert not after["flatten"]._disabled  # and a click presses it
        assert all(after[a] is before[a] for a in before)  # the same widgets: no recompose


async def test_a_pane_sends_changed_parts_and_its_stats_every_other_turn() -> None:
    backend = FakeBackend()
    async with build(backend).run_test(size=WIDE) as pilot:
        app = await ready(pilot, backend)
        pane = next(iter(app.main.panes.values()))
        sent: list[str] = []
        pane.quote.refresh = lambda *a, **k: sent.append("quote")  # type: ignore[method-assign]
        pane.stats.refresh = lambda *a, **k: sent.append("stats")  # type: ignore[method-assign]
        pane.quote._shown = pane.quote.draw()
        pane.stats._shown = pane.stats.draw()
        pane.repaint(full=True)
        assert sent == []  # nothing shown changed: nothing sent
        for last in (101.0, 102.0, 103.0, 104.0):
            app.model.apply_pair(pair_msg(pane.symbol, last=last))
            pane.quote._shown = pane.stats._shown = None  # as if each one were sent
            pane.repaint(full=False)
        assert sent.count("quote") == 4 and sent.count("stats") == 2
        if (pane._turns + 1) % 2 == 0:  # the full repaint below must fall on a turn whose
            pane.repaint(full=False)  # stats the 2 Hz rule skips, or it would prove nothing
        sent.clear()
        assert (pane._turns + 1) % 2 == 1
        pane.stats._shown = None
        pane.repaint(full=True)  # a mode, position or staleness change: everything at once
        assert "stats" in sent
