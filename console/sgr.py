"""Fewer bytes to the terminal: SGR (colour and attribute) sequences sent as changes.

Textual writes every span of a line with its full style and a reset after it::

    ESC[38;2;141;141;141;48;2;18;18;18m bid ESC[0m ESC[38;2;224;224;224;48;2;18;18;18m 69.93 ESC[0m

About two thirds of the console's output is such sequences (100 pairs at 160x48, 24-bit
colour). ``SgrDelta`` rewrites a stream so the terminal receives only what changes between two
spans (here ``ESC[38;2;224;224;224m``: the background is already right) and no reset between
them. What is printed, and with which colours and attributes, is exactly what the original
stream prints:

- an SGR sequence is not sent when read: it updates the style *wanted*; the change from the
  style the terminal *has* to the wanted one is sent just before anything else goes out (text,
  a control character, any other escape sequence), and at the end of every write, so the
  terminal is left as the original stream would leave it. A cursor position (``ESC[row;colH``)
  prints nothing and does not settle the style first.
- the change is the shorter of the per-attribute delta (``22`` to end bold, ``39`` for the
  default colour, ...) and a reset with the full style.
- an SGR code this module does not know (or a colon sub-parameter) is passed through as it is,
  after settling; the terminal's style is then unknown, and everything passes as it is until
  an SGR sequence that starts with a reset makes it known again. A cursor restore (``ESC 8``,
  ``ESC[u``: DECRC brings back the saved style too) or a terminal reset (``ESC c``) does the same.

``LeanDriver(base)`` is the Textual driver class that filters what it writes through one
``SgrDelta`` (``MultiparApp.get_driver_class``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_ESC = re.compile(
    r"\x1b\[(?P<sgr>[0-9;]*)m"  # SGR
    r"|(?P<cup>\x1b\[[0-9;]*H)"  # cursor position: prints nothing
    r"|(?P<lose>\x1b8|\x1b\[u|\x1bc)"  # a restored cursor (DECRC) or a reset terminal: style unknown
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # any other CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (a hyperlink, a title)
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
)

# attribute -> (code that sets it, code that ends it); 22 ends both bold and dim, 24 both underlines
_ATTRS = {
    "bold": ("1", "22"), "dim": ("2", "22"), "italic": ("3", "23"), "underline": ("4", "24"),
    "blink": ("5", "25"), "reverse": ("7", "27"), "conceal": ("8", "28"), "strike": ("9", "29"),
    "underline2": ("21", "24"), "overline": ("53", "55"),
}  # fmt: skip
_ON = {on: name for name, (on, _) in _ATTRS.items()}
_OFF = {"22": ("bold", "dim"), "23": ("italic",), "24": ("underline", "underline2"), "25": ("blink",),
        "27": ("reverse",), "28": ("conceal",), "29": ("strike",), "55": ("overline",)}  # fmt: skip
_FG = {str(c) for c in (*range(30, 38), *range(90, 98))}
_BG = {str(c) for c in (*range(40, 48), *range(100, 108))}

_RESET = ("", "0")  # an SGR starting with one of these resets every attribute first
Style = tuple[frozenset[str], str | None, str | None]  # attributes, foreground, background
DEFAULT: Style = (frozenset(), None, None)


@lru_cache(maxsize=4096)  # a screen uses a few dozen styles: parse each transition once
def apply(style: Style, params: str) -> Style | None:
    """``style`` after the SGR sequence ``ESC[<params>m``; None for a code not handled here."""
    attrs, fg, bg = set(style[0]), style[1], style[2]
    codes = params.split(";") if params else ["0"]
    i = 0
    while i < len(codes):
        c = codes[i]
        i += 1
        if c in ("0", ""):
            attrs, fg, bg = set(), None, None
        elif c in _ON:
            attrs.add(_ON[c])
        elif c in _OFF:
            attrs.difference_update(_OFF[c])
        elif c in _FG:
            fg = c
        elif c in _BG:
            bg = c
        elif c == "39":
            fg = None
        elif c == "49":
            bg = None
        elif c in ("38", "48"):
            n = {"5": 2, "2": 4}.get(codes[i] if i < len(codes) else "", 0)
            if n == 0 or i + n > len(codes) or not all(x.isdigit() for x in codes[i : i + n]):
                return None
            colour = ";".join(codes[i - 1 : i + n])
            i += n
            if c == "38":
                fg = colour
            else:
                bg = colour
        else:
            return None
    return frozenset(attrs), fg, bg


def _full(style: Style) -> list[str]:
    attrs, fg, bg = style
    codes = [_ATTRS[a][0] for a in sorted(attrs)]
    if fg is not None:
        codes.append(fg)
    if bg is not None:
        codes.append(bg)
    return codes


@lru_cache(maxsize=4096)
def change(have: Style, want: Style) -> str:
    """The shortest SGR sequence that takes the terminal from ``have`` to ``want``; "" when
    they are equal."""
    if have == want:
        return ""
    reset = "\x1b[" + ";".join(["0", *_full(want)]) + "m" if want != DEFAULT else "\x1b[0m"
    codes: list[str] = []
    gone = have[0] - want[0]
    keep = set(have[0] & want[0])
    for off in dict.fromkeys(_ATTRS[a][1] for a in sorted(gone)):
        codes.append(off)
        keep.difference_update(_OFF[off])  # 22 also ends dim, 24 both underlines
    codes += [_ATTRS[a][0] for a in sorted(want[0] - keep)]
    if have[1] != want[1]:
        codes.append(want[1] or "39")
    if have[2] != want[2]:
        codes.append(want[2] or "49")
    delta = "\x1b[" + ";".join(codes) + "m"
    return delta if len(delta) < len(reset) else reset


class SgrDelta:
    """One terminal's output stream, its SGR sequences sent as changes (module docstring)."""

    def __init__(self) -> None:
        self.have: Style = DEFAULT  # what the terminal has
        self.want: Style = DEFAULT  # what the stream asked for so far
        self.lost = False  # after an SGR not understood: everything passes as it is until a reset

    def _settle(self, out: list[str]) -> None:
        if self.have != self.want:
            out.append(change(self.have, self.want))
            self.have = self.want

    def filter(self, data: str) -> str:
        out: list[str] = []
        pos = 0
        for m in _ESC.finditer(data):
            if m.start() > pos:  # text or control characters: printed in the wanted style
                if not self.lost:
                    self._settle(out)
                out.append(data[pos : m.start()])
            pos = m.end()
            params = m.group("sgr")
            if params is not None:
                if self.lost:
                    out.append(m.group(0))
                    known = apply(DEFAULT, params)
                    if known is not None and params.split(";")[0] in _RESET:  # known again
                        self.have = self.want = known
                        self.lost = False
                    continue
                want = apply(self.want, params)
                if want is not None:
                    self.want = want
                    continue
                self._settle(out)  # not understood: sent as it is, the style unknown after it
                out.append(m.group(0))
                self.lost = True
                continue
            if m.group("cup") is None and not self.lost:
                self._settle(out)
            out.append(m.group(0))
            if m.group("lose") is not None:  # the terminal's style is now whatever was saved
                self.lost = True
        if pos < len(data):
            if not self.lost:
                self._settle(out)
            out.append(data[pos:])
        if not self.lost:
            self._settle(out)
        return "".join(out)


def lean_driver(base: type[Any]) -> type[Any]:
    """``base`` (a Textual driver class) writing through an ``SgrDelta``."""

    class LeanDriver(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sgr = SgrDelta()

        def write(self, data: str) -> None:
            super().write(self._sgr.filter(data))

    LeanDriver.__name__ = LeanDriver.__qualname__ = f"Lean{base.__name__}"
    return LeanDriver
