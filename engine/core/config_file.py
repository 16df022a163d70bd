"""Reading a safe list's file and its YAML, hardened against hostile files.

Owns ``read_text`` (what may be read: a regular file of at most ``MAX_BYTES``, never a FIFO or a
device, which would block or never end; UTF-8, a byte-order mark dropped, CRLF line ends
accepted; no control characters), ``load_yaml`` (a SafeLoader that refuses duplicate keys,
aliases that expand past ``MAX_NODES`` values: the "billion laughs" bomb, and nesting deeper
than ``MAX_DEPTH``) and ``sanity_problems``
(numbers too large to mean anything, values that are not finite, a pair not quoted in USDT).

Every refusal is a ``FileProblem`` carrying one line: the file, where, what to do. The safe
list's models and their messages are in ``engine.core.config``, which calls these.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024  # a safe list of 1,000 pairs is about 300 KB
MAX_DEPTH = 32  # a safe list nests 4 deep (pairs > symbol > params > value)
MAX_NODES = 200_000  # values once aliases are written out; 1,000 pairs are about 25,000
QUOTE = "USDT"  # every pair is quoted in USDT (the account's currency)
# numbers beyond these mean a typo (an extra zero or three), never an account
MAX_USD = {
    ("portfolio", "capital_usd"): 1e9,
    ("portfolio", "risk_per_trade_usd"): 1e9,
    ("pairs", "*", "max_position_size_usd"): 1e9,
}
# C0 controls but tab and line ends, DEL and C1, and a byte-order mark past the start
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")


class FileProblem(Exception):
    """One user-facing line: why the file cannot be used."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text: a regular file only (opened without blocking, so a FIFO is refused, not
    waited on), at most ``MAX_BYTES``, UTF-8 with an optional BOM, no control characters."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileProblem(f"{name}: cannot read: {exc.strerror or exc} (pass the path of a safe list)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(f"{name}: is {_kind(st.st_mode)}, not a file (pass the path of a safe list file)")
        if st.st_size > MAX_BYTES:
            raise FileProblem(
                f"{name}: {st.st_size / 1e6:.1f} MB is larger than a safe list can be "
                f"({MAX_BYTES // 1024} KiB at most: pass the right file)"
            )
        chunks, size = [], 0
        while size <= MAX_BYTES:  # the file may grow while read: never more than the cap
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise FileProblem(f"{name}: larger than {MAX_BYTES // 1024} KiB (pass the right file)")
        data = b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"{name}: cannot read: {exc.strerror or exc} (pass the path of a safe list)") from None
    finally:
        os.close(fd)
    return decode(data, name)


def decode(data: bytes, name: str) -> str:
    """UTF-8 (a byte-order mark dropped) with no control character but tab and line ends."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"{name}: not UTF-8 text (byte {exc.start}) (save it as UTF-8)") from None
    return check_text(text, name)


def check_text(text: str, name: str) -> str:
    text = text.removeprefix("\ufeff")
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise FileProblem(
            f"{name}: line {line}: control character U+{ord(bad.group()):04X} (remove it; a safe list is plain text)"
        )
    return text


class SafeListLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last one silently),
    nesting deeper than MAX_DEPTH, and aliases that expand past MAX_NODES nodes: anchors and
    aliases (``&defaults`` / ``*defaults``) are a fair way to share parameters between pairs,
    but a few lines of nested aliases can expand to gigabytes (the "billion laughs" bomb), so
    every alias counts the nodes it stands for and the document's total is capped."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._count(_expanded_size(target, {}), event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            self._count(1, None)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_NODES:,} values (an alias bomb?)", mark
            )


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias inside it is written out (memoised
    by node, so a bomb's size is computed in linear time; capped so it never grows huge)."""
    got = memo.get(id(node))
    if got is not None:
        return got
    memo[id(node)] = MAX_NODES + 1  # a cycle (a recursive alias) counts as too big
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size = min(size, MAX_NODES + 1)
    return size


def _construct_mapping(loader: SafeListLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key is a list or a mapping (keys are names, e.g. BTC/USDT)", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


SafeListLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, name: str) -> Any:
    """The document, or ``FileProblem`` with the line and what is wrong."""
    try:
        return yaml.load(text, Loader=SafeListLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FileProblem(f"{name}:{where}: malformed YAML: {problem} (fix the syntax)") from None
    except RecursionError:
        raise FileProblem(f"{name}: nested too deep to be a safe list (fix the structure)") from None


def _walk(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _walk(v, (*path, i))


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f"{'.' if i else ''}{p}" for i, p in enumerate(path))


def _usd_key(path: tuple[Any, ...]) -> tuple[Any, ...]:
    return ("pairs", "*", path[-1]) if path[0] == "pairs" and len(path) == 3 else path


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower().lstrip("+-.") in ("inf", "infinity", "nan")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else math.inf


def sanity_problems(data: Any, name: str) -> list[str]:
    """What the models accept and no account means: a value that is not finite, an amount of
    USD beyond ``MAX_USD``, a pair not quoted in USDT. One line each."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return problems
    for path, value in _walk(data):
        if _not_finite(value):
            problems.append(f"{name}: {_dotted(path)}: {value!r} is not a finite number (write a number)")
        elif type(value) is int and abs(value) > 2**53:
            problems.append(f"{name}: {_dotted(path)}: {value} is too large to mean anything (check the digits)")
        elif len(path) >= 2 and (cap := MAX_USD.get(_usd_key(path))) is not None:
            x = _number(value)  # YAML 1.1 reads 1e12 as a string; pydantic makes it a number
            if x is not None and x > cap:
                shown = f"{x:,.0f}" if x < 1e15 else f"{x:g}"
                problems.append(
                    f"{name}: {_dotted(path)}: {shown} USD is beyond any sane account "
                    f"(at most {cap:,.0f}: check the digits)"
                )
    pairs = data.get("pairs")
    if isinstance(pairs, dict):
        for sym in pairs:
            if isinstance(sym, str) and "/" in sym:
                quote = sym.split("/", 1)[1].split(":", 1)[0]
                if quote != QUOTE:
                    problems.append(
                        f"{name}: pairs.{sym}: quoted in {quote}, not {QUOTE} (the account is in {QUOTE}: "
                        f"trade {sym.split('/', 1)[0]}/{QUOTE} instead)"
                    )
    return problems
