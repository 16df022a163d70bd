"""``Message.to_wire`` against the rule it implements, written out plainly here.

The codec turns a message into a map with a ``to_wire`` it generates for each class on first use,
one line per field (engine/wire/codec.py); the rule is the one it had before that: every field in
declaration order, nested messages (alone, in lists, in dict values) as maps without ``v``, and
a None left out only where None is the field's default. Every message class of the schema is
checked, with its fields filled from a seeded generator (None, scalars, nested messages, lists)
so a field the fast path mishandles shows.
"""

from __future__ import annotations

import dataclasses
import random
import types
import typing
from typing import Any

import pytest

from engine.wire import schema
from engine.wire.codec import ENGINE_WIRE_VERSION, Message

CLASSES = sorted(
    (c for c in vars(schema).values() if isinstance(c, type) and issubclass(c, Message) and c is not Message),
    key=lambda c: c.__name__,
)


def reference(msg: Any, versioned: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"v": ENGINE_WIRE_VERSION} if versioned else {}
    for f in dataclasses.fields(msg):
        x = getattr(msg, f.name)
        if x is None and f.default is None:
            continue
        out[f.name] = _plain(x)
    return out


def _plain(x: Any) -> Any:
    if isinstance(x, Message):
        return reference(x, versioned=False)
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _value(tp: Any, rng: random.Random, depth: int) -> Any:
    """A value of wire type ``tp`` (or None where it is optional, one time in three)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return None if rng.random() < 0.34 else _value(inner[0], rng, depth)
    if origin is list:
        return [_value(args[0], rng, depth + 1) for _ in range(rng.randint(0, 3 if depth < 2 else 0))]
    if origin is tuple:
        return tuple(_value(a, rng, depth + 1) for a in args)
    if origin is dict:
        return {f"k{i}": _value(args[1], rng, depth + 1) for i in range(rng.randint(0, 2 if depth < 2 else 0))}
    if isinstance(tp, type) and issubclass(tp, Message):
        return _build(tp, rng, depth + 1)
    if tp is bool:
        return rng.random() < 0.5
    if tp is int:
        return rng.randint(-5, 10**12)
    if tp is float:
        return rng.choice([0.0, -1.5, 3.25e-9, 12345.678])
    if tp is str:
        return rng.choice(["", "BTC/USDT", "ACTIVE", "é"])
    if tp is bytes:
        return b"\x00x"
    return None


def _build(cls: type[Message], rng: random.Random, depth: int = 0) -> Message:
    hints = typing.get_type_hints(cls)
    kw = {f.name: _value(hints[f.name], rng, depth) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**kw)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_to_wire_follows_the_rule(cls: type[Message]) -> None:
    rng = random.Random(cls.__name__)
    for _ in range(40):
        msg = _build(cls, rng)
        assert msg.to_wire() == reference(msg)
        assert msg.to_wire(versioned=False) == reference(msg, versioned=False)
        assert list(msg.to_wire()) == list(reference(msg))  # the same order of keys


def test_a_none_is_kept_where_none_is_not_the_default() -> None:
    """``ind`` defaults to an empty IndicatorsMsg: a None set there travels as None."""
    msg = schema.PairStateMsg(symbol="BTC/USDT", mode="ACTIVE", stale=False)
    msg.ind = None  # type: ignore[assignment]
    wire = msg.to_wire()
    assert "ind" in wire and wire["ind"] is None
    assert "last" not in wire  # None is last's default: left out


def test_a_subclass_of_a_class_already_written_out_gets_its_own_fields() -> None:
    """A class's generated ``to_wire`` is installed on that class: a subclass made after it was
    generated must not inherit it (it would leave the subclass's own fields out)."""

    @dataclasses.dataclass(slots=True)
    class Parent(Message):
        a: int
        b: str | None = None

    assert Parent(1).to_wire() == {"v": ENGINE_WIRE_VERSION, "a": 1}  # Parent's is generated now

    @dataclasses.dataclass(slots=True)
    class Child(Parent):
        c: float = 1.5

    assert Child(2, "x").to_wire() == {"v": ENGINE_WIRE_VERSION, "a": 2, "b": "x", "c": 1.5}
    assert Child(3).to_wire(versioned=False) == reference(Child(3), versioned=False)
    assert Parent(4, "y").to_wire() == {"v": ENGINE_WIRE_VERSION, "a": 4, "b": "y"}
