"""The local Binance-protocol exchange for the live tests, and their fixtures: ``venue`` (the
exchange on its own thread, one per test module), ``connect`` (a started ``BinanceLiveClient``
on a fresh account, closed after the test) and ``secrets_in_logs`` (every log line and file the
test wrote, scanned for the account's key and secret). tests/conftest.py makes them available to
every test module."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.execution.binance_connect import LiveConfig
from engine.execution.binance_live import BinanceLiveClient
from tests.binance_exchange import BinanceExchange, point_ccxt_at
from tests.core_harness import FakeClock

SYMBOLS = ("BTC/USDT", "ETH/USDT")


class VenueThread:
    """The local exchange on its own thread and event loop (the test thread is the engine's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="venue", daemon=True)
        self.thread.start()
        self.server: BinanceExchange = self.run(self._start())

    async def _start(self) -> BinanceExchange:
        server = BinanceExchange()
        await server.start()
        return server

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def venue() -> Iterator[VenueThread]:
    v = VenueThread()
    try:
        yield v
    finally:
        v.stop()


class Account:
    def __init__(self, venue: VenueThread, balances: dict[str, float], fee_in_bnb: bool = False) -> None:
        self.key = f"key-{uuid.uuid4().hex}"
        self.secret = f"secret-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        venue.server.add_account(self.key, self.secret, balances=balances, fee_in_bnb=fee_in_bnb,
                                 futures_balance=10_000.0)  # fmt: skip


@pytest.fixture
def secrets_in_logs(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> Iterator[list[str]]:
    """Every log line of the client (and of ccxt under it) at DEBUG, and every file the test
    wrote (the book), scanned for the test's secrets when the test ends: the list is filled by
    the test with what must never appear."""
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    yield secrets
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for s in secrets:
                assert s.encode() not in data, f"{path.name} holds a secret"
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    # the exchange's own loggers, and plain ccxt's (a test's own helper client; the live
    # client's ccxt instances log through engine.live.ccxt) are not the client's output
    ours = [r for r in records if not r.name.startswith(("binance_exchange", "binance_server", "aiohttp.access", "ccxt."))]
    assert ours, "nothing was logged: the scan would prove nothing"
    text = "\n".join(logging.Formatter("%(name)s %(message)s").format(r) for r in ours)
    for s in secrets:
        assert s not in text


@pytest.fixture
def connect(venue: VenueThread, secrets_in_logs: list[str]) -> Iterator[Callable[..., tuple[BinanceLiveClient, Account]]]:
    clients: list[BinanceLiveClient] = []

    def make(clock: FakeClock | None = None, balances: dict[str, float] | None = None,
             account: Account | None = None, **cfg: Any) -> tuple[BinanceLiveClient, Account]:  # fmt: skip
        acct = account or Account(venue, balances or {"USDT": 10_000.0, "BTC": 0.05, "BNB": 0.0})
        secrets_in_logs.extend([acct.secret, acct.key])
        server = venue.server

        def configure(ex: Any) -> None:
            point_ccxt_at(ex, server.rest_url, None, server)

        options = {"recv_window_ms": 500, "stream_silence_s": 0.5, "poll_every_s": 0.3, **cfg}
        if "rest_url" not in options:  # else: pointed by URL only, as the engine's --rest-url/--ws-url do
            options["configure"] = configure
        client = BinanceLiveClient(LiveConfig(acct.key, acct.secret, SYMBOLS, **options), clock or FakeClock())
        clients.append(client)
        client.start(10.0)
        return client, acct

    yield make
    for c in clients:
        c.close()
        assert not c.worker.thread or not c.worker.thread.is_alive()
