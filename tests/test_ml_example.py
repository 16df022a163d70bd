"""examples/train_policy.py end to end in a tiny configuration (seconds): it trains on the
simulated market, saves a policy file that loads, and prints the held-out backtest of the
hand-written strategies and of the saved policy. Bad input is one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gymnasium")

from engine.core.policy_file import LinearPolicy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def test_the_example_trains_saves_and_compares(tmp_path: Path) -> None:
    out = tmp_path / "policy.npz"
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_policy.py"), "--iterations", "2", "--population", "3",
         "--window", "60", "--windows", "1", "--workers", "1", "--sim-days", "1.5", "--warmup", "100",
         "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "iteration 2/2" in r.stdout
    assert f"saved {out}" in r.stdout
    policy = LinearPolicy.load(out)
    assert policy.meta["method"] == "cross-entropy search"
    lines = r.stdout.splitlines()
    hand = [ln for ln in lines if ln.startswith("hand-written (safe list)")]
    learned = [ln for ln in lines if ln.startswith("policy (policy.npz)")]
    assert len(hand) == 1 and len(learned) == 1, r.stdout


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_policy.py"), "--sim-days", "0.2", "--workers", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "pass a smaller window= or more data" in err[0], r.stderr
