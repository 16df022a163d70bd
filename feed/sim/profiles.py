"""Per-symbol profiles of the simulated market: realistic prices, volumes, tiers, betas."""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass

from feed.errors import SourceConfigError

log = logging.getLogger(__name__)


TIERS = ("STABLE", "VOLATILE", "MEME")

# Log-return volatility per minute of market time, by tier (a little livelier than the real
# market). Market time is wall time times --time-scale (1 by default; the demo runs at 30).
TIER_VOL_PER_MIN = {"STABLE": 0.0012, "VOLATILE": 0.0025, "MEME": 0.006}
TIER_SPREAD_BPS = {"STABLE": 1.0, "VOLATILE": 3.0, "MEME": 12.0}
TIER_BETA = {"STABLE": 0.8, "VOLATILE": 0.6, "MEME": 0.4}

EMIT_PROB = 0.9  # a symbol publishes on 90 % of model steps: per-pair arrival jitter
MAX_RATE = 100_000.0
MAX_TIME_SCALE = 3600.0  # market seconds per wall second: at most an hour of market a second
MAX_BATCH_STEPS = 2_000  # steps emitted before yielding to the event loop
MIN_SLEEP_S = 0.001  # below this, batch steps instead of sleeping per tick (high rates)
MAX_SLEEP_S = 0.25  # bounds how long a set stop event goes unnoticed
HIST_SUBSTEPS = 16  # model steps per history candle (its high/low come from these)
HIST_CHUNK = 250  # history candles generated per deterministic chunk
HIST_MODEL_CANDLE_S = 60.0  # history runs the model at the 1m scale, volatility rescaled to
# the candle's market seconds (timeframe x time scale)
MAX_BAR_SECONDS = 6 * 3600  # 1-second bars of published ticks kept for history (per symbol)
DAY_S = 86_400.0

_STABLECOINS = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "DAI", "TUSD", "USDP", "USD"})

# base: (USD price, 24h quote volume in USD, default tier, beta to the market factor)
_KNOWN: dict[str, tuple[float, float, str, float]] = {
    "BTC": (60_000.0, 1.5e9, "STABLE", 0.92),
    "ETH": (3_000.0, 8.0e8, "STABLE", 0.88),
    "SOL": (150.0, 3.0e8, "VOLATILE", 0.62),
    "BNB": (580.0, 1.0e8, "VOLATILE", 0.70),
    "XRP": (0.55, 1.5e8, "VOLATILE", 0.60),
    "ADA": (0.45, 4.0e7, "VOLATILE", 0.65),
    "AVAX": (30.0, 4.0e7, "VOLATILE", 0.65),
    "LINK": (14.0, 3.0e7, "VOLATILE", 0.65),
    "DOT": (6.0, 2.0e7, "VOLATILE", 0.60),
    "LTC": (75.0, 3.0e7, "VOLATILE", 0.65),
    "TRX": (0.12, 3.0e7, "VOLATILE", 0.40),
    "TON": (6.0, 3.0e7, "VOLATILE", 0.45),
    "NEAR": (5.0, 3.0e7, "VOLATILE", 0.60),
    "ARB": (0.8, 3.0e7, "VOLATILE", 0.60),
    "OP": (1.8, 2.0e7, "VOLATILE", 0.60),
    "SUI": (1.2, 5.0e7, "VOLATILE", 0.55),
    "APT": (8.0, 2.0e7, "VOLATILE", 0.55),
    "POL": (0.5, 2.0e7, "VOLATILE", 0.60),
    "MATIC": (0.5, 2.0e7, "VOLATILE", 0.60),
    "DOGE": (0.12, 1.0e8, "MEME", 0.50),
    "SHIB": (0.000018, 3.0e7, "MEME", 0.45),
    "PEPE": (0.00001, 6.0e7, "MEME", 0.40),
    "WIF": (2.0, 4.0e7, "MEME", 0.40),
    "BONK": (0.00002, 3.0e7, "MEME", 0.40),
    "FLOKI": (0.00015, 2.0e7, "MEME", 0.40),
}


def _unit_hash(text: str) -> float:
    """A number in [0, 1) fixed by the text (crc32: stable across runs, unlike hash())."""
    return zlib.crc32(text.encode()) / 2**32


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """Static parameters of one simulated symbol."""

    symbol: str
    price: float  # start price (quote units)
    tier: str
    sigma_s: float  # log-return volatility per second of market time
    beta: float  # loading on the market factor
    spread_bps: float  # typical full bid/ask spread
    volume_per_s: float  # mean traded base volume per second of market time
    digits: int  # price decimals (tick size 10^-digits)


def _usd_price(asset: str) -> float:
    if asset in _STABLECOINS:
        return 1.0
    known = _KNOWN.get(asset)
    if known is not None:
        return known[0]
    return 10.0 ** (2.0 * _unit_hash(asset))  # unknown asset: 1 .. 100, fixed by its name


def symbol_profile(symbol: str, tier: str | None = None) -> SymbolProfile:
    """Start price, tier, volatility, beta, spread and volume for ``symbol`` (e.g. BTC/USDT)."""
    pair = symbol.split(":", 1)[0]
    base, sep, quote = pair.partition("/")
    if not sep or not base or not quote:
        raise SourceConfigError(f"symbol {symbol!r} is not BASE/QUOTE, e.g. BTC/USDT")
    known = _KNOWN.get(base)
    if tier is None:
        tier = known[2] if known else "VOLATILE"
    tier = tier.upper()
    if tier not in TIERS:
        raise SourceConfigError(f"{symbol}: tier {tier!r} is not one of {', '.join(TIERS)}")
    price = _usd_price(base) / _usd_price(quote)
    quote_volume_usd = known[1] if known else 10.0 ** (6.0 + 2.0 * _unit_hash(symbol + "#volume"))
    beta = known[3] if known else TIER_BETA[tier]
    digits = max(2, 6 - math.floor(math.log10(price)))
    return SymbolProfile(
        symbol=symbol,
        price=round(price, digits),
        tier=tier,
        sigma_s=TIER_VOL_PER_MIN[tier] / math.sqrt(60.0),
        beta=beta,
        spread_bps=TIER_SPREAD_BPS[tier],
        volume_per_s=quote_volume_usd / _usd_price(base) / DAY_S,
        digits=digits,
    )
