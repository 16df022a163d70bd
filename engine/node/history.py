"""The feed's history server as the trading core's ``HistorySource`` port."""

from __future__ import annotations

import zmq

from engine.core.candles import Candle
from engine.core.ports import HistoryUnavailable
from engine.wire.liveness import HISTORY_REQUEST_TIMEOUT_S
from feed.history import request_history
from feed.wire import WireError


class FeedHistory:
    def __init__(self, endpoint: str, timeout_s: float = HISTORY_REQUEST_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s

    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        try:
            rows = request_history(self.endpoint, symbol, timeframe_s, limit, timeout_s=self.timeout_s)
        except (TimeoutError, WireError, OSError, zmq.ZMQError) as exc:
            raise HistoryUnavailable(str(exc) or type(exc).__name__) from None
        return [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows]
