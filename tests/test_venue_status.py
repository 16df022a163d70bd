"""A live engine's exchange connection on the operator's screen: the heartbeat carries it
(wire ``VenueMsg``), the console says when a ban starts and ends and when the user stream drops,
and the header shows BANNED or NO STREAM beside the red LIVE badge (that part:
tests/test_console_pilot.py ``test_header_shows_a_ban_and_a_dead_user_stream``)."""

from __future__ import annotations

from console.model import ConsoleModel
from engine.wire.schema import HeartbeatMsg, VenueMsg

NOW = 1_767_225_600.0  # fixed wall clock (epoch s)


def _model() -> ConsoleModel:
    return ConsoleModel(["BTC/USDT"], {}, clock=lambda: 100.0, wall=lambda: NOW)


def _beat(model: ConsoleModel, venue: VenueMsg | None) -> None:
    msg = HeartbeatMsg.from_wire(HeartbeatMsg("engine", 42, 1, venue=venue).to_wire())  # the codec
    model.apply_heartbeat("engine", msg.pid, msg.phase, msg.venue)


def test_a_ban_and_a_dead_stream_are_said_and_shown() -> None:
    model = _model()
    _beat(model, VenueMsg("running"))
    assert model.venue == VenueMsg("running") and not model.events
    until = int((NOW + 120) * 1000)
    _beat(model, VenueMsg("running", banned_until_ms=until, stream_ok=True))
    assert any("banned this IP until" in e.text and e.level == "error" for e in model.events)
    _beat(model, VenueMsg("running", banned_until_ms=int((NOW - 1) * 1000)))
    assert any("ban over" in e.text for e in model.events)
    _beat(model, VenueMsg("running", stream_ok=False, last_error="NetworkError: closed"))
    assert any("user stream down" in e.text and "NetworkError" in e.text for e in model.events)
    _beat(model, VenueMsg("running", stream_ok=True))
    assert any("user stream back" in e.text for e in model.events)


def test_a_paper_engine_sends_no_venue() -> None:
    model = _model()
    _beat(model, None)
    assert model.venue is None and not model.events


def test_the_daemon_notifies_a_ban_and_its_end() -> None:
    from console.daemon.watch import BookWatch

    sent: list[tuple[str, str, str]] = []

    class Watch(BookWatch):
        def __init__(self, model: ConsoleModel) -> None:
            self.model, self.notifier, self.bridge = model, None, None
            self.on_event = lambda kind, text, level: sent.append((kind, text, level))
            self._badges = {}

    model = _model()
    w = Watch(model)
    _beat(model, VenueMsg("running"))
    w._watch_book()
    assert sent == []
    _beat(model, VenueMsg("running", banned_until_ms=int((NOW + 300) * 1000)))
    w._watch_book()
    w._watch_book()  # said once, not every second
    assert [(k, lvl) for k, _t, lvl in sent] == [("banned", "error")] and "no new orders" in sent[0][1]
    _beat(model, VenueMsg("running"))
    w._watch_book()
    assert sent[-1][0] == "banned" and "over" in sent[-1][1] and len(sent) == 2
