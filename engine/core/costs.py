"""What a round trip costs, and what an entry stands to win and lose once costs are paid.

Owns ``EntryCosts`` and ``entry_costs``, the arithmetic behind the risk pipeline's ``costs``
check (engine/core/risk.py), per unit of the base asset:

- ``round_trip``: the spread (half paid entering at the ask, half leaving at the bid), the
  taker fee on both legs (entry at the fill, exit at the target) and the slippage on both legs;
- ``gross``: the move the target asks of the market, from the mid;
- ``reward``: what the position makes if it leaves at the target, after fees and slippage
  on both legs (a long buys at ask × (1 + slip) and pays the fee on that, sells at
  target × (1 − slip) and pays the fee on that);
- ``risk``: what it loses if it leaves at the stop, counted the same way.

A target at ``gross >= k × round_trip`` keeps costs below 1/k of the move; ``reward / risk``
is the reward-to-risk ratio a trader quotes, after costs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class EntryCosts:
    round_trip: float
    gross: float
    reward: float
    risk: float
    mid: float

    def __init__(self, round_trip: float, gross: float, reward: float, risk: float, mid: float) -> None:
        self.round_trip, self.gross, self.reward, self.risk, self.mid = round_trip, gross, reward, risk, mid

    @property
    def cost_multiple(self) -> float:
        """How many round trips the target's move pays for (inf when costs are nil)."""
        return self.gross / self.round_trip if self.round_trip > 0 else float("inf")

    @property
    def reward_risk(self) -> float:
        return self.reward / self.risk if self.risk > 0 else float("inf")


def entry_costs(
    long: bool,
    fill: float,
    bid: float,
    ask: float,
    stop: float,
    target: float,
    fee: float,
    slip: float,
) -> EntryCosts:
    """Per-unit costs of an entry filled at ``fill`` with that stop and target (see module doc).

    ``bid``/``ask`` may be 0 (no quote): the mid is then the fill and the spread nil.
    ``slip`` is a fraction (slippage_bps / 10,000).
    """
    if 0.0 < bid <= ask:
        mid, spread = (bid + ask) / 2.0, ask - bid
    else:
        mid, spread = fill, 0.0
    round_trip = spread + (fee + slip) * (fill + target)
    buy_in, sell_out = 1.0 + slip, 1.0 - slip
    if long:
        paid = fill * buy_in * (1.0 + fee)
        reward = target * sell_out * (1.0 - fee) - paid
        risk = paid - stop * sell_out * (1.0 - fee)
        gross = target - mid
    else:
        got = fill * sell_out * (1.0 - fee)
        reward = got - target * buy_in * (1.0 + fee)
        risk = stop * buy_in * (1.0 + fee) - got
        gross = mid - target
    return EntryCosts(round_trip, gross, reward, risk, mid)
