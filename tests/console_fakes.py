"""Fakes and deterministic state for the console's Pilot and snapshot tests.

Owns ``FakeBackend`` (records every command, answers with configurable acks and delays, and
can play a hung engine whose kill falls back to the console), a safe list built without the
strategy registry, a frozen clock, and builders of the engine's typed messages
(``engine.wire.schema``: ``PairStateMsg``, ``PortfolioMsg``, ``DecisionMsg``, ``OrderMsg``,
``FillMsg``, ``NoticeMsg``, ``HeartbeatMsg``) and of the feed's ``_status`` / ``_hb`` maps, so
tests feed the model what the bridge would (``.to_wire()`` when a test goes through the bridge).
No hand-written engine dict shape: a renamed schema field breaks the fakes too.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from console.attach import decode_ack, to_ack
from console.model import Ack, ConsoleModel
from engine.core.config import (
    EngineConfig,
    PairConfig,
    PortfolioConfig,
    SafeList,
    StrategyParams,
    Tier,
)
from engine.wire.commands import make_ack
from engine.wire.schema import (
    AckMsg,
    CorrelationMsg,
    DecisionBriefMsg,
    DecisionMsg,
    FillMsg,
    HeartbeatMsg,
    IndicatorsMsg,
    NoticeMsg,
    OrderMsg,
    PairStateMsg,
    PortfolioMsg,
    PositionMsg,
    SignalMsg,
)

# 2023-11-14 22:13:20 UTC: every snapshot shows this time.
FROZEN_EPOCH_S = 1_700_000_000.0
FROZEN_MS = int(FROZEN_EPOCH_S * 1000)
FROZEN_NS = int(FROZEN_EPOCH_S * 1_000_000_000)

PAIRS: tuple[tuple[str, Tier, str, float], ...] = (
    ("BTC/USDT", Tier.STABLE, "momentum", 500.0),
    ("ETH/USDT", Tier.STABLE, "mean_reversion", 600.0),
    ("SOL/USDT", Tier.VOLATILE, "breakout", 400.0),
)
BASE_PRICE = {"BTC/USDT": 36_500.0, "ETH/USDT": 2_050.0, "SOL/USDT": 56.2}


SMALL = (80, 24)  # the terminal sizes every console test and snapshot runs at
WIDE = (160, 48)


class FrozenClock:
    """A clock that only moves when a test says so."""

    def __init__(self, t: float = FROZEN_EPOCH_S) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_safe_list(pairs: tuple[tuple[str, Tier, str, float], ...] = PAIRS) -> SafeList:
    """The repo's safe list shape, built without importing the strategy registry.

    ``PairConfig.strategy`` is validated against registered strategies; the console only
    displays the name, so its tests build the pairs unvalidated and stay independent of them.
    """
    portfolio = PortfolioConfig(
        capital_usd=10_000,
        max_total_exposure=0.10,
        max_correlated_positions=2,
        correlation_groups=[["BTC/USDT", "ETH/USDT"]] if len(pairs) > 1 else [],
        stale_after_s=10,
    )
    built = {
        sym: PairConfig.model_construct(
            enabled=True,
            tier=tier,
            strategy=strategy,
            market="spot",
            leverage=1,
            max_position_size_usd=cap,
            params=StrategyParams(),
        )
        for sym, tier, strategy, cap in pairs
    }
    return SafeList.model_construct(
        version=1, portfolio=portfolio, engine=EngineConfig(), pairs=built
    )


# ---------------------------------------------------------------------- wire messages


def closes_for(symbol: str, n: int = 61) -> list[float]:
    """A deterministic, realistic-looking close series (no randomness)."""
    base = BASE_PRICE.get(symbol, 100.0)
    k = sum((i + 1) * ord(c) for i, c in enumerate(symbol)) % 7 + 1
    out = []
    for i in range(n):
        x = i / n
        drift = 0.004 * math.sin(2 * math.pi * x * (k % 3 + 1))
        wiggle = 0.0015 * math.sin(i * 0.9 + k) + 0.0008 * math.cos(i * 2.3 + k)
        out.append(round(base * (1 + drift + wiggle + 0.003 * x), 2 if base > 10 else 4))
    return out


_seq: dict[str, int] = {}


def _next_seq(topic: str) -> int:
    _seq[topic] = _seq.get(topic, 0) + 1
    return _seq[topic]


def position_msg(
    symbol: str,
    qty: float,
    entry: float,
    last: float,
    *,
    stop: float | None = None,
    tp: float | None = None,
    opened_ts: int | None = None,
) -> PositionMsg:
    """An open position; opened 12 min 34 s before the frozen clock unless told."""
    return PositionMsg(
        qty=qty,
        side="long" if qty > 0 else "short",
        entry=entry,
        stop_loss=stop if stop is not None else round(entry * 0.985, 2),
        take_profit=tp if tp is not None else round(entry * 1.03, 2),
        unrealised=round(qty * (last - entry), 2),
        realised=0.0,
        notional=round(abs(qty) * last, 2),
        opened_ts=FROZEN_MS - 754_000 if opened_ts is None else opened_ts,
    )


def pair_msg(
    symbol: str,
    *,
    mode: str = "ACTIVE",
    stale: bool = False,
    last: float | None = None,
    change_pct: float = 0.42,
    tick_age_ms: int = 250,
    position: PositionMsg | None = None,
    signal: SignalMsg | None = None,
    decision: DecisionBriefMsg | None = None,
    exit_pending: str | None = None,
    tier: str = "STABLE",
    strategy: str = "momentum",
    seq: int | None = None,
) -> PairStateMsg:
    """One ``pair`` message (``PairStateMsg``); ``.to_wire()`` is what the engine sends."""
    closes = closes_for(symbol)
    last = closes[-1] if last is None else last
    tick = 0.01 if last > 10 else 0.0001
    return PairStateMsg(
        symbol=symbol,
        mode=mode,
        stale=stale,
        tier=tier,
        strategy=strategy,
        last=last,
        bid=round(last - tick, 4),
        ask=round(last + tick, 4),
        change_pct=change_pct,
        tick_age_ms=tick_age_ms,
        ticks=1200,
        gaps=0,
        bad=0,
        ind=IndicatorsMsg(
            rsi=56.4,
            bb_upper=round(last * 1.01, 2),
            bb_middle=round(last, 2),
            bb_lower=round(last * 0.99, 2),
            bb_pos=0.62,
            ma_fast=round(last * 1.001, 2),
            ma_slow=round(last * 0.998, 2),
            atr=round(last * 0.004, 2),
        ),
        signal=signal,
        decision=decision,
        position=position,
        exit_pending=exit_pending,
        closes=closes,
        ts=FROZEN_NS,
        seq=_next_seq("pair") if seq is None else seq,
    )


def signal_msg(
    kind: str = "BUY", confidence: float = 0.72, entry: float = 100.0, reasoning: str = ""
) -> SignalMsg:
    return SignalMsg(
        type=kind,
        confidence=confidence,
        entry=entry,
        stop_loss=round(entry * 0.985, 2),
        take_profit=round(entry * 1.03, 2),
        reasoning=reasoning or "fast MA crossed above slow; RSI 56 rising",
        ts=FROZEN_MS,
    )


def portfolio_msg(
    *,
    exposure_used: float = 0.0,
    positions: int = 0,
    correlated_cluster: tuple[str, ...] = (),
    unrealised: float = 0.0,
    daily_pnl: float = 0.0,
    halted: bool = False,
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT"),
    entries_stopped: bool = False,
) -> PortfolioMsg:
    """One ``portfolio`` message with a fixed correlation matrix; ``correlated_used`` is the
    size of ``correlated_cluster``, as the engine computes it."""
    fixed = {
        ("BTC/USDT", "ETH/USDT"): 0.86,
        ("BTC/USDT", "SOL/USDT"): 0.42,
        ("ETH/USDT", "SOL/USDT"): 0.51,
    }
    matrix: list[list[float | None]] = []
    for a in symbols:
        row: list[float | None] = []
        for b in symbols:
            row.append(1.0 if a == b else fixed.get((a, b), fixed.get((b, a))))
        matrix.append(row)
    return PortfolioMsg(
        capital=10_000.0,
        cash=round(10_000.0 - exposure_used, 2),
        equity=round(10_000.0 + 1.2 - 0.99 + unrealised, 2),
        realised=1.2,
        unrealised=unrealised,
        fees=0.99,
        daily_pnl=daily_pnl,
        exposure_used=exposure_used,
        exposure_max=1_000.0,
        correlated_max=2,
        halted=halted,
        positions=positions,
        correlated_cluster=list(correlated_cluster),
        corr=CorrelationMsg(list(symbols), matrix),
        ts=FROZEN_NS,
        seq=_next_seq("portfolio"),
        total_pnl=round(1.2 - 0.99 + unrealised, 2),
        day_start_ts=FROZEN_MS - FROZEN_MS % 86_400_000,
        entries_stopped=entries_stopped,
        entries_reason="flatten all" if entries_stopped else "",
    )


def decision_msg(
    symbol: str,
    *,
    approved: bool,
    action: str = "open_long",
    qty: float = 0.0137,
    price: float = 36_512.3,
    reasons: tuple[tuple[str, str], ...] = (),
    ts_ms: int = FROZEN_MS,
    confidence: float = 0.72,
) -> DecisionMsg:
    """One ``decision`` message; ``reasons`` are (check name, reason) of failed checks."""
    checks: list[tuple[str, bool, str]] = [("stop_side", True, ""), ("min_confidence", True, "")]
    checks += [(name, False, reason) for name, reason in reasons]
    if approved:
        checks.append(("exposure_cap", True, ""))
    return DecisionMsg(
        key=f"{symbol}|{ts_ms}|{action}",
        symbol=symbol,
        ts=ts_ms,
        action=action,
        approved=approved,
        signal=signal_msg("BUY", confidence, price),
        qty=qty if approved else 0.0,
        price=price,
        checks=checks,
        seq=_next_seq("decision"),
    )


def fill_msg(
    symbol: str,
    side: str = "buy",
    qty: float = 0.0137,
    price: float = 36_512.3,
    reason: str = "signal",
) -> FillMsg:
    order_id = f"{symbol}|{FROZEN_MS}|open_long"
    return FillMsg(
        fill_id=f"{order_id}/F1",
        order_id=order_id,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=round(qty * price * 0.001, 4),
        ts=FROZEN_MS,
        reason=reason,
        seq=_next_seq("fill"),
    )


def order_msg(
    symbol: str,
    status: str = "filled",
    *,
    side: str = "buy",
    qty: float = 0.0137,
    reason: str = "signal",
    message: str = "",
) -> OrderMsg:
    filled = status == "filled"
    return OrderMsg(
        client_order_id=f"mp-{abs(hash(symbol)) % 10**12:012d}",
        symbol=symbol,
        side=side,
        qty=qty,
        status=status,
        reason=reason,
        decision_key=f"{symbol}|{FROZEN_MS}|BUY",
        filled_qty=qty if filled else 0.0,
        avg_price=36_512.3 if filled else 0.0,
        message=message,
        ts=FROZEN_MS,
        seq=_next_seq("order"),
    )


def notice_msg(message: str, level: str = "error", kind: str = "kill") -> NoticeMsg:
    return NoticeMsg(ts=FROZEN_MS, kind=kind, level=level, message=message, seq=_next_seq("event"))


def engine_heartbeat_msg(pid: int) -> HeartbeatMsg:
    return HeartbeatMsg(
        kind="engine",
        pid=pid,
        ts=FROZEN_NS,
        ticks=123_000,
        decisions=42,
        mode_counts={"ACTIVE": 2, "PAUSED": 1},
        seq=_next_seq("_hb:engine"),
    )


# The feed's control maps are the feed's own format (feed/wire.py), not the engine schema.


def feed_status_map(
    state: str = "connected", reconnects: int = 0, last_error: str | None = None
) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": _next_seq("_status"),
        "state": state,
        "source": "sim",
        "last_error": last_error,
        "reconnects": reconnects,
        "ts": FROZEN_NS,
        "symbols": {s: FROZEN_MS for s, *_ in PAIRS},
    }


FEED_DNS_ERROR = (  # what the Binance feed says with no network (feed/binance_ccxt.py _why)
    "ClientConnectorDNSError: Cannot connect to host api.binance.com:443 ssl:default "
    "[Name or service not known] (ExchangeNotAvailable: binance GET "
    "https://api.binance.com/api/v3/exchangeInfo)"
)
FEED_DOWN_SINCE_NS = FROZEN_NS - 195 * 10**9  # 3 min 15 s before the frozen clock


def feed_down_status_map(error: str = FEED_DNS_ERROR, reconnects: int = 6) -> dict[str, Any]:
    """A Binance feed that never connected: reconnecting since it started, 6 retries."""
    m = feed_status_map("reconnecting", reconnects, error)
    m["source"] = "binance"
    m["since"] = FEED_DOWN_SINCE_NS
    return m


def feed_heartbeat_map(pid: int) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": _next_seq("_hb:feed"),
        "kind": "feed",
        "pid": pid,
        "ts": FROZEN_NS,
        "source": "sim",
        "published": 123_456,
    }


# ---------------------------------------------------------------------- scenarios


def meta_of(symbol: str) -> dict[str, str]:
    for sym, tier, strategy, _ in PAIRS:
        if sym == symbol:
            return {"tier": str(tier), "strategy": strategy}
    return {"tier": "STABLE", "strategy": "momentum"}


BTC_ENTRY = 36_420.0
ETH_ENTRY = 2_041.5
BTC_QTY = 0.0082
ETH_QTY = 0.146


def btc_state(**overrides: Any) -> PairStateMsg:
    last = closes_for("BTC/USDT")[-1]
    kw: dict[str, Any] = dict(
        mode="ACTIVE",
        change_pct=1.23,
        position=position_msg("BTC/USDT", BTC_QTY, BTC_ENTRY, last),
        signal=signal_msg("BUY", 0.72, BTC_ENTRY),
        decision=DecisionBriefMsg(True, "open_long", [], FROZEN_MS - 120_000),
        **meta_of("BTC/USDT"),
    )
    kw.update(overrides)
    return pair_msg("BTC/USDT", **kw)


def eth_state(**overrides: Any) -> PairStateMsg:
    last = closes_for("ETH/USDT")[-1]
    kw: dict[str, Any] = dict(
        mode="PAUSED",
        change_pct=-0.87,
        position=position_msg("ETH/USDT", ETH_QTY, ETH_ENTRY, last),
        signal=signal_msg("HOLD", 0.0, last, "RSI 48 inside the bands; no edge"),
        decision=DecisionBriefMsg(
            False,
            "open_long",
            ["correlated positions 2 >= max 2 (BTC/USDT, ETH/USDT)"],
            FROZEN_MS - 60_000,
        ),
        **meta_of("ETH/USDT"),
    )
    kw.update(overrides)
    return pair_msg("ETH/USDT", **kw)


def sol_state(**overrides: Any) -> PairStateMsg:
    kw: dict[str, Any] = dict(
        mode="ACTIVE",
        stale=True,
        change_pct=0.0,
        tick_age_ms=14_800,
        signal=None,
        **meta_of("SOL/USDT"),
    )
    kw.update(overrides)
    return pair_msg("SOL/USDT", **kw)


def apply_board(model: ConsoleModel) -> None:
    """The reference board: BTC long and ACTIVE, ETH long and PAUSED, SOL flat and STALE,
    one approved and two rejected decisions, feed connected, both children running."""
    model.set_child("feed", state="running", pid=4101, restarts=0)
    model.set_child("engine", state="running", pid=4102, restarts=0)
    model.apply_feed_status(feed_status_map("connected", 0))
    model.apply_heartbeat("feed", feed_heartbeat_map(4101)["pid"])
    model.apply_heartbeat("engine", engine_heartbeat_msg(4102).pid)
    model.apply_pair(btc_state())
    model.apply_pair(eth_state())
    model.apply_pair(sol_state())
    btc_last = closes_for("BTC/USDT")[-1]
    eth_last = closes_for("ETH/USDT")[-1]
    upnl = round(BTC_QTY * (btc_last - BTC_ENTRY) + ETH_QTY * (eth_last - ETH_ENTRY), 2)
    exposure = round(BTC_QTY * btc_last + ETH_QTY * eth_last, 2)
    model.apply_portfolio(
        portfolio_msg(
            exposure_used=exposure,
            positions=2,
            correlated_cluster=("BTC/USDT", "ETH/USDT"),
            unrealised=upnl,
            daily_pnl=upnl + 1.2,
        )
    )
    model.apply_decision(
        decision_msg(
            "BTC/USDT", approved=True, ts_ms=FROZEN_MS - 120_000, price=BTC_ENTRY, qty=BTC_QTY
        )
    )
    model.apply_decision(
        decision_msg(
            "ETH/USDT",
            approved=False,
            ts_ms=FROZEN_MS - 60_000,
            price=2_049.9,
            reasons=(("correlation_cap", "correlated positions 2 >= max 2 (BTC/USDT, ETH/USDT)"),),
        )
    )
    model.apply_decision(
        decision_msg(
            "SOL/USDT",
            approved=False,
            ts_ms=FROZEN_MS - 30_000,
            price=56.41,
            confidence=0.41,
            reasons=(
                ("min_confidence", "confidence 0.41 < min 0.60"),
                ("stale", "no tick for 14.8 s"),
            ),
        )
    )


# ---------------------------------------------------------------------- backend


@dataclass
class FakeBackend:
    """A Backend that records commands and answers like a configurable engine.

    ``acks`` maps a command name to the Ack to return (default: ok); ``delay_s`` delays each
    answer; ``hang`` makes ``command`` never answer (the app's guard must report it);
    ``hung_engine`` makes ``kill`` take the console fallback path and say so; ``board``
    is applied to the model on ``start`` (state as if the bridge had delivered it);
    ``start_error`` makes ``start`` raise.
    """

    mode: str = "PAPER"
    acks: dict[str, Ack] = field(default_factory=dict)
    delay_s: float = 0.0
    hang: bool = False
    hung_engine: bool = False
    board: bool = True
    start_error: str | None = None
    commands: list[tuple[str, str | None]] = field(default_factory=list)
    kills: int = 0
    detaches: bool = False  # True: a console attached to a daemon (q detaches, S stops trading)
    stop_requests: list[bool] = field(default_factory=list)  # stop_trading(flatten=…) calls
    starts: int = 0
    stops: int = 0
    model: ConsoleModel | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, model: ConsoleModel) -> None:
        self.model = model
        self.starts += 1
        if self.start_error is not None:
            self.started.set()
            raise RuntimeError(self.start_error)
        if self.board:
            apply_board(model)
        self.started.set()

    async def command(self, cmd: str, symbol: str | None = None) -> Ack:
        self.commands.append((cmd, symbol))
        if self.hang:
            await asyncio.Event().wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        ack = self.acks.get(cmd)
        if ack is not None:
            return ack
        target = f" {symbol}" if symbol else ""
        halted = False if cmd == "rearm" else None
        return self._ack(
            AckMsg(f"c{len(self.commands)}", cmd, True, f"{cmd}{target} done", halted=halted), 12.0
        )

    async def kill(self) -> Ack:
        self.kills += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        halted = dict.fromkeys(self.model.symbols if self.model else (), "HALTED")
        if self.hung_engine:  # what ProcessBackend's fallback answers
            return Ack(
                "kill",
                True,
                "engine silent for 1000 ms; stopped it and flattened 2 positions from the store",
                elapsed_ms=1350.0,
                fallback=True,
                modes=halted,
                halted=True,
            )
        msg = AckMsg("k1", "kill", True, "halted; 2 positions flattened", halted, halted=True)
        return self._ack(msg, 85.0)

    async def stop_trading(self, *, flatten: bool) -> Ack:
        self.stop_requests.append(flatten)
        return self.acks.get("stop", Ack("stop", True, "stopping"))

    def _ack(self, msg: AckMsg, elapsed_ms: float) -> Ack:
        """An engine ack as the console's client turns it into an ``Ack``, through the real codec."""
        return to_ack(decode_ack(make_ack(msg)), msg.cmd, elapsed_ms)

    async def stop(self) -> None:
        self.stops += 1


def screen_text(app: Any) -> str:
    """The current screen as plain text, exactly as the terminal would show it."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)


# ---------------------------------------------------------------------- reconciliation

from engine.wire.schema import PairCheckMsg, ReconcileMsg, SnapshotMsg  # noqa: E402

BTC_STOP_ORDER = "sell 0.0082 STOP_LOSS_LIMIT stop 35873.7 @ 35837.8 (mp-7a1c00000001)"
FOREIGN_ORDER = "sell 0.5 LIMIT @ 40000 (web_8f3a2c)"  # as VenueOrder.describe() says it
BTC_UNKNOWN_ORDER = "sell 0.0032 LIMIT @ 37210.55 (mp-7a1c00000002)"


def pair_check_msg(symbol: str, verdict: str = "ok", **kw: Any) -> PairCheckMsg:
    """One pair of a reconciliation report (``PairCheckMsg``)."""
    return PairCheckMsg(symbol=symbol, verdict=verdict, **kw)


def btc_mismatch(**kw: Any) -> PairCheckMsg:
    """BTC: the exchange holds less than the book (sold by hand), and an order not ours."""
    fields: dict[str, Any] = dict(
        book_qty=BTC_QTY,
        book_entry=BTC_ENTRY,
        book_stop=35_873.7,
        book_orders=[BTC_STOP_ORDER],
        venue_qty=0.005,
        venue_orders=[BTC_STOP_ORDER, BTC_UNKNOWN_ORDER],
        foreign_orders=[f"{FOREIGN_ORDER}: not ours, left alone"],  # as the engine lists it
        mismatches=[
            "the exchange holds 0.005 BTC, the book 0.0082: 0.0032 sold or moved outside the bot",
            f"an order of ours at the exchange the book does not hold: {BTC_UNKNOWN_ORDER}",
        ],
        mode_before="ACTIVE",
    )
    fields.update(kw)
    return pair_check_msg("BTC/USDT", "mismatch", **fields)


def eth_applied(**kw: Any) -> PairCheckMsg:
    fields: dict[str, Any] = dict(
        book_qty=ETH_QTY,
        book_entry=ETH_ENTRY,
        book_stop=2_010.88,
        venue_qty=ETH_QTY,
        applied=[  # as the engine words them (engine/core/reconcile.py)
            "missed fill booked: sell 0.02 @ 2048.1 (mp-5e0b00000007)",
            "protective stop at 2010.88 missing at the exchange: placed again "
            "(a stop only reduces risk)",
        ],
    )
    fields.update(kw)
    return pair_check_msg("ETH/USDT", "applied", **fields)


def reconcile_msg(
    *pairs: PairCheckMsg,
    ts: int = FROZEN_MS - 35_000,
    trigger: str = "start",
    ok: bool = True,
    error: str = "",
) -> ReconcileMsg:
    """One ``reconcile`` message; without pairs: BTC waiting, ETH applied, SOL agreeing."""
    chosen = list(pairs) or [
        btc_mismatch(),
        eth_applied(),
        pair_check_msg("SOL/USDT", venue_qty=0.0),
    ]
    return ReconcileMsg(
        ts=ts, trigger=trigger, ok=ok, error=error, pairs=chosen, seq=_next_seq("reconcile")
    )


def snapshot_msg(reconcile: ReconcileMsg | None) -> SnapshotMsg:
    """The engine's snapshot of the reference board (BTC HALTED when its reconciliation
    waits), carrying ``reconcile``."""
    waits = reconcile is not None and any(
        p.verdict in ("mismatch", "error") and not p.choice and p.symbol == "BTC/USDT"
        for p in reconcile.pairs
    )
    btc = btc_state(mode="HALTED") if waits else btc_state()
    return SnapshotMsg(
        id="s1",
        portfolio=portfolio_msg(positions=2),
        pairs=[btc, eth_state(), sol_state()],
        seq={"reconcile": reconcile.seq if reconcile is not None else 0},
        ts=FROZEN_NS,
        pid=4102,
        reconcile=reconcile,
    )


@dataclass
class ReconcileBackend(FakeBackend):
    """A FakeBackend attached to a live engine: ``start`` applies the board, then the engine's
    snapshot carrying ``report``; ``command`` also records each command's own fields."""

    report: ReconcileMsg | None = None
    extras: list[dict[str, str]] = field(default_factory=list)

    async def start(self, model: ConsoleModel) -> None:
        await super().start(model)
        if self.start_error is None:
            model.apply_snapshot(snapshot_msg(self.report))

    async def command(self, cmd: str, symbol: str | None = None, **extra: str) -> Ack:
        self.extras.append(dict(extra))
        return await super().command(cmd, symbol)
