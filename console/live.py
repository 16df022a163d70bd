"""Before real money: the API credentials, and the operator's typed confirmation.

Owns ``Credentials`` (an API key and secret that never print themselves), ``load_credentials``
(from ``$MULTIPAR_API_KEY`` / ``$MULTIPAR_API_SECRET``, or a key file refused unless its mode
is 0600), ``confirm_live`` (type ``LIVE`` on the terminal before the first order, unless
``--yes-live``, for systemd) and ``live_env`` (how the engine process receives them: its
environment, which only its owner can read, never its argv, which every local user can).

Every refusal is one line naming the file or the variable and what to do; no line ever holds a
key, a secret or a line of the key file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine.node.live import ENV_API_KEY, ENV_API_SECRET  # what the engine reads (no ccxt import)

CONFIRM_WORD = "LIVE"
MAX_KEY_FILE = 4096  # a key file is two short lines; anything larger is not one
_KEY_NAMES = {"api_key": "key", "key": "key", "apikey": "key", ENV_API_KEY.lower(): "key",
              "api_secret": "secret", "secret": "secret", ENV_API_SECRET.lower(): "secret"}  # fmt: skip


class LiveRefused(Exception):
    """Live trading cannot start; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Credentials:
    key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str = ""  # where they came from: "environment" or the key file's path

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, key=***, secret=***)"

    __str__ = __repr__


def load_credentials(key_file: Path | None, environ: Mapping[str, str] | None = None) -> Credentials:
    """The key file when given, else the two environment variables; ``LiveRefused`` otherwise."""
    env = os.environ if environ is None else environ
    if key_file is not None:
        return _read_key_file(Path(key_file))
    key, secret = env.get(ENV_API_KEY, "").strip(), env.get(ENV_API_SECRET, "").strip()
    missing = [n for n, v in ((ENV_API_KEY, key), (ENV_API_SECRET, secret)) if not v]
    if missing:
        raise LiveRefused(
            f"--live needs the exchange's API key and secret: set {' and '.join(missing)} "
            f"(or pass --key-file PATH, a file of mode 0600 with api_key: and api_secret: lines)"
        )
    _check_value(key, ENV_API_KEY)
    _check_value(secret, ENV_API_SECRET)
    return Credentials(key, secret, "environment")


def _check_value(value: str, where: str) -> None:
    if any(c.isspace() or not c.isprintable() for c in value) or len(value) > 512:
        raise LiveRefused(f"{where}: not an API key or secret (spaces, control characters or too long)")


def _read_key_file(path: Path) -> Credentials:
    try:
        st = path.stat()
    except OSError as exc:
        raise LiveRefused(f"{path}: cannot read the key file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LiveRefused(f"{path}: the key file is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise LiveRefused(
            f"{path}: the key file is readable by others (mode {mode:04o}): chmod 600 {path}"
        )
    if st.st_size > MAX_KEY_FILE:
        raise LiveRefused(f"{path}: too large for a key file ({st.st_size} bytes)")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise LiveRefused(f"{path}: cannot read the key file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LiveRefused(f"{path}: the key file is not UTF-8 text") from None
    found: dict[str, str] = {}
    for n, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":") if ":" in line.split("=", 1)[0] else line.partition("=")
        what = _KEY_NAMES.get(name.strip().lower())
        if not sep or what is None:
            raise LiveRefused(
                f"{path}: line {n}: expected 'api_key: ...' or 'api_secret: ...' (the line is not shown)"
            )
        value = value.strip().strip("'\"")
        if what in found:
            raise LiveRefused(f"{path}: line {n}: {name.strip()} given twice")
        _check_value(value, f"{path}: line {n}")
        found[what] = value
    missing = [w for w in ("key", "secret") if not found.get(w)]
    if missing:
        raise LiveRefused(f"{path}: no api_{missing[0]}: line in the key file")
    return Credentials(found["key"], found["secret"], str(path))


def confirm_live(
    yes: bool, what: str, stdin: TextIO | None = None, stdout: TextIO | None = None,
    ask: Callable[[str], str] | None = None,
) -> None:
    """Ask for the typed word ``LIVE`` on a terminal before anything trades; ``yes`` (the
    ``--yes-live`` flag, for systemd) skips it. ``LiveRefused`` when not confirmed."""
    if yes:
        return
    import sys

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if ask is None and not (stdin.isatty() and stdout.isatty()):
        raise LiveRefused(
            "--live asks for a typed confirmation on a terminal; without one (systemd, cron) "
            "pass --yes-live"
        )
    prompt = f"LIVE trading with real money: {what}.\nType {CONFIRM_WORD} to go on: "
    try:
        answer = ask(prompt) if ask is not None else _read_line(prompt, stdin, stdout)
    except (EOFError, KeyboardInterrupt):
        answer = ""
    if answer.strip() != CONFIRM_WORD:
        raise LiveRefused(f"not confirmed (typed something other than {CONFIRM_WORD}): nothing started")


def _read_line(prompt: str, stdin: TextIO, stdout: TextIO) -> str:
    stdout.write(prompt)
    stdout.flush()
    line = stdin.readline()
    if not line:
        raise EOFError
    return line


def live_env(creds: Credentials) -> dict[str, str]:
    """What the engine process gets in its environment (never on its command line)."""
    return {ENV_API_KEY: creds.key, ENV_API_SECRET: creds.secret}


def describe(args: Any, pairs: list[str]) -> str:
    """One line for the confirmation prompt: venue, network and pairs."""
    net = "Binance testnet" if getattr(args, "testnet", False) else "Binance"
    return f"{net}, {len(pairs)} pair(s): {', '.join(pairs)}"
