"""The console's reload key (issue 17, points 1 and 3): ``C`` previews the diff in the confirm
dialog, ``y`` applies exactly the previewed digest, and the board gains the added pair's pane;
a bad file's one line is shown and nothing is sent. The backend is the FakeBackend with the
daemon's two reload answers scripted (the daemon's side is tests/test_reload_daemon.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.daemon import wire as dwire
from console.screens.confirm import ConfirmScreen
from tests.console_fakes import SMALL, FakeBackend
from tests.test_console_pilot import build, ready, wait_for

BASE = (Path(__file__).resolve().parents[1] / "safe_list.yaml").read_text(encoding="utf-8")
BNB = "\n  BNB/USDT:\n    tier: VOLATILE\n    strategy: breakout\n    max_position_size_usd: 1000\n"


class ReloadBackend(FakeBackend):
    def __init__(self, preview: dict[str, Any]) -> None:
        super().__init__()
        self.preview = preview
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def _request_map(self, cmd: str, symbol: str | None, timeout_s: float, **extra: Any) -> tuple[Any, float]:
        self.sent.append((cmd, extra))
        if cmd == "reload_preview":
            return self.preview, 0.01
        return {"ok": True, "message": "safe list v2 in force: +BNB/USDT; added BNB/USDT"}, 0.01

    async def status(self) -> dwire.StatusMsg | None:
        return dwire.StatusMsg(id="", pid=1, book="b", mode="PAPER", source="sim", uptime_s=1.0, health="healthy",
                               safe_list=(BASE + BNB).splitlines(), config_version=2)  # fmt: skip


async def test_c_previews_y_applies_the_previewed_digest_and_a_pane_appears() -> None:
    backend = ReloadBackend({"ok": True, "message": "safe_list.yaml: +BNB/USDT", "digest": "abc123",
                             "preview": ["+ BNB/USDT: subscribed on the feed, warmed from history, starts ACTIVE"]})  # fmt: skip
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the preview dialog")
        assert "BNB/USDT: subscribed on the feed" in str(app.screen.body)
        await pilot.press("y")
        await wait_for(pilot, lambda: "BNB/USDT" in app.model.pairs, "the BNB pane in the model")
        await wait_for(pilot, lambda: "BNB/USDT" in app.screen.panes, "the BNB pane on the board")
        assert backend.sent == [("reload_preview", {}), ("reload", {"confirm": "abc123"})]
        app.repaint_now()
        await pilot.pause()
        assert app.model.config_version == 2 and "v2" in str(app.screen.header.render())


async def test_a_bad_file_is_one_line_and_nothing_is_sent() -> None:
    line = "not reloaded, the safe list in force is kept: s.yaml: portfolio.capital_usd: Input should be a valid number"
    backend = ReloadBackend({"ok": False, "message": line, "preview": [line]})
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("C")
        await wait_for(pilot, lambda: len(backend.sent) == 1, "the preview asked")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen) and [c for c, _ in backend.sent] == ["reload_preview"]
        assert "BNB/USDT" not in app.model.pairs
        assert any(n.message == line and n.severity == "error" for n in app._notifications)
