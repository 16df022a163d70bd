"""Starting the live execution client from an environment: the one way the engine process and
the kill switch's fallback (``fallback.py``) reach the exchange.

Owns ``start_live`` and ``LiveUnavailable``. The key and secret come from the environment
(``MULTIPAR_API_KEY`` / ``MULTIPAR_API_SECRET``: console/live.py puts them in the engine's
environment, the daemon keeps them for its fallback), the endpoints from
``MULTIPAR_BINANCE_REST_URL`` / ``MULTIPAR_BINANCE_WS_URL`` when set (a testnet or a local
exchange), never from a command line. ccxt is imported only here, only for a live run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.config import SafeList
from feed.private import ENV_REST_URL, ENV_WS_URL

ENV_API_KEY = "MULTIPAR_API_KEY"  # console/live.py reads and sets these two
ENV_API_SECRET = "MULTIPAR_API_SECRET"


class LiveUnavailable(Exception):
    """The live client cannot start; one line, no secret."""


def start_live(
    environ: Mapping[str, str], cfg: SafeList, symbols: Iterable[str], testnet: bool
) -> tuple[Any, dict[str, Any]]:
    """A started ``BinanceLiveClient`` (markets loaded) and the order boundary from the
    exchange's markets, per symbol. The safe list's ``market: futures`` pairs trade USDT-M
    with their leverage (set at start; hedge mode is refused)."""
    futures = {s: p.leverage for s, p in cfg.pairs.items() if p.enabled and p.market == "futures"}
    key, secret = environ.get(ENV_API_KEY, ""), environ.get(ENV_API_SECRET, "")
    if not key or not secret:
        raise LiveUnavailable(f"set {ENV_API_KEY} and {ENV_API_SECRET} in the engine's environment")
    from engine.execution.binance_connect import LiveConfigError
    from engine.execution.binance_live import BinanceLiveClient, LiveConfig, LiveStartError
    from engine.node.clock import SystemClock

    try:
        cfg = LiveConfig(
            key, secret, symbols=tuple(symbols), futures=futures, testnet=testnet,
            rest_url=environ.get(ENV_REST_URL) or None, ws_url=environ.get(ENV_WS_URL) or None,
        )  # fmt: skip
        client = BinanceLiveClient(cfg, SystemClock())
    except LiveConfigError as exc:
        raise LiveUnavailable(str(exc)) from None
    try:
        rules = client.start()
    except LiveStartError as exc:
        client.close()
        raise LiveUnavailable(f"cannot start trading on Binance: {exc}") from None
    return client, rules
