"""The console's private run directory and the one settings object holding every endpoint.

Owns where a run lives (``$XDG_RUNTIME_DIR/multipar-console/run-…`` or
``/tmp/multipar-console-$UID/run-…``, mode 0700 so no other local user can reach the sockets
or send a command), the four ZeroMQ endpoints (``Endpoints``), the log and pid files, and the
pruning of old runs (the newest ``KEEP_RUNS`` are kept).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass, replace
from pathlib import Path

from feed.private import private_file

log = logging.getLogger(__name__)

KEEP_RUNS = 10
MAX_IPC_PATH = 100  # sun_path holds 108 bytes on Linux; stay well inside it
RUN_PREFIX = "run-"
APP_DIR = "multipar-console"


class RunDirError(Exception):
    """The run directory cannot be used safely; the message says which path and why."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Every ZeroMQ endpoint of one run; nothing else in the code spells an endpoint."""

    feed_pub: str  # feed PUB (ticks, _hb, _status)
    feed_rep: str  # feed ROUTER (history requests)
    engine_pub: str  # engine PUB (pair, portfolio, decision, fill, _hb)
    engine_cmd: str  # engine ROUTER (commands and acks)
    daemon_pub: str = ""  # daemon PUB (its children's states, its notices); "" = no daemon
    daemon_ctl: str = ""  # daemon ROUTER (every console command; engine ones are relayed)

    @classmethod
    def ipc(cls, run_dir: Path) -> Endpoints:
        eps = cls(
            feed_pub=f"ipc://{run_dir}/feed.pub",
            feed_rep=f"ipc://{run_dir}/feed.rep",
            engine_pub=f"ipc://{run_dir}/engine.pub",
            engine_cmd=f"ipc://{run_dir}/engine.cmd",
            daemon_pub=f"ipc://{run_dir}/daemon.pub",
            daemon_ctl=f"ipc://{run_dir}/daemon.ctl",
        )
        eps.check()
        return eps

    @classmethod
    def tcp(cls, host: str, base_port: int) -> Endpoints:
        """Four consecutive ports on one host, for a feed or engine on another machine."""
        return cls(
            feed_pub=f"tcp://{host}:{base_port}",
            feed_rep=f"tcp://{host}:{base_port + 1}",
            engine_pub=f"tcp://{host}:{base_port + 2}",
            engine_cmd=f"tcp://{host}:{base_port + 3}",
        )

    def as_dict(self) -> dict[str, str]:
        d = {
            "feed_pub": self.feed_pub,
            "feed_rep": self.feed_rep,
            "engine_pub": self.engine_pub,
            "engine_cmd": self.engine_cmd,
        }
        if self.daemon_pub or self.daemon_ctl:
            d.update(daemon_pub=self.daemon_pub, daemon_ctl=self.daemon_ctl)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Endpoints:
        """The endpoints a daemon wrote to its ``daemon.json``; ``RunDirError`` if unusable."""
        names = ("feed_pub", "feed_rep", "engine_pub", "engine_cmd", "daemon_pub", "daemon_ctl")
        values = {k: d.get(k, "") for k in names}
        if not all(isinstance(v, str) for v in values.values()):
            raise RunDirError("endpoints: every endpoint must be a string")
        eps = cls(**values)  # type: ignore[arg-type]
        eps.check()
        return eps

    def with_overrides(self, **overrides: str | None) -> Endpoints:
        """Replace the endpoints given (None = keep), e.g. from --engine-cmd tcp://…"""
        given = {k: v for k, v in overrides.items() if v}
        eps = replace(self, **given) if given else self
        eps.check()
        return eps

    def check(self) -> None:
        for name, ep in self.as_dict().items():
            if ep.startswith("ipc://"):
                if len(ep) - len("ipc://") >= MAX_IPC_PATH:
                    raise RunDirError(
                        f"endpoint {name} path is {len(ep) - 6} chars, the limit is {MAX_IPC_PATH - 1}:"
                        f" {ep} (use a shorter --run-dir)"
                    )
            elif not ep.startswith(("tcp://", "inproc://")):
                raise RunDirError(f"endpoint {name} {ep!r} is not ipc://PATH or tcp://HOST:PORT")


@dataclass(frozen=True, slots=True)
class LogFiles:
    """Where each process writes its log; the screen never gets one."""

    feed: Path
    engine: Path
    console: Path

    def make_private(self) -> None:
        """The children's logs 0600 (created so, or tightened with a log line) whatever the
        umask. A failure is logged; the child opening the file refuses it with the reason."""
        for path in (self.feed, self.engine):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if note := private_file(path):
                    log.warning("%s", note)
            except OSError as exc:
                log.error("%s", exc)


@dataclass(frozen=True, slots=True)
class RunDir:
    path: Path
    endpoints: Endpoints
    logs: LogFiles
    pids: Path  # pids.json: the console's and its children's pids, rewritten at every spawn

    @classmethod
    def at(cls, path: Path) -> RunDir:
        return cls(
            path=path,
            endpoints=Endpoints.ipc(path),
            logs=LogFiles(path / "feed.log", path / "engine.log", path / "console.log"),
            pids=path / "pids.json",
        )


def _usable_private_dir(path: Path, *, create: bool) -> Path:
    """Create (0700) or check ``path``: a real directory, ours, no access for anyone else."""
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700, parents=False)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot use as run directory: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise RunDirError(
            f"{path}: is not a directory (a symlink or file is in the way; remove it)"
        )
    if st.st_uid != os.getuid():
        raise RunDirError(
            f"{path}: owned by uid {st.st_uid}, not by you (uid {os.getuid()}); refusing to put sockets there"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)  # ours, so tighten it rather than refuse
    return path


def runs_root(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/multipar-console`` if usable, else ``/tmp/multipar-console-$UID``."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK | os.X_OK):
        candidate = Path(xdg) / APP_DIR
        # the run dir name and the longest socket name must fit under the ipc limit
        if len(str(candidate)) + 40 < MAX_IPC_PATH:
            try:
                return _usable_private_dir(candidate, create=True)
            except RunDirError as exc:
                log.warning("not using XDG_RUNTIME_DIR: %s", exc)
    return _usable_private_dir(Path(f"/tmp/{APP_DIR}-{os.getuid()}"), create=True)


def _run_name(now: float | None = None) -> str:
    t = time.localtime(time.time() if now is None else now)
    return f"{RUN_PREFIX}{time.strftime('%Y%m%d-%H%M%S', t)}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_runs(root: Path, keep: int = KEEP_RUNS, *, current: Path | None = None) -> list[Path]:
    """Remove run directories beyond the newest ``keep``; never the current one or a live run's."""
    runs = sorted(
        (
            p
            for p in root.iterdir()
            if p.name.startswith(RUN_PREFIX) and p.is_dir() and not p.is_symlink()
        ),
        key=lambda p: p.name,
    )
    removed: list[Path] = []
    for old in runs[: max(0, len(runs) - keep)]:
        if current is not None and old == current:
            continue
        pid_part = old.name.rsplit("-", 1)[-1].split(".")[0]
        if pid_part.isdigit() and int(pid_part) != os.getpid() and _pid_alive(int(pid_part)):
            continue  # another console may still be running there
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    if removed:
        log.info("pruned %d old run directories under %s", len(removed), root)
    return removed


def create_run_dir(
    run_dir: str | os.PathLike[str] | None = None,
    *,
    root: Path | None = None,
    keep: int = KEEP_RUNS,
    now: float | None = None,
) -> RunDir:
    """Make this run's private directory.

    ``run_dir`` (the CLI's --run-dir) is used as is (created 0700 if missing, refused if another
    user owns it); otherwise a fresh ``run-YYYYmmdd-HHMMSS-PID`` under ``root`` (default
    ``runs_root()``), falling back to the short /tmp root when the socket paths would be too long.
    """
    if run_dir is not None:
        path = Path(run_dir).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        _usable_private_dir(path, create=True)
        return RunDir.at(path)
    base = root if root is not None else runs_root()
    name = _run_name(now)
    if len(str(base / name / "engine.cmd")) >= MAX_IPC_PATH:
        short = _usable_private_dir(Path(f"/tmp/{APP_DIR}-{os.getuid()}"), create=True)
        log.warning("run root %s is too long for ipc socket paths; using %s", base, short)
        base = short
    path = base / name
    suffix = 0
    while (
        path.exists()
    ):  # two consoles started in the same second by the same pid: impossible, but cheap
        suffix += 1
        path = base / f"{name}.{suffix}"
    _usable_private_dir(path, create=True)
    prune_runs(base, keep, current=path)
    return RunDir.at(path)
