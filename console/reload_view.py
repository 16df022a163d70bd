"""A reloaded safe list in a console's model (the daemon's and each console's): no Textual.

Owns ``set_pairs``: the model's pairs follow the safe list in force: an added pair gets its
placeholder pane (STALE until its first state), a removed pair's pane goes when it holds no
position (a removed pair with one is REDUCING in the engine and keeps its pane until flat).
"""

from __future__ import annotations

from typing import Any

from console.model_types import PairView
from engine.wire.schema import PairStateMsg


def set_pairs(model: Any, cfg: Any) -> tuple[list[str], list[str]]:
    """Make ``model``'s pairs those of ``cfg`` (a ``SafeList``); the symbols added and removed."""
    wanted = cfg.active_symbols()
    added, removed = [], []
    for s in wanted:
        pcfg = cfg.pairs[s]
        model.pair_meta[s] = {"tier": str(pcfg.tier), "strategy": pcfg.strategy,
                              "max_position_size_usd": pcfg.max_position_size_usd}  # fmt: skip
        if s not in model.pairs:
            placeholder = PairStateMsg(symbol=s, mode="ACTIVE", stale=True, tier=str(pcfg.tier), strategy=pcfg.strategy)
            model.pairs[s] = PairView(s, placeholder)
            added.append(s)
    for s in list(model.pairs):
        if s not in wanted and not model.pairs[s].has_position:
            del model.pairs[s]
            removed.append(s)
    model.symbols[:] = list(model.pairs)
    model.pairs_changed()
    model.dirty.update(model.symbols)
    return added, removed
