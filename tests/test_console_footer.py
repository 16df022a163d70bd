"""The board's footer enables and dims keys in place (console/widgets/footer.py): a position
opening changes the flatten keys without recomposing the footer, so the board is not laid
out again (at 1,000 pairs a relayout was 46 % of the console's CPU)."""

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
