"""ccxt's Binance, made safe to run unattended, and the offline markets file.

Owns ``GuardedBinance`` (ccxt.pro's Binance whose websocket receive loop counts and drops a
frame it cannot parse instead of dying silently) and ``load_markets_file``, plus the small
value checks the Binance source shares with it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro

from feed.errors import SourceConfigError
from feed.private import redact_text

logger = logging.getLogger("feed.binance")
_LOG_EVERY = 1000  # after the first few, log one bad frame in this many
_TICKER_EVENTS = frozenset({"24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker"})


def _one_line(exc: BaseException | str, limit: int = 200) -> str:
    """First line of an error, URLs redacted: ccxt puts the request URL in its messages."""
    text = exc if isinstance(exc, str) else (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    text = redact_text(text)
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _why(exc: BaseException, limit: int = 300) -> str:
    """``_one_line`` of the error ``exc`` wraps, then of ``exc`` in parentheses: ccxt's
    "ExchangeNotAvailable: binance GET URL" says where, its cause (aiohttp's "Cannot connect to
    host … [Name or service not known]") says why, and why comes first: a narrow screen shows
    the start. Without a cause, ``_one_line(exc)``."""
    head = _one_line(exc, limit)
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is None or not str(cause):
        return head
    tail = _one_line(cause, limit)
    if tail in head:
        return head
    return _one_line(f"{tail} ({head})", limit)


def _positive(x: Any) -> bool:
    return type(x) in (int, float) and math.isfinite(x) and x > 0


def _non_negative(x: Any) -> bool:
    return type(x) in (int, float) and math.isfinite(x) and x >= 0


def load_markets_file(path: str | os.PathLike[str]) -> dict[str, Any] | list[dict[str, Any]]:
    """Read a markets file: ccxt ``load_markets()`` JSON (keyed by symbol) or raw exchangeInfo.

    Returns what ``_install_markets`` accepts; raises SourceConfigError with a one-line reason.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceConfigError(f"{p}: cannot read markets file: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise SourceConfigError(f"{p}: line {exc.lineno}: not JSON: {exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("symbols"), list):
        return [s for s in data["symbols"] if isinstance(s, dict)]  # exchangeInfo
    if isinstance(data, dict) and data and all(isinstance(m, dict) and "id" in m and "symbol" in m for m in data.values()):
        return data  # ccxt markets
    raise SourceConfigError(
        f"{p}: expected ccxt load_markets() JSON (an object keyed by symbol) or Binance exchangeInfo JSON"
    )


class GuardedBinance(ccxt.pro.binance):  # type: ignore[misc]
    """ccxt.pro binance that counts and drops frames its handlers would choke on.

    Without this, one undecodable frame raises inside ccxt's receive callback and the receive
    loop stops for good: nothing more is read from the socket until ccxt's keepalive gives up
    6 minutes later (keepAlive 180 s x 2 missed pongs; measured on ccxt 4.5.90).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.frame_errors = 0  # frames dropped as malformed
        self.unknown_symbol_events = 0  # ticker events for pairs we did not subscribe to
        self.wanted_ids: frozenset[str] | None = None  # market ids we stream; None = accept all

    def _drop(self, counter: str, what: str) -> None:
        n = getattr(self, counter) + 1
        setattr(self, counter, n)
        if n <= 5 or n % _LOG_EVERY == 0:
            logger.warning("binance: dropped %s (%d so far)", _one_line(what, 160), n)

    def client(self, url: str) -> Any:
        client = super().client(url)
        if not getattr(client, "_multipar_guarded", False):
            decode_and_dispatch: Callable[[Any], None] = client.handle_text_or_binary_message

            def guarded(data: Any) -> None:
                try:
                    decode_and_dispatch(data)
                except Exception as exc:  # ccxt's own decoder/handlers raise anything on garbage
                    self._drop("frame_errors", f"frame ({_one_line(exc, 100)})")

            client.handle_text_or_binary_message = guarded
            client._multipar_guarded = True
        return client

    def handle_message(self, client: Any, message: Any) -> None:
        if not isinstance(message, dict | list):
            self._drop("frame_errors", "non-JSON frame")
            return
        data = message
        if isinstance(message, dict) and "stream" in message and isinstance(message.get("data"), dict):
            data = message["data"]  # combined-stream form {"stream": ..., "data": {...}}
        if isinstance(data, dict) and data.get("e") in _TICKER_EVENTS:
            market_id = data.get("s")
            if type(market_id) is not str:
                self._drop("frame_errors", f"{data.get('e')} without a symbol")
                return
            if self.wanted_ids is not None and market_id not in self.wanted_ids:
                self._drop("unknown_symbol_events", f"ticker for unsubscribed pair {market_id[:32]}")
                return
        super().handle_message(client, message)
