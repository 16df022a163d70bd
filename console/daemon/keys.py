"""The CURVE key store for remote attach, and ``multipar-console keys``.

Owns the key store (``$XDG_CONFIG_HOME/multipar-console/keys``, ``~/.config/...`` when unset;
directories 0700, secret files 0600)::

    server.key  server.key_secret     the daemon's pair (``keys init``)
    authorized/NAME.key               public keys of the clients allowed to attach
    clients/NAME.key(_secret)         client pairs made here, to copy to a laptop (``keys client``)

the functions that make, authorise and load those keys, ``secure_client`` (a console's socket
made a CURVE client of the gateway), ``CurveError``, and the ``keys`` subcommand
(``keys_main``). The daemon's side, the tcp gateway that checks every handshake against
``authorized/``, is ``gateway.py``.

Never imports Textual.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

APP_DIR = "multipar-console"
SERVER_NAME = "server"
AUTHORIZED_DIR = "authorized"
CLIENTS_DIR = "clients"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class CurveError(Exception):
    """A key file or a listening address that does not work; one line: the file (or host:port)
    and what to do."""


# --------------------------------------------------------------------------- the key store


def default_keys_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/multipar-console/keys`` (``~/.config/...`` when unset or relative)."""
    env = os.environ if env is None else env
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / APP_DIR / "keys"


def _private_dir(path: Path) -> Path:
    """``path`` as a directory of mode 0700 (made with its parents, tightened if looser)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError as exc:
        raise CurveError(
            f"{path}: cannot make a private key directory ({exc.strerror or exc}); "
            "pass another --dir"
        ) from exc
    return path


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise CurveError(
            f"{name!r}: not a usable key name (letters, digits, '_', '.', '-'; "
            "first a letter or digit; at most 64)"
        )
    return name


def _check_key(path: Path, key: bytes | None) -> bytes:
    try:
        ok = key is not None and len(key) == 40 and len(z85.decode(key)) == 32
    except Exception:  # z85.decode raises whatever its table lookup raises
        ok = False
    if not ok or key is None:
        raise CurveError(f"{path}: holds no valid CURVE key (make it again with `{APP_DIR} keys`)")
    return key


def _read_cert(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) of a key file, both z85; CurveError when unreadable."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        reason = "no such file" if not path.exists() else str(exc.strerror or exc)
        raise CurveError(f"{path}: {reason} (check the path; `{APP_DIR} keys` makes keys)") from exc
    except ValueError as exc:
        raise CurveError(
            f"{path}: not a CURVE key file (no `public-key` line; `{APP_DIR} keys` makes keys)"
        ) from exc
    _check_key(path, public)
    if secret is not None:
        _check_key(path, secret)
    return public, secret


def load_public(path: Path | str) -> bytes:
    """The z85 public key in a ``.key`` file (a ``.key_secret`` file holds it too)."""
    return _read_cert(Path(path))[0]


def load_server_pair(keys_dir: Path | str) -> tuple[bytes, bytes]:
    """(public, secret), z85, of the daemon's own pair in ``keys_dir``."""
    path = Path(keys_dir) / f"{SERVER_NAME}{SECRET_SUFFIX}"
    if not path.exists():
        raise CurveError(f"{path}: no server key yet (run `{APP_DIR} keys init` on this machine)")
    public, secret = _read_cert(path)
    if secret is None:
        raise CurveError(f"{path}: holds no secret key (run `{APP_DIR} keys init --force`)")
    return public, secret


def load_client_pair(secret_file: Path | str) -> tuple[bytes, bytes]:
    """(public, secret), z85, of a client pair: the ``NAME.key_secret`` file from the server."""
    path = Path(secret_file)
    public, secret = _read_cert(path)
    if secret is None:
        raise CurveError(
            f"{path}: holds no secret key (pass the client's {SECRET_SUFFIX} file made by "
            f"`{APP_DIR} keys client NAME`)"
        )
    return public, secret


def _new_pair(directory: Path, name: str, *, force: bool, what: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (0644) and ``NAME.key_secret`` (0600) into ``directory`` (0700)."""
    _private_dir(directory)
    public = directory / f"{name}{PUBLIC_SUFFIX}"
    secret = directory / f"{name}{SECRET_SUFFIX}"
    if not force and (public.exists() or secret.exists()):
        raise CurveError(f"{secret}: {what} already exists (pass --force to replace it)")
    if not zmq.has("curve"):
        raise CurveError(f"{directory}: this libzmq has no CURVE (reinstall pyzmq from its wheels)")
    # made in a private scratch dir beside them, then moved in: never a half-written or
    # world-readable secret under the final name
    scratch = Path(tempfile.mkdtemp(prefix=".new-", dir=directory))
    try:
        new_public, new_secret = (Path(p) for p in zmq.auth.create_certificates(scratch, name))
        new_secret.chmod(0o600)
        new_public.chmod(0o644)
        os.replace(new_secret, secret)
        os.replace(new_public, public)
    except OSError as exc:
        raise CurveError(f"{secret}: cannot write the key pair ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return public, secret


def make_server_keys(keys_dir: Path | str, *, force: bool = False) -> tuple[Path, Path]:
    """The daemon's pair: (``server.key``, ``server.key_secret``) in ``keys_dir``. An existing
    pair is kept (CurveError) unless ``force``: every laptop would need the new server.key."""
    return _new_pair(_private_dir(Path(keys_dir)), SERVER_NAME, force=force, what="a server key")


def _write_public(dest: Path, name: str, public: bytes) -> None:
    """A public-only key file, in the format ``zmq.auth.load_certificate`` reads."""
    text = (
        f"#   ZeroMQ CURVE Public Certificate: client {name!r} of {APP_DIR}\n"
        "metadata\n"
        "curve\n"
        f'    public-key = "{public.decode("ascii")}"\n'
    )
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        tmp.write_text(text, encoding="ascii")
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CurveError(f"{dest}: cannot write ({exc.strerror or exc})") from exc


def _authorize_key(keys_dir: Path, name: str, public: bytes, *, force: bool) -> Path:
    auth_dir = _private_dir(keys_dir / AUTHORIZED_DIR)
    dest = auth_dir / f"{_check_name(name)}{PUBLIC_SUFFIX}"
    if dest.exists() and not force:
        try:
            same = load_public(dest) == public
        except CurveError:
            same = False
        if same:
            return dest
        raise CurveError(
            f"{dest}: already authorises another key named {name!r} "
            "(rename the new file, or remove the old one first)"
        )
    _write_public(dest, name, public)
    return dest


def make_client_keys(keys_dir: Path | str, name: str, *, force: bool = False) -> tuple[Path, Path]:
    """A client pair (``clients/NAME.key``, ``clients/NAME.key_secret``), authorised at once
    (its public key copied to ``authorized/NAME.key``)."""
    keys_dir = _private_dir(Path(keys_dir))
    _check_name(name)
    dest = keys_dir / AUTHORIZED_DIR / f"{name}{PUBLIC_SUFFIX}"
    if dest.exists() and not force:
        raise CurveError(f"{dest}: a client named {name!r} is already authorised (pass --force)")
    public, secret = _new_pair(keys_dir / CLIENTS_DIR, name, force=force, what="a client key")
    _authorize_key(keys_dir, name, load_public(public), force=True)
    return public, secret


def authorize(keys_dir: Path | str, public_key_file: Path | str) -> Path:
    """Authorise a client key made elsewhere: its public ``NAME.key`` file is copied (public key
    only) to ``authorized/NAME.key``. Returns that path; the same key twice is a no-op."""
    path = Path(public_key_file)
    public, secret = _read_cert(path)
    if secret is not None:
        raise CurveError(
            f"{path}: holds a secret key; authorise the public {PUBLIC_SUFFIX} file beside it "
            "(a client's secret never goes to the server)"
        )
    name = path.name[: -len(PUBLIC_SUFFIX)] if path.name.endswith(PUBLIC_SUFFIX) else path.stem
    try:
        _check_name(name)
    except CurveError as exc:
        raise CurveError(
            f"{path}: its name does not make a client name (rename it NAME{PUBLIC_SUFFIX})"
        ) from exc
    return _authorize_key(_private_dir(Path(keys_dir)), name, public, force=False)


def _scan_authorized(keys_dir: Path) -> tuple[dict[str, bytes], list[str]]:
    """({name: z85 public key}, [one line per unreadable file]) of ``authorized/``."""
    good: dict[str, bytes] = {}
    bad: list[str] = []
    auth_dir = keys_dir / AUTHORIZED_DIR
    try:
        files = sorted(auth_dir.glob(f"*{PUBLIC_SUFFIX}"))
    except OSError:
        return good, bad
    for path in files:
        try:
            good[path.name[: -len(PUBLIC_SUFFIX)]] = load_public(path)
        except CurveError as exc:
            bad.append(str(exc))
    return good, bad


def authorized_keys(keys_dir: Path | str) -> dict[str, bytes]:
    """{client name: z85 public key} of every readable file in ``authorized/``."""
    return _scan_authorized(Path(keys_dir))[0]


def secure_client(
    sock: zmq.Socket, server_public: bytes, client_public: bytes, client_secret: bytes
) -> None:
    """Make ``sock`` a CURVE client of the gateway; call before ``connect``. Keys are z85
    (40 bytes) or raw (32 bytes), as the loaders above return them."""
    for key in (server_public, client_public, client_secret):
        if len(key) not in (32, 40):
            raise ValueError("a CURVE key is 40 z85 characters or 32 raw bytes")
    sock.curve_serverkey = server_public
    sock.curve_publickey = client_public
    sock.curve_secretkey = client_secret


# --------------------------------------------------------------------------- multipar-console keys


def _keys_init(args: argparse.Namespace, keys_dir: Path) -> int:
    public, secret = make_server_keys(keys_dir, force=args.force)
    print(f"server key pair written in {keys_dir}")
    print(f"  {public}  (public: every laptop that attaches gets a copy)")
    print(f"  {secret}  (secret, mode 0600: never leaves this machine)")
    print(f"server public key: {load_public(public).decode('ascii')}")
    print(f"next: `{APP_DIR} keys client NAME` for each laptop")
    return 0


def _keys_client(args: argparse.Namespace, keys_dir: Path) -> int:
    server_public = keys_dir / f"{SERVER_NAME}{PUBLIC_SUFFIX}"
    load_server_pair(keys_dir)  # a client pair is no use without the server's
    _public, secret = make_client_keys(keys_dir, args.name, force=args.force)
    print(f"client key pair {args.name!r} written and authorised in {keys_dir}")
    print("copy these two files to the laptop (over ssh, e.g. scp; keep the secret 0600):")
    print(f"  {secret}  (the client's key pair, secret)")
    print(f"  {server_public}  (the server's public key)")
    return 0


def _keys_authorize(args: argparse.Namespace, keys_dir: Path) -> int:
    dest = authorize(keys_dir, args.public_key_file)
    print(f"authorised {dest.name[: -len(PUBLIC_SUFFIX)]!r}: {load_public(dest).decode('ascii')}")
    print(f"  {dest}  (a running gateway takes it at the client's next handshake)")
    return 0


def _keys_list(args: argparse.Namespace, keys_dir: Path) -> int:
    print(f"keys: {keys_dir}")
    try:
        public, _secret = load_server_pair(keys_dir)
        print(f"server public key: {public.decode('ascii')}")
    except CurveError as exc:
        print(f"server: none ({exc})")
    good, bad = _scan_authorized(keys_dir)
    print(f"authorised clients: {len(good)}")
    for name, key in good.items():
        print(f"  {name}  {key.decode('ascii')}")
    for line in bad:
        print(f"  unreadable: {line}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{APP_DIR} keys",
        description="CURVE keys for attaching a console to a daemon over tcp.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="the key store (default: $XDG_CONFIG_HOME/multipar-console/keys)",
        )
        return p

    p = command("init", "make the daemon's server key pair")
    p.add_argument("--force", action="store_true", help="replace an existing server pair")
    p = command("client", "make a client key pair for a laptop, and authorise it")
    p.add_argument("name", help="the client's name (e.g. the laptop's)")
    p.add_argument("--force", action="store_true", help="replace an existing client pair")
    p = command("authorize", "authorise a client public key made elsewhere")
    p.add_argument("public_key_file", type=Path, help="the client's NAME.key (public) file")
    command("list", "show the server public key and the authorised clients")
    return parser


def keys_main(argv: list[str]) -> int:
    """``multipar-console keys ...``: 0 when done, 2 on bad input (one line on stderr)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or argparse's usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    keys_dir = args.dir if args.dir is not None else default_keys_dir()
    handlers: dict[str, Any] = {
        "init": _keys_init,
        "client": _keys_client,
        "authorize": _keys_authorize,
        "list": _keys_list,
    }
    try:
        return int(handlers[args.command](args, keys_dir))
    except CurveError as exc:
        print(f"{APP_DIR} keys: {exc}", file=sys.stderr)
        return 2
