"""The policy file and the ``policy`` strategy that runs it (no gymnasium needed).

- A saved ``LinearPolicy`` loads back to the same decisions, float32 on float64 input alike.
- A bad file is one line naming the file and the field; the strategy turns it into a config
  error naming the pair's ``params.policy``.
- On the engine's own core (paper client, SQLite book: what the engine process runs), a policy
  with the ``FEATURES`` layout sees the live portfolio: after its BUY fills, its next
  observation holds the position, the exposure and the unrealised PnL the core reports.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from engine.core.candles import Candle
from engine.core.config import ConfigError, SafeList, StrategyParams
from engine.core.ml_interface import FEATURES, STATE_FIELDS
from engine.core.policy_file import LinearPolicy, PolicyFileError
from engine.core.strategies import create_strategy
from tests import ml_policies
from tests.core_harness import make_core

pytestmark = pytest.mark.timeout(60)


def _policy(seed: int = 3, layout: tuple[str, ...] = FEATURES) -> LinearPolicy:
    rng = np.random.default_rng(seed)
    n = len(layout)
    return LinearPolicy(layout, rng.normal(size=(n, 3)), rng.normal(size=3), rng.normal(size=n), rng.uniform(0.5, 2, n))


def test_saved_policy_loads_to_the_same_decisions(tmp_path: Path) -> None:
    p = _policy()
    path = p.save(tmp_path / "p")  # the suffix is added
    assert path.name == "p.npz"
    q = LinearPolicy.load(path)
    assert q.layout == FEATURES
    obs = np.random.default_rng(0).normal(size=(500, len(FEATURES)))
    a = [p(o) for o in obs]
    assert [q(o) for o in obs] == a
    assert [q(o.astype(np.float32)) for o in obs] == a  # float64 and its float32 rounding agree
    assert len(set(a)) == 3, "the fixture should exercise every action"


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"weights": np.zeros((7, 3))}, "field 'weights' is float64 (7, 3), expected numbers (8, 3)"),
        ({"version": np.array(99)}, "field 'version' is 99; this program reads up to 1"),
        ({"layout": np.array(["rsi", "moon_phase"])}, "field 'layout': layout ['rsi', 'moon_phase']: unknown moon_phase"),
        ({"format": np.array("other")}, "field 'format' is 'other'"),
        ({"scale": np.zeros(8)}, "scale must be > 0"),
        ({"bias": None}, "field 'bias' missing"),
    ],
)
def test_a_bad_policy_file_is_one_line_naming_the_field(tmp_path: Path, change: dict, expect: str) -> None:
    path = _policy().save(tmp_path / "p.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in change.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(PolicyFileError) as err:
        LinearPolicy.load(bad)
    msg = str(err.value)
    assert msg.startswith(str(bad)) and expect in msg and "\n" not in msg, msg
    with pytest.raises(ConfigError, match=r"pairs\.BTC/USDT\.params\.policy: .*bad\.npz"):
        create_strategy("policy", "BTC/USDT", StrategyParams(policy=str(bad)))


def test_missing_or_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="no such file"):
        LinearPolicy.load(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(PolicyFileError, match="not a policy file"):
        LinearPolicy.load(junk)


def test_the_strategy_loads_a_file_and_builds_its_layout(tmp_path: Path) -> None:
    layout = ("rsi", "position", "atr")
    path = _policy(layout=layout).save(tmp_path / "small.npz")
    s = create_strategy("policy", "BTC/USDT", StrategyParams(policy=str(path)))
    assert s.layout == layout
    plain = create_strategy("policy", "BTC/USDT", StrategyParams(policy="tests.core_policies:hold_and_record"))
    assert plain.layout == STATE_FIELDS  # a callable without a layout: the seed's six


TF_S = 5


def _cfg() -> SafeList:
    params = {"policy": "tests.ml_policies:RECORDER", "stop_atr": 3, "take_profit_atr": 30}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": [], "min_confidence": 0.5, "max_total_exposure": 0.5},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {"BTC/USDT": {"tier": "STABLE", "strategy": "policy", "max_position_size_usd": 2000, "params": params}},
    })  # fmt: skip


def test_the_policy_sees_the_live_portfolio_on_the_engines_core(tmp_path: Path) -> None:
    rec = ml_policies.RECORDER
    rec.seen.clear()
    h = make_core(tmp_path, _cfg(), timeframe_s=TF_S)
    tf = TF_S * 1000
    rng = random.Random(5)
    start = h.clock.ms - h.clock.ms % tf - 60 * tf
    closes = [60_000.0]
    for _ in range(60):
        closes.append(closes[-1] * math.exp(rng.gauss(0.0, 0.002)))
    h.core.warm_pair("BTC/USDT", [
        Candle(start + i * tf, closes[i], max(closes[i], closes[i + 1]) * 1.003, min(closes[i], closes[i + 1]) * 0.997,
               closes[i + 1], 10.0, 5) for i in range(60)])  # fmt: skip
    price = closes[-1]
    rec.action[0] = 1  # BUY at the first decision
    for k in range(3):  # ticks through candles: each close asks the policy
        for _ in range(3):
            h.tick("BTC/USDT", price)
            h.clock.advance(tf // 2)
        if k == 0:
            assert len(rec.seen) >= 1 and h.events.fills, [d.reasons for d in h.events.decisions]
            rec.action[0] = 0
        price *= 1.001
    assert len(rec.seen) >= 2
    first, last = rec.seen[0], rec.seen[-1]
    i = {n: FEATURES.index(n) for n in FEATURES}
    assert first[i["position"]] == 0.0 and first[i["exposure"]] == 0.0
    state = h.core.policy_state("BTC/USDT")
    assert last[i["position"]] > 0.0 and last[i["exposure"]] > 0.0
    assert last[i["position"]] == pytest.approx(state["position"], rel=1e-3)
    assert last[i["exposure"]] == pytest.approx(state["total_exposure"], rel=1e-3)
    # the unrealised PnL the core reports (the price moved a little since the last close: its sign)
    assert last[i["unrealised"]] != 0.0
    assert math.copysign(1.0, last[i["unrealised"]]) == math.copysign(1.0, state["unrealised"])
    h.store.close()
