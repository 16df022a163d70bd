"""The typed-message codec of the engine's wire: field checkers and the ``Message`` base.

A message is a slotted dataclass deriving from ``Message``; its annotations are compiled once
into checkers, so ``from_wire`` validates every field (type, range, size) and raises
``SchemaError`` naming the first that does not fit. The messages themselves live in
``engine.wire.schema``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, ClassVar, TypeVar, get_type_hints

ENGINE_WIRE_VERSION = 1
MAX_STR = 4096
MAX_LIST = 10_000
INT64 = 2**63
MAX_ABS = 1e18  # no price, quantity or amount of money means anything beyond this


class SchemaError(ValueError):
    """A map that does not fit its message type; the receiver counts and drops it."""


Check = Callable[[Any, str], Any]


def _float(x: Any, where: str) -> float:
    t = type(x)
    if t is float:
        if -MAX_ABS < x < MAX_ABS:  # NaN fails both comparisons
            return x
    elif t is int and -MAX_ABS < x < MAX_ABS:
        return float(x)
    raise SchemaError(f"{where}: expected a finite number, got {x!r}"[:200])


def _int(x: Any, where: str) -> int:
    if type(x) is int and -INT64 <= x < INT64:
        return x
    raise SchemaError(f"{where}: expected a 64-bit integer, got {x!r}"[:200])


def _str(x: Any, where: str) -> str:
    if type(x) is str and len(x) <= MAX_STR:
        return x
    raise SchemaError(f"{where}: expected a string of at most {MAX_STR} characters, got {type(x).__name__}")


def _bool(x: Any, where: str) -> bool:
    if type(x) is bool:
        return x
    raise SchemaError(f"{where}: expected true or false, got {x!r}"[:200])


def _optional(inner: Check) -> Check:
    def check(x: Any, where: str) -> Any:
        return None if x is None else inner(x, where)

    return check


def _list(inner: Check) -> Check:
    def check(x: Any, where: str) -> list[Any]:
        if type(x) is not list or len(x) > MAX_LIST:
            raise SchemaError(f"{where}: expected a list of at most {MAX_LIST} items")
        return [inner(v, where) for v in x]

    return check


def _tuple(items: tuple[Check, ...]) -> Check:
    def check(x: Any, where: str) -> tuple[Any, ...]:
        if type(x) not in (list, tuple) or len(x) != len(items):
            raise SchemaError(f"{where}: expected a list of {len(items)} items")
        return tuple(c(v, where) for c, v in zip(items, x, strict=True))

    return check


def _dict(key: Check, value: Check) -> Check:
    def check(x: Any, where: str) -> dict[Any, Any]:
        if type(x) is not dict or len(x) > MAX_LIST:
            raise SchemaError(f"{where}: expected a map of at most {MAX_LIST} entries")
        return {key(k, where): value(v, where) for k, v in x.items()}

    return check


def _nested(cls: type[Message]) -> Check:
    def check(x: Any, where: str) -> Message:
        if type(x) is not dict:
            raise SchemaError(f"{where}: expected a map")
        return cls._decode(x, where + ".")

    return check


_SCALARS: dict[Any, Check] = {float: _float, int: _int, str: _str, bool: _bool}


def _checker(tp: Any) -> Check:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        return _optional(_checker(inner[0]))
    if origin is list:
        return _list(_checker(args[0]))
    if origin is tuple:
        return _tuple(tuple(_checker(a) for a in args))
    if origin is dict:
        return _dict(_checker(args[0]), _checker(args[1]))
    if isinstance(tp, type) and issubclass(tp, Message):
        return _nested(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    raise TypeError(f"unsupported wire type {tp!r}")


_AS_IS = frozenset({str, int, float, bool, bytes, type(None)})  # msgpack takes these as they are


def _plain(x: Any) -> Any:
    if type(x) in _AS_IS:
        return x
    if isinstance(x, Message):
        return x.to_wire(versioned=False)
    if type(x) in (list, tuple):
        return [_plain(v) for v in x]
    if type(x) is dict:
        return {k: _plain(v) for k, v in x.items()}
    return x


M = TypeVar("M", bound="Message")


class Message:
    """Base of every wire message: a slotted dataclass with a compiled field checker."""

    __slots__ = ()
    _spec: ClassVar[tuple[tuple[str, Check, bool, Any], ...]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._spec = ()  # compiled lazily: annotations may name classes defined later
        if "to_wire" not in cls.__dict__:  # not a parent's generated one: its own, at first use
            cls.to_wire = Message.to_wire  # type: ignore[method-assign]

    @classmethod
    def _compile(cls) -> tuple[tuple[str, Check, bool, Any], ...]:
        hints = get_type_hints(cls)
        spec = []
        for f in fields(cls):  # type: ignore[arg-type]
            # ``seq: int`` is the publication's sequence number, set by ``from_wire`` below; a
            # ``seq`` of another type (the snapshot's per-topic map) is an ordinary field.
            if (f.name == "seq" and hints[f.name] is int) or f.name.startswith("_"):
                continue
            required = f.default is MISSING and f.default_factory is MISSING
            default = f.default if f.default is not MISSING else f.default_factory
            spec.append((f.name, _checker(hints[f.name]), required, default))
        cls._spec = tuple(spec)
        return cls._spec

    @classmethod
    def _decode(cls: type[M], m: dict[Any, Any], prefix: str = "") -> M:
        spec = cls._spec or cls._compile()
        kw: dict[str, Any] = {}
        for name, check, required, default in spec:
            x = m.get(name, MISSING)
            if x is MISSING:
                if required:
                    raise SchemaError(f"{cls.__name__}: field {prefix}{name} is missing")
                kw[name] = default() if callable(default) else default
                continue
            kw[name] = check(x, prefix + name)
        return cls(**kw)

    @classmethod
    def from_wire(cls: type[M], m: Any) -> M:
        """Check a decoded map (``v`` must be the integer wire version) and build the message."""
        if type(m) is not dict:
            raise SchemaError(f"{cls.__name__}: payload is not a map")
        v = m.get("v")
        if type(v) is not int or v != ENGINE_WIRE_VERSION:
            raise SchemaError(f"{cls.__name__}: field v: expected wire version {ENGINE_WIRE_VERSION}, got {v!r}"[:200])
        msg = cls._decode(m)
        seq = m.get("seq")
        if seq is not None and type(getattr(msg, "seq", None)) is int:
            msg.seq = _int(seq, "seq")  # type: ignore[attr-defined]
        return msg

    def to_wire(self, versioned: bool = True) -> dict[str, Any]:
        """The message as a plain map: every field in declaration order, nested messages as maps,
        a None left out where None is the field's default.

        The first call on a class writes that class's own ``to_wire`` (``_compile_out``): one
        line per field instead of a loop over them, which was about a quarter of building and
        sending a pair's state (the roll-call sends every pair once a second)."""
        return type(self)._compile_out()(self, versioned)

    @classmethod
    def _compile_out(cls) -> Callable[[Any, bool], dict[str, Any]]:
        """``cls.to_wire``, generated from its fields and installed on the class (their names
        are Python identifiers: dataclass fields). Each field, in order: None is left out when
        the field defaults to None, else sent as nil; a value msgpack takes as it is goes as it
        is; anything else (a nested message, a list, a map) through ``_plain``."""
        lines = ["def to_wire(self, versioned=True):", f"    out = {{'v': {ENGINE_WIRE_VERSION}}} if versioned else {{}}"]
        for f in fields(cls):  # type: ignore[arg-type]
            name, omit_none = f.name, f.default is None
            assert name.isidentifier(), name
            lines += [
                f"    x = self.{name}",
                "    if x is None:",
                "        pass" if omit_none else f"        out[{name!r}] = None",
                "    elif type(x) in as_is:",
                f"        out[{name!r}] = x",
                "    else:",
                f"        out[{name!r}] = plain(x)",
            ]
        lines.append("    return out")
        scope: dict[str, Any] = {"as_is": _AS_IS, "plain": _plain}
        exec("\n".join(lines), scope)  # our own field names, each checked an identifier
        fn: Callable[[Any, bool], dict[str, Any]] = scope["to_wire"]
        fn.__qualname__ = f"{cls.__qualname__}.to_wire"
        fn.__doc__ = Message.to_wire.__doc__
        cls.to_wire = fn  # type: ignore[method-assign,assignment]
        return fn
