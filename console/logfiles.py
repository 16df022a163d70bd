"""Where the logs an operator may want to read are, and where a copied line goes.

Owns ``ConsoleFiles``: the daemon's, feed's, engine's and console's log files (all in the
daemon's directory: the book's home, or the demo's run directory), the file a copied log line
is written to (``copied.txt`` beside them: OSC 52 reaches the clipboard only in terminals, and
through tmux or SSH, that allow it), the lines printed when the console exits, and
``write_copied`` (0600, replaced whole, never through a symlink). A console attached over tcp
has its own log only; the others are on the daemon's host, and it says so. No Textual here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

COPIED_FILE = "copied.txt"
DAEMON_LOGS = ("daemon", "feed", "engine", "console")  # the names in the daemon's directory


@dataclass(frozen=True, slots=True)
class ConsoleFiles:
    logs: tuple[tuple[str, Path], ...]  # (name, path), in the order the viewer shows them
    copied: Path
    note: str = ""  # said under the list (a remote console: where the other logs are)

    @classmethod
    def of_daemon_dir(cls, home: Path) -> ConsoleFiles:
        """The files of a daemon's directory (``BookHome``'s or a demo's run directory)."""
        home = Path(home)
        return cls(tuple((n, home / f"{n}.log") for n in DAEMON_LOGS), home / COPIED_FILE)

    @classmethod
    def for_console(cls, console_log: Path, where: str) -> ConsoleFiles:
        """A local console logs into the daemon's directory; a remote one (``where`` is the
        gateway's URL) into its own state directory."""
        if where == "local":
            return cls.of_daemon_dir(console_log.parent)
        return cls.remote(console_log, where)

    @classmethod
    def remote(cls, console_log: Path, where: str) -> ConsoleFiles:
        """A console attached over tcp to ``where``: its own log; the rest stays remote."""
        return cls(
            (("console", console_log),),
            console_log.with_name(COPIED_FILE),
            note=f"the daemon's, feed's and engine's logs are on the daemon's host ({where})",
        )

    def exit_lines(self, app_name: str, copied: bool = False) -> list[str]:
        """What the console prints once the terminal is back: one line per file."""
        width = max(len(n) for n, _ in self.logs)
        lines = [f"{app_name}: {n + ' log:':<{width + 5}} {p}" for n, p in self.logs]
        if copied:
            lines.append(f"{app_name}: {'copied:':<{width + 5}} {self.copied}")
        if self.note:
            lines.append(f"{app_name}: {self.note}")
        return lines


def print_exit_lines(files: ConsoleFiles, app_name: str, copied: bool) -> None:
    """On the terminal the console gave back; a terminal already gone (SIGHUP) is no error."""
    with contextlib.suppress(OSError, ValueError):
        print("\n".join(files.exit_lines(app_name, copied)), flush=True)


def files_help(files: ConsoleFiles | None) -> str:
    """The help screen's paragraph: where every log is, and where ``c`` writes."""
    if files is None:
        return "Log files: not known to this console (started without a daemon's directory)."
    width = max(len(n) for n, _ in files.logs)
    lines = ["Log files (L shows them, followed live; c in a log copies a line):"]
    lines += [f"  {n:<{width}}  {p}" for n, p in files.logs]
    lines.append(f"  {'copied':<{width}}  {files.copied}")
    if files.note:
        lines.append(f"  ({files.note})")
    return "\n".join(lines)


def write_copied(path: Path, text: str) -> None:
    """``text`` and a newline as the whole of ``path`` (0600, not through a symlink);
    ``OSError`` with the reason when it cannot."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
