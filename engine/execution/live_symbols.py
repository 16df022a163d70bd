"""Pairs added to a running live client (a safe-list reload while trading live).

Owns ``add_symbols``, a coroutine run on the live worker's loop: the exchange's rules for the
new symbols from the markets ccxt already loaded (the markets are loaded again once when one is
missing; USDT-M ones too when the first futures pair is added), a symbol the exchange does not
list or does not trade refused with the reason before anything changes; then, as at start, a futures pair's leverage is set (hedge mode refused when
it is the first futures pair), the worker's settings, order ledger and user streams take the
new symbols in, so polling, the venue view (reconciliation) and the kill switch cover them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.core.markets import MarketRules, MarketRulesError
from engine.execution.binance_connect import LiveConfig, LiveConfigError
from engine.execution.binance_rules import rules_from_markets

if TYPE_CHECKING:
    from engine.execution.live_worker import LiveWorker

log = logging.getLogger("engine.live")


class SymbolsRefused(RuntimeError):
    """The exchange cannot trade a symbol asked for: one line, nothing was changed."""


def _untradable(markets: Mapping[str, Any], venue: Mapping[str, str]) -> list[str]:
    out = []
    for v in venue.values():
        m = markets.get(v)
        if m is None:
            out.append(f"{v} is not listed by the exchange")
        elif m.get("active") is False:
            out.append(f"{v} is not trading at the exchange (status {(m.get('info') or {}).get('status', '?')})")
    return out


async def add_symbols(worker: LiveWorker, added: Mapping[str, int | None]) -> tuple[LiveConfig, dict[str, MarketRules]]:
    """Take ``added`` (core symbol -> leverage for a USDT-M pair, None for spot) into the
    running worker; its new settings and the exchange's rules for the added symbols. Raises
    ``SymbolsRefused`` (nothing changed) when one cannot be traded."""
    cfg = worker.cfg
    new = {s: lev for s, lev in added.items() if s not in cfg.symbols}
    futures = {**cfg.futures, **{s: lev for s, lev in new.items() if lev is not None}}
    try:
        after = dataclasses.replace(cfg, symbols=(*cfg.symbols, *new), futures=futures)
    except LiveConfigError as exc:
        raise SymbolsRefused(str(exc)) from None
    venue = {s: after.venue_symbol(s) for s in new}
    if futures and not cfg.futures:  # a spot-only start loaded no USDT-M markets: load them too
        for ex in (worker.rest, worker.pro):
            ex.options.setdefault("fetchMarkets", {})["types"] = ["spot", "linear"]
    if any(v not in worker.markets for v in venue.values()):  # listed since the start? ask once
        worker.markets = await worker.api.call("markets", "load_markets", True)
        worker.pro.set_markets(worker.rest.markets, worker.rest.currencies)
    why = _untradable(worker.markets, venue)
    if why:
        raise SymbolsRefused("; ".join(why))
    try:
        rules = rules_from_markets(worker.markets, venue.values())
    except MarketRulesError as exc:
        raise SymbolsRefused(str(exc)) from None
    lev_new = {s: lev for s, lev in new.items() if lev is not None}
    if lev_new and not cfg.futures:
        mode = await worker.api.call("futures position mode", "fetch_position_mode", venue[next(iter(lev_new))])
        if mode.get("hedged"):
            raise SymbolsRefused("the USDT-M futures account is in hedge mode (dual side position): "
                                 "switch it to one-way mode on Binance; the live client trades one-way only")  # fmt: skip
    for s, lev in lev_new.items():
        await worker.api.call(f"{s} leverage", "set_leverage", lev, venue[s])
    worker.cfg = after
    if worker.ledger is not None:
        worker.ledger.markets = {**worker.ledger.markets, **{s: worker.markets[v] for s, v in venue.items()}}
    if worker.streams is not None:
        for mtype in (["future"] if lev_new else []) + (["spot"] if len(lev_new) < len(new) else []):
            await worker.streams.add_type(mtype)
    log.info("live client: %s added, rules from the exchange%s", ", ".join(new) or "nothing",
             "".join(f"; {s} {lev}x" for s, lev in lev_new.items()))  # fmt: skip
    return after, {s: rules[v] for s, v in venue.items()}
