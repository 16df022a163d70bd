"""How the console words a decision: what it was (an entry, or which exit), its reasons with
prices formatted as the rest of the screen formats them, and lines cut only between words.

Owns ``exit_reason`` (the exit a decision or a fill was: stop, take-profit, signal, flatten,
kill, reconcile-flatten, the exchange's protective stop; from the decision's key, which the
core builds as ``symbol|reason|…`` for every exit it makes itself, and ``symbol|candle|…``
for a strategy's signal), ``EXIT_LABELS`` (the operator's words for them), ``action_words``,
``fmt_reason`` (prices the engine wrote with ``%.8g`` re-written with the console's
``fmt_price``, so "36512.3" reads "36,512.30" as it does in the pane) and ``fit_words`` (a
line too long for its width is cut at a space, so a number is shown whole or not at all).
No Textual here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from rich.text import Text

from console.widgets.palette import fmt_price, price_decimals
from engine.wire.schema import DecisionMsg

# core reasons (engine/core: close_position's reason, a fill's reason) -> the operator's word
EXIT_LABELS = {
    "signal": "signal",
    "stop": "stop",
    "exchange_stop": "exchange stop",  # the protective stop resting at the exchange filled
    "take_profit": "take-profit",
    "flatten": "flatten",
    "flatten_all": "flatten all",
    "kill": "kill switch",
    "kill-fallback": "kill (daemon fallback)",
    "reconcile-flatten": "reconcile flatten",
    "reconcile-adopt": "reconcile adopt",
    "reconcile": "reconcile",
    "end": "open",
}
ENTRY_ACTIONS = {"open_long": "entry long", "open_short": "entry short"}
EXIT_ACTIONS = {"close_long": "exit long", "close_short": "exit short"}


def exit_label(reason: str) -> str:
    """The operator's word for a core exit reason (an unknown one as it is)."""
    return EXIT_LABELS.get(reason, reason.replace("_", " ") or "signal")


def exit_reason(d: DecisionMsg) -> str | None:
    """Which exit ``d`` was (a core reason: ``stop``, ``take_profit``, ``signal``, …), or None
    for an entry or a hold. The core keys an exit it makes itself ``symbol|reason|ts`` and a
    strategy's decision ``symbol|candle open ts|BUY/SELL``."""
    if d.action not in EXIT_ACTIONS:
        return None
    parts = d.key.split("|")
    second = parts[1] if len(parts) > 2 else ""
    if second and not second.isdigit():
        return second
    return "signal"


def action_words(d: DecisionMsg) -> str:
    """``entry long``, ``exit long: stop``, ``exit short: take-profit``, or the raw action."""
    if d.action in ENTRY_ACTIONS:
        return ENTRY_ACTIONS[d.action]
    if d.action in EXIT_ACTIONS:
        return f"{EXIT_ACTIONS[d.action]}: {exit_label(exit_reason(d) or 'signal')}"
    return "hold" if d.action == "none" else d.action


def brief_words(action: str) -> str:
    """``action_words`` when only the action is known (a pair's ``DecisionBriefMsg``)."""
    return ENTRY_ACTIONS.get(action) or EXIT_ACTIONS.get(action) or action


def find_decision(
    decisions: Iterable[DecisionMsg], symbol: str, ts: int, action: str, limit: int = 200
) -> DecisionMsg | None:
    """The newest of the last ``limit`` decisions that is ``symbol``'s at ``ts`` with
    ``action`` (the full message of a pair's brief), or None."""
    for n, d in enumerate(reversed(decisions)):  # type: ignore[call-overload]
        if n >= limit:
            break
        if d.symbol == symbol and d.ts == ts and d.action == action:
            return d  # type: ignore[no-any-return]
    return None


def hms_ms(ts_ms: int) -> str:
    """UTC time of day of a wire timestamp in ms."""
    return time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000.0))


# Words after which the engine writes a price (strategies' reasoning, the risk checks).
PRICE_WORDS = frozenset(
    {"close", "band", "high", "low", "stop", "entry", "target", "profit", "at", "above"}
    | {"below", "price", "mark", "bid", "ask", "trigger", "atr"}
)
_NUMBER = re.compile(r"(?<![\w$:+\-/])(?<!\d\.)\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w%:]|\.\d)")
_LAST_WORD = re.compile(r"([A-Za-z]+)\W{0,2}$")


def fmt_reason(text: str, ref: float | None = None) -> str:
    """``text`` with every price the engine wrote (a number after a price word: close, band,
    high, low, stop, entry, target, at, above, below…, or either end of ``a..b``) in the
    console's format; an ATR in the decimals of ``ref`` (the pair's price), as the pane
    shows it. Other numbers (RSI, confidence, percentages, ATR multiples, sizes) stay."""

    def price(m: re.Match[str]) -> str:
        raw = m.group(0)
        before, after = text[: m.start()], text[m.end() :]
        word = _LAST_WORD.search(before[-24:])
        name = word.group(1).lower() if word and before[-1:] in (" ", "(") else ""
        ranged = before.endswith("..") or after.startswith("..")
        if name not in PRICE_WORDS and not ranged:
            return raw
        try:
            x = float(raw)
        except ValueError:
            return raw
        if name == "atr":
            return fmt_price(x, price_decimals(ref) if ref else None)
        return fmt_price(x)

    return _NUMBER.sub(price, text)


def fit_words(line: Text, width: int) -> Text:
    """``line`` cut to ``width`` cells: never inside a word holding a digit (a number is shown
    whole or not at all); another word may be cut ("m…"); " …" where whole words were left
    out. Only a line whose first word holds a digit and is wider than ``width`` is cut inside
    it."""
    if width <= 0 or line.cell_len <= width:
        return line
    plain = line.plain
    cut, kept, mark = width - 1, "", "…"
    while cut > 0:
        start = plain.rfind(" ", 0, cut) + 1  # the word the cut falls in
        end = plain.find(" ", cut)
        word = plain[start : len(plain) if end < 0 else end]
        inside = plain[cut - 1] != " " and plain[cut : cut + 1] not in ("", " ")
        if inside and start > 0 and any(c.isdigit() for c in word):
            cut = start  # before the number, never in it
        kept = plain[:cut].rstrip().rstrip(";,:(").rstrip()
        after = plain[len(kept) : len(kept) + 1]
        mark = " …" if after in ("", " ", ";", ",", ":", "(") else "…"  # a word dropped, or cut
        if len(kept) + len(mark) <= width or not kept:
            break
        cut = len(kept) - 1
    if not kept:  # the first word alone is wider than the line
        out = line.copy()
        out.truncate(width, overflow="ellipsis")
        return out
    out = line.divide([len(kept)])[0]
    out.append(mark)
    return out
