"""The kill switch's per-pair progress (console/kill_progress.py) from message sequences, as the
console's model hands them over (its ``tap``): paper closing everything at once, live with a
resting stop cancelled then the close filled, a refused close with its reason, the daemon's
fallback ack, the exchange's ``kill_check`` answer; and the panel's lines
(console/widgets/kill_progress.py) drawn from it."""

from __future__ import annotations

from console.kill_progress import (
    BLOCKED,
    CANCELLED,
    CANCELLING,
    CLOSING,
    FAILED,
    FLAT,
    HALTED,
    WAITING,
    KillProgress,
    failures,
)
from console.model import Ack, ConsoleModel
from console.widgets.kill_progress import pair_line, trail
from console.widgets.palette import DEFAULT_PALETTE
from engine.wire.schema import FillMsg, OrderMsg
from tests.console_fakes import (
    BTC_QTY,
    ETH_QTY,
    FROZEN_MS,
    FrozenClock,
    apply_board,
    btc_state,
    eth_state,
    notice_msg,
)

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
ALL_HALTED = dict.fromkeys(SYMBOLS, "HALTED")
CLOSING_ACK = "all pairs HALTED, 0 position(s) flattened, 2 closing (orders sent)"


def board() -> ConsoleModel:
    """The reference board: BTC long 0.0082, ETH long 0.146, SOL flat."""
    model = ConsoleModel(SYMBOLS, {}, clock=FrozenClock(), wall=FrozenClock())
    apply_board(model)
    return model


def started(model: ConsoleModel, cmd: str = "kill", *, live: bool = False) -> KillProgress:
    kp = KillProgress.start(cmd, model, live=live)
    model.tap = kp.apply
    return kp


def order(symbol: str, cid: str, status: str, *, side: str = "sell", qty: float = BTC_QTY,
          reason: str = "kill", avg: float = 0.0, message: str = "") -> OrderMsg:  # fmt: skip
    filled = qty if status == "filled" else 0.0
    return OrderMsg(cid, symbol, side, qty, status, reason, f"{symbol}|{reason}", filled, avg,
                    message, FROZEN_MS)  # fmt: skip


def fill(symbol: str, cid: str, qty: float, price: float, side: str = "sell") -> FillMsg:
    return FillMsg(f"{cid}/F1", cid, symbol, side, qty, price, 0.01, FROZEN_MS, "kill")


def stages(kp: KillProgress) -> dict[str, str]:
    return {s: p.stage for s, p in kp.pairs.items()}


def kill_ack(message: str, ok: bool = True, **kw: object) -> Ack:
    return Ack("kill", ok, message, modes=ALL_HALTED, halted=True, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- what is tracked


def test_the_pairs_with_a_position_or_an_open_order_at_the_kill() -> None:
    model = board()
    model.apply_order(order("SOL/USDT", "mp-sol", "accepted", side="buy", qty=5.0, reason="signal"))
    kp = started(model)
    assert list(kp.pairs) == SYMBOLS  # BTC and ETH long, SOL an entry order in flight
    assert (kp.pairs["BTC/USDT"].side, kp.pairs["BTC/USDT"].qty) == ("long", BTC_QTY)
    assert stages(kp) == {"BTC/USDT": WAITING, "ETH/USDT": WAITING, "SOL/USDT": CANCELLING}
    assert kp.ack is None and not kp.done


def test_nothing_open_is_done_at_the_ack() -> None:
    model = board()
    for state in (btc_state, eth_state):
        model.apply_pair(state(position=None))
    kp = started(model)
    assert kp.pairs == {}
    kp.apply_ack(kill_ack("all pairs HALTED, 0 position(s) flattened"), 40.0)
    assert kp.done and kp.exchange()[0] == "muted"


# ---------------------------------------------------------------------- paper


def test_paper_everything_flat_at_once() -> None:
    model = board()
    kp = started(model)
    # the engine closes synchronously: its fills may reach the console before its ack
    model.apply_fill(fill("BTC/USDT", "mp-btc", BTC_QTY, 36_512.3))
    kp.apply_ack(kill_ack("all pairs HALTED, 2 position(s) flattened"), 85.0)
    assert stages(kp) == {"BTC/USDT": FLAT, "ETH/USDT": FLAT}
    assert kp.pairs["BTC/USDT"].price == 36_512.3
    assert kp.pairs["ETH/USDT"].price is None  # its fill is still on the way
    model.apply_fill(fill("ETH/USDT", "mp-eth", ETH_QTY, 2_050.5))
    model.apply_order(order("ETH/USDT", "mp-eth", "filled", qty=ETH_QTY, avg=2_050.5))
    model.apply_pair(eth_state(mode="HALTED", position=None))
    assert kp.pairs["ETH/USDT"].price == 2_050.5 and kp.pairs["ETH/USDT"].mode == HALTED
    assert kp.exchange() == ("muted", "not applicable: paper, nothing rests at an exchange")
    assert kp.done and kp.counts() == {"flat": 2, "problem": 0, "busy": 0}


def test_paper_ack_before_any_message_then_the_fills() -> None:
    model = board()
    kp = started(model)
    kp.apply_ack(kill_ack("all pairs HALTED, 2 position(s) flattened"), 85.0)
    assert set(stages(kp).values()) == {FLAT}
    assert trail(kp.pairs["BTC/USDT"]) == ["LONG 0.0082", "closed"]
    model.apply_fill(fill("BTC/USDT", "mp-btc", BTC_QTY, 36_512.3))
    assert trail(kp.pairs["BTC/USDT"]) == ["LONG 0.0082", "sell 0.0082 @ 36,512.30"]


# ---------------------------------------------------------------------- live


def test_live_resting_stop_cancelled_then_the_close_filled() -> None:
    model = board()
    # the position's protective stop rests at the exchange: the pair's latest order
    model.apply_order(order("BTC/USDT", "mp-stop", "accepted", reason="stop"))
    kp = started(model, live=True)
    assert stages(kp) == {"BTC/USDT": CANCELLING, "ETH/USDT": WAITING}  # the kill is sent
    kp.apply_ack(kill_ack(CLOSING_ACK), 9.0)
    assert stages(kp) == {"BTC/USDT": CANCELLING, "ETH/USDT": HALTED}
    model.apply_pair(btc_state(mode="HALTED", exit_pending="kill"))
    model.apply_order(order("BTC/USDT", "mp-stop", "cancelled", reason="stop", message="kill"))
    assert stages(kp)["BTC/USDT"] == CANCELLED
    model.apply_order(order("BTC/USDT", "mp-close", "new"))
    model.apply_order(order("ETH/USDT", "mp-eth", "accepted", qty=ETH_QTY))
    assert stages(kp) == {"BTC/USDT": CLOSING, "ETH/USDT": CLOSING}
    assert trail(kp.pairs["BTC/USDT"]) == ["LONG 0.0082", "stop cancelled", "sell 0.0082 sent"]
    model.apply_fill(fill("BTC/USDT", "mp-close", 0.005, 36_500.0))
    assert stages(kp)["BTC/USDT"] == CLOSING  # partly filled
    assert trail(kp.pairs["BTC/USDT"])[-1] == "sell 0.005/0.0082 @ 36,500.00"
    model.apply_fill(fill("BTC/USDT", "mp-close", 0.0032, 36_510.0))
    model.apply_order(order("BTC/USDT", "mp-close", "filled", avg=36_503.9))
    assert stages(kp)["BTC/USDT"] == FLAT and kp.pairs["BTC/USDT"].price == 36_503.9
    model.apply_pair(btc_state(mode="HALTED", position=None))
    assert kp.exchange()[0] == "pending" and not kp.done
    model.apply_order(order("ETH/USDT", "mp-eth", "filled", qty=ETH_QTY, avg=2_049.0))
    model.apply_pair(eth_state(mode="HALTED", position=None))
    assert not kp.done  # the exchange has not been asked yet
    model.apply_notice(notice_msg("kill verified at the exchange: no open order", "info", CHECK))
    assert kp.exchange() == ("info", "kill verified at the exchange: no open order")
    assert kp.done


CHECK = "kill_check"


def test_kill_check_says_what_is_left() -> None:
    model = board()
    kp = started(model, live=True)
    kp.apply_ack(kill_ack(CLOSING_ACK), 9.0)
    text = "kill: 1 order(s) still open at the exchange (ETH/USDT); the book still holds ETH/USDT"
    model.apply_notice(notice_msg(text, "error", CHECK))
    assert kp.exchange() == ("error", text)
    model.apply_notice(notice_msg("kill switch: all pairs HALTED", "error", "kill"))
    assert kp.exchange() == ("error", text), "only the kill_check notice is the exchange's answer"


def test_a_refused_close_shows_the_order_message_then_a_retry_moves_on() -> None:
    model = board()
    kp = started(model, live=True)
    kp.apply_ack(kill_ack(CLOSING_ACK), 9.0)
    model.apply_order(order("ETH/USDT", "mp-e1", "rejected", qty=ETH_QTY,
                            message="-2010 Account has insufficient balance"))  # fmt: skip
    p = kp.pairs["ETH/USDT"]
    assert p.stage == FAILED and p.why == "-2010 Account has insufficient balance"
    assert trail(p)[-1] == "sell 0.146 rejected: -2010 Account has insufficient balance"
    model.apply_order(order("ETH/USDT", "mp-e2", "new", qty=ETH_QTY))  # the engine retries
    assert p.stage == CLOSING


def test_the_acks_could_not_flatten_reasons_per_pair() -> None:
    model = board()
    kp = started(model)
    msg = ("HALTED; 0 position(s) flattened; could not flatten BTC/USDT (exit pending: no price "
           "(first tick)), ETH/USDT (min notional 5.0)")  # fmt: skip
    kp.apply_ack(kill_ack(msg, ok=False), 30.0)
    assert stages(kp) == {"BTC/USDT": FAILED, "ETH/USDT": FAILED}
    assert kp.pairs["BTC/USDT"].why == "exit pending: no price (first tick)"
    assert kp.pairs["ETH/USDT"].why == "min notional 5.0"
    assert trail(kp.pairs["ETH/USDT"]) == ["LONG 0.146", "min notional 5.0"]
    assert kp.counts() == {"flat": 0, "problem": 2, "busy": 0}
    # the pending exit goes out on the first tick and fills
    model.apply_order(order("BTC/USDT", "mp-b", "filled", avg=36_400.0))
    assert stages(kp)["BTC/USDT"] == FLAT


def test_failures_parsing() -> None:
    syms = ["BTC/USDT", "XBTC/USDT", "ETH/USDT"]
    msg = "2 position(s) flattened; could not flatten XBTC/USDT (no price), BTC/USDT (blocked)"
    assert failures(msg, syms) == {"XBTC/USDT": "no price", "BTC/USDT": "blocked"}
    assert failures("all pairs HALTED, 2 position(s) flattened", syms) == {}


def test_an_exit_blocked_notice() -> None:
    model = board()
    kp = started(model, "flatten_all", live=True)
    kp.apply_ack(Ack("flatten_all", True, "0 position(s) flattened, 2 closing (orders sent)"), 9.0)
    assert stages(kp) == {"BTC/USDT": WAITING, "ETH/USDT": WAITING}
    model.apply_notice(notice_msg("BTC/USDT flatten_all exit not filled: reduce-only refused",
                                  "warning", "exit_blocked"))  # fmt: skip
    assert stages(kp)["BTC/USDT"] == BLOCKED
    assert kp.pairs["BTC/USDT"].why == "reduce-only refused"


def test_a_flatten_all_ignores_idle_pairs_and_what_trades_after_flat() -> None:
    model = board()
    kp = started(model, "flatten_all")
    model.apply_order(order("SOL/USDT", "mp-sol", "filled", side="buy", qty=5.0, reason="signal"))
    assert "SOL/USDT" not in kp.pairs  # SOL is ACTIVE: its entry is not the flatten's
    model.apply_fill(fill("BTC/USDT", "mp-b", BTC_QTY, 36_500.0))
    model.apply_order(order("BTC/USDT", "mp-b", "filled", avg=36_500.0))
    model.apply_pair(btc_state(position=None))
    assert stages(kp)["BTC/USDT"] == FLAT
    model.apply_order(order("BTC/USDT", "mp-new", "new", side="buy", reason="signal"))
    model.apply_pair(btc_state())
    assert stages(kp)["BTC/USDT"] == FLAT and "mp-new" not in kp.pairs["BTC/USDT"].orders


def test_a_kill_takes_in_an_order_of_a_pair_thought_idle() -> None:
    model = board()
    kp = started(model, live=True)
    model.apply_order(
        order("SOL/USDT", "mp-sol", "cancelled", side="buy", qty=5.0, reason="signal")
    )
    assert stages(kp)["SOL/USDT"] == FLAT  # nothing held, its order cancelled: nothing left


# ---------------------------------------------------------------------- the daemon's fallback


def test_fallback_ack_flattened_from_the_book() -> None:
    model = board()
    kp = started(model, live=True)
    text = "engine hung: daemon flattened 1 position from the store, all pairs HALTED"
    kp.apply_ack(kill_ack(text, elapsed_ms=1350.0, fallback=True, flat=["BTC/USDT"]), 1350.0)
    assert stages(kp) == {"BTC/USDT": FLAT, "ETH/USDT": HALTED}
    assert trail(kp.pairs["BTC/USDT"]) == ["LONG 0.0082", "closed by the daemon's fallback"]
    level, line = kp.exchange()
    assert level == "warning" and "fallback" in line
    # the restarted engine's state: ETH flat too
    model.apply_pair(eth_state(mode="HALTED", position=None))
    assert stages(kp)["ETH/USDT"] == FLAT and kp.done


def test_fallback_on_paper_needs_no_exchange() -> None:
    model = board()
    kp = started(model)
    ack = kill_ack("engine hung: daemon flattened 2 positions from the store, all pairs HALTED",
                   fallback=True, flat=["BTC/USDT", "ETH/USDT"])  # fmt: skip
    kp.apply_ack(ack, 1350.0)
    assert kp.done and kp.exchange()[0] == "muted"


def test_fallback_that_failed() -> None:
    model = board()
    kp = started(model, live=True)
    text = (
        "engine hung and flatten from the store FAILED: timeout; engine restarted, press kill again"
    )
    kp.apply_ack(Ack("kill", False, text, 8000.0, fallback=True), 8000.0)
    assert stages(kp) == {"BTC/USDT": WAITING, "ETH/USDT": WAITING}
    assert kp.exchange()[0] == "error" and not kp.done


# ---------------------------------------------------------------------- the panel's lines


def test_a_pair_line_keeps_the_newest_steps() -> None:
    model = board()
    model.apply_order(order("BTC/USDT", "mp-stop", "accepted", reason="stop"))
    kp = started(model, live=True)
    model.apply_order(order("BTC/USDT", "mp-stop", "cancelled", reason="stop"))
    model.apply_order(order("BTC/USDT", "mp-close", "filled", avg=36_503.9))
    p = kp.pairs["BTC/USDT"]
    wide = pair_line(p, DEFAULT_PALETTE, 100, 8).plain
    assert wide.split()[:3] == ["BTC/USDT", "flat", "✓"]
    assert "LONG 0.0082 › stop cancelled › sell 0.0082 @ 36,503.90" in wide
    narrow = pair_line(p, DEFAULT_PALETTE, 50, 8).plain
    assert len(narrow) <= 50 and narrow.endswith("sell 0.0082 @ 36,503.90")
    assert "… › " in narrow
