"""Secrets and files stay private: shared by the feed, the engine and the console.

Owns the one redaction of credentials in URLs (``redact_url``: user info, and query or fragment
parameters named like a key, token, secret, signature or password), its use on free text, on
argument lists and on every formatted log line (``RedactingFormatter``); the options that may
carry credentials and the environment variables that carry them to the feed instead of its
argv (``SECRET_OPTIONS``, ``split_secret_options``); and the 0600 mode of the book and the log
files (``private_file``, ``private_log_handler``). It lives in ``feed`` because that is the
bottom layer: the engine and the console may import it, the feed may import nothing of theirs.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

ENV_WS_URL = "MULTIPAR_BINANCE_WS_URL"
ENV_REST_URL = "MULTIPAR_BINANCE_REST_URL"
# Options that may carry credentials -> the environment variable the feed reads instead.
SECRET_OPTIONS: dict[str, str] = {"--ws-url": ENV_WS_URL, "--rest-url": ENV_REST_URL}

HIDDEN = "***"
PRIVATE_MODE = 0o600
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# A parameter or option whose name matches carries a secret.
SECRET_NAME = re.compile(r"key|secret|token|passw|signature|credential|auth", re.IGNORECASE)
# A URL inside free text: scheme://, then anything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def _redact_params(text: str) -> str:
    """``a=1&apiKey=x`` -> ``a=1&apiKey=***`` (``&`` and ``;`` separated)."""
    out = []
    for part in re.split(r"([&;])", text):
        name, eq, _value = part.partition("=")
        out.append(f"{name}={HIDDEN}" if eq and SECRET_NAME.search(name) else part)
    return "".join(out)


def redact_url(url: str) -> str:
    """``url`` with its user info and secret-named query/fragment parameters replaced by ***.

    ``wss://user:pw@host:9443/ws?apiKey=abc&x=1`` -> ``wss://***@host:9443/ws?apiKey=***&x=1``.
    Anything else is kept, so the log still says where a connection went.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in the host: cut the user info by hand
        return re.sub(r"(://)[^/?#]*@", rf"\1{HIDDEN}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
    return urlunsplit(
        (parts.scheme, netloc, parts.path, _redact_params(parts.query), _redact_params(parts.fragment))
    )


def redact_text(text: str) -> str:
    """Every URL inside ``text`` (an error message, a log line) passed through ``redact_url``."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _redact_arg(arg: str) -> tuple[str, bool]:
    """One argument for the log, and whether the next one is a secret option's value."""
    name, eq, value = arg.partition("=")
    if not arg.startswith("--"):
        return redact_text(arg), False
    if SECRET_NAME.search(name):
        return (f"{name}={HIDDEN}", False) if eq else (arg, True)
    if eq:  # --feed-arg=--api-key=x: the value may be an option itself
        inner, hide_next = _redact_arg(value)
        return f"{name}={inner}", hide_next
    return arg, False


def redact_argv(argv: Sequence[str]) -> list[str]:
    """An argument list fit for a log: URLs redacted, the value of a key/secret/token option hidden."""
    out: list[str] = []
    hide_next = False
    for a in argv:
        if hide_next:
            out.append(HIDDEN)
            hide_next = False
        else:
            shown, hide_next = _redact_arg(a)
            out.append(shown)
    return out


def split_secret_options(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Take the ``SECRET_OPTIONS`` (``--ws-url URL``, ``--ws-url=URL``) out of ``argv``.

    Returns the rest of the arguments and ``{env var: value}`` for them (the last one given
    wins, as with argparse). A trailing option without a value is left for the parser to refuse.
    """
    rest: list[str] = []
    env: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        a = items[i]
        name, eq, value = a.partition("=")
        if name in SECRET_OPTIONS and eq:
            env[SECRET_OPTIONS[name]] = value
        elif a in SECRET_OPTIONS and i + 1 < len(items):
            env[SECRET_OPTIONS[a]] = items[i + 1]
            i += 1
        else:
            rest.append(a)
        i += 1
    return rest, env


class RedactingFormatter(logging.Formatter):
    """The usual format, then every URL in the line (traceback included) redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class PrivateFileError(OSError):
    """A file cannot be made private: ``str()`` is one line naming it, ``strerror`` the reason."""

    def __init__(self, path: str, reason: str, errno: int | None = None) -> None:
        super().__init__(errno, reason, path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def private_file(path: str | os.PathLike[str], *, create: bool = True) -> str | None:
    """Make ``path`` readable and writable by its owner only.

    A missing file is created empty with mode 0600 (whatever the umask) when ``create``; an
    existing regular file with group or other bits loses them (0644 -> 0600). Returns a line
    for the log when a file was tightened, else None; raises ``PrivateFileError`` naming the
    file when it can be neither created nor tightened. Anything but a regular file (a tty,
    /dev/null) is left alone.
    """
    name = os.fspath(path)
    if create:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise PrivateFileError(name, f"cannot create: {exc.strerror or exc}", exc.errno) from None
        else:
            try:
                os.fchmod(fd, PRIVATE_MODE)  # os.open's mode went through the umask
            finally:
                os.close(fd)
            return None
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PrivateFileError(name, f"cannot check its mode: {exc.strerror or exc}", exc.errno) from None
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or not mode & 0o077:
        return None
    tight = mode & PRIVATE_MODE
    try:
        os.chmod(name, tight)
    except OSError as exc:
        raise PrivateFileError(
            name,
            f"mode {mode:04o} lets other users read it and chmod {tight:04o} failed"
            f" ({exc.strerror or exc}); fix its mode or use another path",
            exc.errno,
        ) from None
    return f"{name}: mode was {mode:04o}, readable by other users; tightened to {tight:04o}"


def private_log_handler(path: str | os.PathLike[str]) -> tuple[logging.FileHandler, str | None]:
    """A file handler on ``path`` (0600, created so if missing) whose lines are redacted.

    Returns the handler and ``private_file``'s note, to be logged once logging is set up.
    Raises ``OSError`` (``PrivateFileError`` included) with the file's name when it cannot.
    """
    note = private_file(path)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    return handler, note
