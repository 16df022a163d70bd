"""The simulated market (``--source sim``): correlated random walks with realistic prices.

Owns the price model and the ``sim`` source. The model, in log price, for symbol i:

    log p_i = log P0_i + sigma_i * (beta_i * F + sqrt(1 - beta_i^2) * Y_i)

where F (the market factor) and Y_i (the symbol's own noise) are unit-volatility walks, each
with its own regime: plain walk, trend burst, mean-reverting chop, or a low-volatility squeeze
followed by a breakout. Regimes last a few minutes, so momentum, mean-reversion and breakout
strategies all see their kind of market within a short demo. BTC and ETH load heavily on the
factor (return correlation ~0.8), SOL less, others by tier.

Every random number comes from ``random.Random`` streams seeded by (seed, symbol), drawn once
per step, so the sequence of prices depends on the seed, the symbols' own streams, the step
rate and the time scale (market seconds per wall second), never on wall-clock timing. Live and history use the same model: history is the model
run at candle scale, shifted so its last close is the price the live path starts from, followed
by candles built from the ticks actually published since the start.
"""

from __future__ import annotations

from feed.sim.market import SimMarket
from feed.sim.profiles import SymbolProfile, symbol_profile
from feed.sim.source import SimSource

__all__ = ["SimMarket", "SimSource", "SymbolProfile", "symbol_profile"]
