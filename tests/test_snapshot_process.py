"""The snapshot on attach across real processes: the engine subprocess answers ``snapshot`` on
its ROUTER with the book's rows and every pair, numbered so the live stream continues it; a
console attached to the real daemon (which relays the request to the engine) applies it at start
(the model holds the book's decisions as soon as the console is ready) and again after the
engine restarts, with nothing shown twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.wire import commands as engine_wire
from engine.wire.schema import SnapshotMsg
from tests.procs import SYMBOLS, Commander, Subscriber, stack, until
from tests.store_seed import seed_history, seed_open_position
from tests.test_daemon import attached

pytestmark = pytest.mark.timeout(120)


def seed(db: Path) -> list[str]:
    """One open BTC position (its decision and fill) and two rejected ETH decisions and an
    event; returns every decision key, oldest first."""
    seed_open_position(db)
    return ["BTC/USDT|seed|", *seed_history(db)]


def test_the_engine_process_answers_a_snapshot_with_the_book_and_every_pair() -> None:
    with stack() as s:
        keys = seed(s.db)
        s.start("feed", s.feed_cmd())
        sub = Subscriber(s.engine_pub, [engine_wire.TOPIC_PAIR])
        s.start("engine", s.engine_cmd_line())
        cmd = Commander(s.engine_cmd)
        try:
            # a warming engine answers between history requests
            sub.wait_for(lambda t, m: m["symbol"] == "BTC/USDT" and m.get("last") is not None)  # left out before a price
            reply = cmd.send(engine_wire.SNAPSHOT, timeout_s=15.0)
            assert "ok" not in reply, reply  # a snapshot, not an ack
            snap = SnapshotMsg.from_wire(reply)
            assert snap.id == f"t{cmd.n}"
            assert [p.symbol for p in snap.pairs] == SYMBOLS
            assert all(p.closes for p in snap.pairs)
            btc = snap.pairs[0]
            assert btc.position is not None and btc.position.qty == pytest.approx(0.004)
            assert snap.portfolio.positions == 1 and snap.portfolio.capital == 10_000
            got = [d.key for d in snap.decisions]
            assert got[0].startswith(keys[0]) and got[1:] == keys[1:], got
            assert [d.approved for d in snap.decisions] == [True, False, False]
            assert [f.symbol for f in snap.fills] == ["BTC/USDT"] and snap.fills[0].fill_id.endswith("/F1")
            assert [(e.kind, e.level, e.message) for e in snap.events] == [
                ("rearm", "info", "re-armed 3 pair(s) (seeded)")
            ]
            assert set(snap.seq) == {t.decode() for t in engine_wire.TOPICS}
            # the live stream continues the snapshot's numbering: the next pair is seq + 1
            nxt = snap.seq["pair"] + 1
            _, m = sub.wait_for(lambda t, m: m["seq"] >= nxt, timeout_s=5.0)
            assert m["seq"] == nxt
        finally:
            cmd.close()
            sub.close()
        assert s.stop("engine") == 0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mpn-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def test_the_console_holds_the_books_history_when_ready_and_after_a_restart(
    short_dir: Path,
) -> None:
    db = short_dir / "paper.sqlite"
    keys = seed(db)
    # attached() asserts the daemon and the console are ready (both children beat, snapshot
    # applied) within 30 s, naming the engine's log otherwise
    async with attached(short_dir, db=db) as backend:
        model = backend.model
        bridge = backend.bridge  # the console's
        assert bridge.snapshots == 1 and not bridge.holding
        # right after start, before any decision is made live: the book's
        got = [d.key for d in model.decisions]
        assert got[0].startswith(keys[0]) and got[1:3] == keys[1:], got
        assert [f.symbol for f in model.fills][:1] == ["BTC/USDT"]
        assert model.pairs["BTC/USDT"].has_position and model.portfolio is not None
        texts = [e.text for e in model.events]
        assert (
            "attached: 1 open position, 3 decisions, 1 fills, 1 events recovered from the book"
            in texts
        )
        assert "[book] re-armed 3 pair(s) (seeded)" in texts
        assert any(t.startswith("[book] fill BTC/USDT buy 0.004") for t in texts)

        # the engine dies and comes back: a new snapshot, nothing shown twice
        sup = backend.supervisor
        assert sup is not None
        dead = sup.pid("engine")
        assert dead is not None
        os.kill(dead, signal.SIGKILL)
        await until(lambda: bridge.snapshots == 2, timeout_s=40, what="the new engine's snapshot")
        assert backend.client.synced and sup.pid("engine") not in (None, dead)
        shown = [d.key for d in model.decisions]
        assert len(shown) == len(set(shown)) and shown[1:3] == keys[1:]
        fills = [f.fill_id for f in model.fills]
        assert len(fills) == len(set(fills))
        keyed = [e.key for e in model.events if e.key]
        assert len(keyed) == len(set(keyed))  # every book line once
        texts = [e.text for e in model.events]
        assert texts.count("[book] re-armed 3 pair(s) (seeded)") == 1
        assert sum(t.startswith("attached: ") for t in texts) == 2
        assert bridge.bad_messages == 0
