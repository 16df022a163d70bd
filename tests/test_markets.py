"""The order boundary's float fast paths against the Decimal reference they stand in for.

``markets._to_step`` and ``markets._is_multiple`` decide in floats when the float arithmetic
provably gives the Decimal answer and fall back to Decimal otherwise; these hold them equal,
bit for bit (sign of zero included), on the steps exchanges use and on quantities built to sit
on, next to and between multiples.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, InvalidOperation, Rounded, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import markets as mk

STEPS = [1e-8, 1e-6, 1e-5, 2.5e-5, 1e-4, 0.001, 0.01, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 5.0, 10.0, 100.0, 1e-12, 3e-7, 1e25]
ROUNDINGS = [ROUND_FLOOR, ROUND_CEILING]


def same(a: float, b: float) -> bool:
    return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)


def outcome(f: object, *args: object) -> object:
    """What ``f(*args)`` answers, or the type of what it raises (both paths must agree)."""
    try:
        return f(*args)  # type: ignore[operator]
    except Exception as exc:
        return type(exc)


def check(x: float, step: float) -> None:
    for rounding in ROUNDINGS:
        got, want = outcome(mk._to_step, x, step, rounding), outcome(mk._to_step_exact, x, step, rounding)
        assert same(got, want) if isinstance(want, float) else got == want, (x, step, rounding, got, want)
    assert outcome(mk._is_multiple, x, step) == outcome(mk._is_multiple_exact, x, step), (x, step)


@settings(max_examples=3000, deadline=None)
@given(
    x=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.floats(min_value=1e-9, max_value=1e3),
    step=st.sampled_from(STEPS),
)
def test_any_float_rounds_as_the_decimal_path(x: float, step: float) -> None:
    check(x, step)


@settings(max_examples=3000, deadline=None)
@given(
    n=st.integers(min_value=-(10**14), max_value=10**14) | st.integers(min_value=0, max_value=10**6),
    step=st.sampled_from(STEPS),
    nudge=st.sampled_from([0, 1, -1, 2, -2]),
    built=st.booleans(),
)
def test_multiples_and_their_neighbours(n: int, step: float, nudge: int, built: bool) -> None:
    """On a multiple (as a float product, or as the decimal's own float) and a few ulps off."""
    x = float(n * mk._dec(step)) if built else n * step
    for _ in range(abs(nudge)):
        x = math.nextafter(x, math.inf if nudge > 0 else -math.inf)
    check(x, step)


@pytest.mark.parametrize(
    "x, step, floor, ceil, multiple",
    [
        (0.3, 0.1, 0.3, 0.3, True),  # 0.3 / 0.1 is 2.9999999999999996 in floats: 3 steps in decimals
        (0.30000000000000004, 0.1, 0.3, 0.4, False),  # 0.1 + 0.2: the float above 0.3
        (1.23456789, 1e-5, 1.23456, 1.23457, False),
        (0.0, 1e-5, 0.0, 0.0, True),
        (-0.0, 1e-5, -0.0, -0.0, True),
        (7.5, 2.5, 7.5, 7.5, True),
        (math.inf, 0.1, math.inf, math.inf, None),
        (1e300, 1e-8, 1e300, 1e300, None),  # beyond Decimal's precision: it raises, both ways
    ],
)
def test_known_cases(x: float, step: float, floor: float, ceil: float, multiple: bool | None) -> None:
    assert same(mk._to_step(x, step, ROUND_FLOOR), floor)
    assert same(mk._to_step(x, step, ROUND_CEILING), ceil)
    if multiple is not None:
        assert mk._is_multiple(x, step) is multiple
    check(x, step)


def test_odd_steps_take_the_decimal_path() -> None:
    for step in (math.inf, 1e30, 1e-30, 0.1 + 0.2):
        for x in (0.7, 123.456, 1e-3):
            check(x, step)


def test_typical_quantities_and_prices_are_decided_without_decimal_arithmetic() -> None:
    """The fast paths are taken, not only equal: under a Decimal context of one digit that traps
    rounding, any division or remainder of the Decimal path raises, and typical quantities and
    prices (not within 1e-9 of a step boundary, already on a step, or not) go through."""
    rng = random.Random(3)
    cases = [(rng.uniform(0.001, 50.0), 1e-5) for _ in range(300)] + [
        (rng.uniform(100.0, 90_000.0), 0.01) for _ in range(300)
    ]
    cases += [(float(mk._dec(x).quantize(mk._dec(step))), step) for x, step in cases[:200]]  # on a step
    for x, step in cases:
        mk._step_parts(step)  # the step's parts, once (cached): no arithmetic either
        with localcontext(Context(prec=1, traps=[Rounded, InvalidOperation])):
            for rounding in ROUNDINGS:
                mk._to_step(x, step, rounding)
            mk._is_multiple(x, step)
    with localcontext(Context(prec=1, traps=[Rounded, InvalidOperation])), pytest.raises((Rounded, InvalidOperation)):
        mk._is_multiple_exact(12.34567, 1e-5)  # the trap does catch the Decimal path
