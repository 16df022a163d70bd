"""console/sgr.py: the console's output with its SGR sequences sent as changes prints exactly
what the original prints, character by character, with the same colours and attributes.

The reference below is a terminal's view written independently of the module: every printed
character with the style in force when it was printed (SGR codes applied one by one, as a
VT/xterm terminal does), every other escape sequence in order, and the style left at the end of
each write."""

from __future__ import annotations

import io
import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style
from rich.text import Text

from console.sgr import SgrDelta, lean_driver

_TOKEN = re.compile(
    r"\x1b\[([0-9;:]*)m|(\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.)|(.)", re.S
)


class Terminal:
    """What a terminal makes of a stream: printed characters with their style, other sequences."""

    def __init__(self) -> None:
        self.style: dict[str, object] = {}
        self.saved: dict[str, object] = {}
        self.out: list[tuple[str, tuple[tuple[str, object], ...]]] = []
        self.ends: list[tuple[tuple[str, object], ...]] = []

    def sgr(self, params: str) -> None:
        codes = params.split(";") if params else ["0"]
        i = 0
        s = self.style
        while i < len(codes):
            c = codes[i]
            i += 1
            if ":" in c:  # a sub-parameter (curly underline, ...): kept as an attribute of its own
                s["sub:" + c] = True
            elif c in ("", "0"):
                s.clear()
            elif c in ("38", "48"):
                n = 2 if codes[i] == "5" else 4
                s["fg" if c == "38" else "bg"] = tuple(codes[i : i + n])
                i += n
            elif c == "39":
                s.pop("fg", None)
            elif c == "49":
                s.pop("bg", None)
            elif 30 <= int(c) <= 37 or 90 <= int(c) <= 97:
                s["fg"] = (c,)
            elif 40 <= int(c) <= 47 or 100 <= int(c) <= 107:
                s["bg"] = (c,)
            elif c == "22":
                s.pop("bold", None), s.pop("dim", None)
            elif c == "24":
                s.pop("underline", None), s.pop("underline2", None)
            elif c in ("23", "25", "27", "28", "29", "55"):
                s.pop({"23": "italic", "25": "blink", "27": "reverse", "28": "conceal", "29": "strike",
                       "55": "overline"}[c], None)  # fmt: skip
            else:
                name = {"1": "bold", "2": "dim", "3": "italic", "4": "underline", "5": "blink", "7": "reverse",
                        "8": "conceal", "9": "strike", "21": "underline2", "53": "overline"}.get(c, "code" + c)  # fmt: skip
                s[name] = True

    def write(self, data: str) -> None:
        for m in _TOKEN.finditer(data):
            if m.group(1) is not None:
                self.sgr(m.group(1))
            elif m.group(2) in (
                "\x1b7",
                "\x1b8",
            ):  # DECSC / DECRC: the style is saved and restored too
                if m.group(2) == "\x1b7":
                    self.saved = dict(self.style)
                else:
                    self.style = dict(self.saved)
                self.out.append((m.group(2), ()))
            elif m.group(2) is not None:  # an erase paints the background: the style counts
                cup = re.fullmatch(r"\x1b\[[0-9;]*H", m.group(2)) is not None
                self.out.append((m.group(2), () if cup else tuple(sorted(self.style.items()))))
            else:
                self.out.append((m.group(3), tuple(sorted(self.style.items()))))
        self.ends.append(tuple(sorted(self.style.items())))


def both(writes: list[str]) -> tuple[Terminal, Terminal, int, int]:
    plain, lean, delta = Terminal(), Terminal(), SgrDelta()
    sent = 0
    for w in writes:
        plain.write(w)
        f = delta.filter(w)
        sent += len(f)
        lean.write(f)
    return plain, lean, sum(map(len, writes)), sent


def textual_like(spans: list[tuple[str, Style]], per_line: int = 5) -> str:
    """Spans rendered the way Textual writes its lines: a cursor move to each line, then every
    span with its full style before it and a reset after it."""
    con = Console(
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        width=200,
        legacy_windows=False,
    )
    out = []
    for i, (text, style) in enumerate(spans):
        if i % per_line == 0:
            out.append(f"\x1b[{i // per_line % 20 + 1};4H")
        with con.capture() as cap:
            con.print(Text(text, style=style), end="")
        out.append(cap.get())
    return "".join(out)


PANE = [  # a pane's lines as the console styles them: grey labels, white values, one background
    ("bid ", Style(color="#8d8d8d", bgcolor="#121212")), ("69.93", Style(color="#e0e0e0", bgcolor="#121212")),
    ("  ask ", Style(color="#8d8d8d", bgcolor="#121212")), ("69.96", Style(color="#e0e0e0", bgcolor="#121212")),
    ("C003/USDT", Style(bold=True, color="#e0e0e0", bgcolor="#121212")),
    ("  VOLATILE", Style(color="#8d8d8d", bgcolor="#121212")), (" ACTIVE ", Style(bold=True, color="#000000", bgcolor="#4ebf71")),
    ("▼ -0.93%", Style(color="#b93c5b", bgcolor="#121212")), ("dim note", Style(dim=True, italic=True, bgcolor="#121212")),
    ("plain", Style()), ("link", Style(link="https://example.invalid/x", underline=True)),
    ("256", Style(color="color(208)", bgcolor="color(17)")), ("ansi", Style(color="red", bgcolor="blue", reverse=True)),
]  # fmt: skip


def test_a_pane_prints_the_same_with_a_third_fewer_bytes() -> None:
    writes = [
        "\x1b[?2026h" + textual_like(PANE[:9] * 4) + textual_like(PANE[9:]) + "\x1b[?2026l"
    ] * 3
    plain, lean, before, after = both(writes)
    assert lean.out == plain.out
    assert lean.ends == plain.ends
    assert after < before * 0.75, (before, after)


def test_styles_left_open_across_writes_and_unknown_codes_pass_through() -> None:
    writes = [
        "\x1b[1;31mbold red",  # left open at the end of a write
        " still\x1b[22mnot bold\x1b[0m\x1b[4:3mcurly\x1b[38;2;1;2;3mstill curly\x1b[0mplain",
        "\x1b[2;38;5;9;48;5;17mA\x1b[0;1mB\x1b[22;2mC\x1b[mD\x1b[7;9;53mE\x1b[27;29;55mF\x1b[K\x1b[0m",
        "\x1b]8;;https://x.invalid\x1b\\link\x1b]8;;\x1b\\\r\n\x1b[21mdouble\x1b[24m\x1b[5;8mG\x1b[25;28m",
        "\x1b[38;2;1;2mshort truecolour\x1b[0m tail",  # malformed: passed through, recovered at the reset
        "\x1b[31mA\x1b7\x1b[0;32mB\x1b8\x1b[0;32mC\x1b[1mD\x1b[0mE",  # DECRC brings the saved style (red) back
    ]
    plain, lean, _, _ = both(writes)
    assert lean.out == plain.out
    assert lean.ends == plain.ends


COLOURS = st.sampled_from(
    [None, "#8d8d8d", "#e0e0e0", "#121212", "red", "bright_green", "color(208)", "default"]
)


@st.composite
def spans(draw: st.DrawFn) -> list[tuple[str, Style]]:
    out = []
    for _ in range(draw(st.integers(1, 12))):
        style = Style(
            color=draw(COLOURS), bgcolor=draw(COLOURS), bold=draw(st.booleans()), dim=draw(st.booleans()),
            italic=draw(st.booleans()), underline=draw(st.booleans()), reverse=draw(st.booleans()),
            strike=draw(st.booleans()), underline2=draw(st.booleans()), overline=draw(st.booleans()),
        )  # fmt: skip
        out.append((draw(st.text("ab ▲·", min_size=1, max_size=5)), style))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), min_size=1, max_size=4), st.lists(st.integers(0, 400), max_size=3))
def test_any_styled_stream_prints_the_same(
    frames: list[list[tuple[str, Style]]], cuts: list[int]
) -> None:
    stream = "".join(textual_like(f) for f in frames)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    # writes cut anywhere but inside an escape sequence (Textual writes whole sequences)
    points = [
        p for p in points if p in (0, len(stream)) or "\x1b" not in stream[max(0, p - 24) : p]
    ]
    writes = [stream[a:b] for a, b in itertools.pairwise(points) if b > a]
    plain, lean, _, _ = both(writes)
    assert lean.out == plain.out
    assert lean.ends == plain.ends


def test_the_driver_writes_through_the_filter() -> None:
    sent: list[str] = []

    class Base:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def write(self, data: str) -> None:
            sent.append(data)

    driver = lean_driver(Base)()
    driver.write("\x1b[31;48;2;1;2;3mA\x1b[0m\x1b[32;48;2;1;2;3mB\x1b[0m")
    assert sent == ["\x1b[31;48;2;1;2;3mA\x1b[32mB\x1b[0m"]
    assert type(driver).__name__ == "LeanBase"
