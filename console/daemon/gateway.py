"""Remote attach over tcp: ``RemoteGateway``, the daemon's ipc endpoints relayed over CURVE.

Owns ``RemoteGateway``, which lets a console on another machine attach to a book's daemon. The
daemon's four local ipc endpoints stay as they are (no CURVE); the gateway relays them to four
consecutive tcp ports on one host, every one a CURVE server: ``P`` feed_pub, ``P+1`` engine_pub,
``P+2`` daemon_pub (XSUB -> XPUB: subscriptions go up, messages come down, topics untouched)
and ``P+3`` daemon_ctl (DEALER -> ROUTER: the daemon sees the gateway's envelope frames and
answers ``envelope + [reply]`` as for any local client). The keys it uses (the server pair,
``authorized/``) are ``keys.py``'s.

Only clients whose public key is in ``authorized/`` get through. A ZAP handler on the
gateway's own context checks each handshake against that directory, read again at every
handshake (a key authorised while the daemon runs works at once; removing a key refuses new
connections, not open ones). Refusals are counted by that handler (``refused``, logged once
per key); clients without CURVE or with another server key never reach it and are counted from
the tcp sockets' monitors (``failed_handshakes``). The relays run in one thread, a poll loop
rather than ``zmq.proxy``: every send is non-blocking, so a slow laptop never stalls the
daemon (what cannot be sent is counted in ``dropped``), the same loop reads the monitors, and
``stop()`` ends it through a pipe.

Fail-closed on purpose: libzmq accepts any CURVE client when no ZAP handler answers in the
socket's context, so every tcp socket carries a ZAP domain with ``ZAP_ENFORCE_DOMAIN`` (no
handler, no entry), the handler starts before the first bind and stops after the last close.

Never imports Textual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Mapping
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from console.daemon.keys import (
    APP_DIR,
    AUTHORIZED_DIR,
    CurveError,
    authorized_keys,
    load_server_pair,
)

log = logging.getLogger(__name__)

# the four local endpoints the gateway relays, in port order: base_port + index
LOCAL_ENDPOINTS = ("feed_pub", "engine_pub", "daemon_pub", "daemon_ctl")
ZAP_DOMAIN = "multipar-console"
HEARTBEAT_IVL_MS = 5_000  # a laptop that vanished (NAT, sleep) is dropped after the timeout
HEARTBEAT_TIMEOUT_MS = 15_000
STOP_JOIN_S = 5.0
_BATCH = 256  # messages relayed from one socket before the others get a turn
_MAX_TOLD = 1024  # refused keys remembered for "log once per key"
_MONITOR_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
_PROTOCOL_ERRORS = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "the client does not use CURVE",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "the client has another server key",
}


class _Guard(ThreadAuthenticator):
    """The ZAP handler: a CURVE client passes when its key is in ``authorized/`` (read again
    at each handshake); the others are counted and logged once per key (public keys only)."""

    def __init__(self, context: zmq.Context, keys_dir: Path) -> None:
        super().__init__(context=context)
        self.keys_dir = keys_dir
        self.refused = 0
        self.accepted = 0
        self._address = "?"
        self._told: set[bytes] = set()

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # ZAP frames: version, request id, domain, address, identity, mechanism, credentials
        self._address = msg[3].decode("utf-8", "replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def callback(self, domain: str, client_key: bytes) -> bool:
        """pyzmq's credentials-provider hook: ``client_key`` is the client's z85 public key."""
        try:
            allowed = client_key in authorized_keys(self.keys_dir).values()
        except Exception:  # never let a bad file kill the ZAP thread: refuse instead
            log.exception("remote attach: cannot read %s", self.keys_dir / AUTHORIZED_DIR)
            allowed = False
        if allowed:
            self.accepted += 1
            return True
        self.refused += 1
        if client_key not in self._told and len(self._told) < _MAX_TOLD:
            self._told.add(client_key)
            log.warning(
                "remote attach refused a client from %s: its public key %s is not authorised "
                "(to allow it: `%s keys authorize ITS.key`)",
                self._address,
                client_key.decode("ascii", "replace"),
                APP_DIR,
            )
        return False


def _tcp(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


class RemoteGateway:
    """The daemon's four ipc endpoints relayed to ``host:base_port..base_port+3`` over CURVE.

    ``start()`` raises CurveError (no server key, a port in use) with nothing left running;
    ``stop()`` closes every socket and joins both threads (the ZAP handler's and the relay's);
    it is idempotent, and a stopped gateway does not start again.
    """

    def __init__(self, local: Mapping[str, str], host: str, base_port: int, keys_dir: Path) -> None:
        missing = [name for name in LOCAL_ENDPOINTS if not local.get(name)]
        if missing:
            raise ValueError(f"RemoteGateway needs the local endpoints {', '.join(missing)}")
        if not 0 < base_port <= 65535 - 3:
            raise CurveError(
                f"{host}:{base_port}: the gateway needs four ports {base_port}..{base_port + 3} "
                "(pick a base port from 1 to 65532)"
            )
        self.local = {name: local[name] for name in LOCAL_ENDPOINTS}
        self.host = host
        self.base_port = base_port
        self.keys_dir = Path(keys_dir)
        self.failed_handshakes = 0  # clients without CURVE, or with another server key
        self.dropped = 0  # messages a full or absent peer could not take
        self._ctx: zmq.Context | None = None
        self._guard: _Guard | None = None
        self._thread: threading.Thread | None = None
        self._pipe: zmq.Socket | None = None
        self._stopped = False
        self._told_failures: set[tuple[int, int]] = set()

    # -- what the daemon reads

    def endpoints(self) -> dict[str, str]:
        """The four tcp endpoints, keyed like the local ones."""
        return {name: _tcp(self.host, self.base_port + i) for i, name in enumerate(LOCAL_ENDPOINTS)}

    @property
    def refused(self) -> int:
        """Handshakes refused because the client's key is not authorised."""
        return self._guard.refused if self._guard is not None else 0

    @property
    def accepted(self) -> int:
        """Handshakes let through (an authorised key; counts reconnections too)."""
        return self._guard.accepted if self._guard is not None else 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> RemoteGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- life

    def start(self) -> None:
        if self._ctx is not None or self._stopped:
            raise RuntimeError("RemoteGateway.start() runs once")
        if not zmq.has("curve"):
            raise CurveError(f"{self.keys_dir}: this libzmq has no CURVE (reinstall pyzmq)")
        _public, secret = load_server_pair(self.keys_dir)
        if not authorized_keys(self.keys_dir):
            log.warning(
                "remote attach: no client authorised in %s yet (`%s keys client NAME`)",
                self.keys_dir / AUTHORIZED_DIR,
                APP_DIR,
            )
        ctx = zmq.Context()
        guard = _Guard(ctx, self.keys_dir)
        opened: list[zmq.Socket] = []
        try:
            guard.start()  # the ZAP handler is bound before any tcp socket exists
            guard.thread.name = f"curve-gateway-zap-{self.base_port}"
            guard.configure_curve_callback(ZAP_DOMAIN, credentials_provider=guard)
            relays, monitors = self._open(ctx, secret, opened)
            self._pipe = ctx.socket(zmq.PAIR)
            opened.append(self._pipe)
            self._pipe.linger = 0
            pipe_addr = f"inproc://curve-gateway-{id(self)}"
            self._pipe.bind(pipe_addr)
            thread_pipe = ctx.socket(zmq.PAIR)
            opened.append(thread_pipe)
            thread_pipe.linger = 0
            thread_pipe.connect(pipe_addr)
        except BaseException:
            for sock in opened:
                with contextlib.suppress(zmq.ZMQError):
                    sock.disable_monitor()
                sock.close(linger=0)
            guard.stop()
            ctx.term()
            self._pipe = None
            raise
        self._ctx, self._guard = ctx, guard
        self._thread = threading.Thread(
            target=self._run,
            args=(relays, monitors, thread_pipe),
            name=f"curve-gateway-{self.base_port}",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "remote attach: listening with CURVE on %s:%d-%d (keys in %s)",
            self.host,
            self.base_port,
            self.base_port + 3,
            self.keys_dir,
        )

    def _open(
        self, ctx: zmq.Context, secret: bytes, opened: list[zmq.Socket]
    ) -> tuple[dict[zmq.Socket, zmq.Socket], dict[zmq.Socket, zmq.Socket]]:
        """The eight relay sockets ({socket: its peer}, both ways) and the four monitors
        ({monitor: the tcp socket it watches}); every socket made is appended to ``opened``."""
        relays: dict[zmq.Socket, zmq.Socket] = {}
        monitors: dict[zmq.Socket, zmq.Socket] = {}
        for index, name in enumerate(LOCAL_ENDPOINTS):
            is_ctl = name == "daemon_ctl"
            outer = ctx.socket(zmq.ROUTER if is_ctl else zmq.XPUB)
            opened.append(outer)
            inner = ctx.socket(zmq.DEALER if is_ctl else zmq.XSUB)
            opened.append(inner)
            for sock in (outer, inner):
                sock.linger = 0
            outer.curve_server = True
            outer.curve_secretkey = secret
            outer.zap_domain = ZAP_DOMAIN.encode()
            with contextlib.suppress(zmq.ZMQError, AttributeError):
                outer.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            outer.heartbeat_ivl = HEARTBEAT_IVL_MS
            outer.heartbeat_timeout = HEARTBEAT_TIMEOUT_MS
            if ":" in self.host:
                outer.ipv6 = True
            monitor = outer.get_monitor_socket(_MONITOR_EVENTS)
            opened.append(monitor)
            monitor.linger = 0
            port = self.base_port + index
            try:
                outer.bind(_tcp(self.host, port))
            except zmq.ZMQError as exc:
                raise CurveError(
                    f"{self.host}:{port}: cannot listen ({exc.strerror}); pick another port "
                    "(the gateway needs four in a row) or stop what holds it"
                ) from exc
            inner.connect(self.local[name])
            relays[outer] = inner
            relays[inner] = outer
            monitors[monitor] = outer
        return relays, monitors

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._ctx is None:
            return
        thread, pipe = self._thread, self._pipe
        if pipe is not None:
            with contextlib.suppress(zmq.ZMQError):
                pipe.send(b"stop", zmq.NOBLOCK)
        if thread is not None:
            thread.join(STOP_JOIN_S)
        if pipe is not None:
            pipe.close(linger=0)
        self._pipe = None
        if thread is not None and thread.is_alive():
            log.error("remote attach: the relay thread did not stop; its sockets stay open")
            return
        # the tcp sockets are closed: only now may the ZAP handler go (see the module doc)
        if self._guard is not None:
            self._guard.stop()
        self._ctx.term()
        log.info("remote attach: stopped (accepted %d, refused %d)", self.accepted, self.refused)

    # -- the relay thread

    def _run(
        self,
        relays: dict[zmq.Socket, zmq.Socket],
        monitors: dict[zmq.Socket, zmq.Socket],
        pipe: zmq.Socket,
    ) -> None:
        poller = zmq.Poller()
        for sock in (*relays, *monitors, pipe):
            poller.register(sock, zmq.POLLIN)
        try:
            while True:
                for sock, _ in poller.poll():
                    if sock is pipe:
                        return
                    if sock in monitors:
                        self._on_monitor(sock)
                    else:
                        self._pump(sock, relays[sock])
        except Exception:
            log.exception("remote attach: the relay stopped")
        finally:
            for monitor, watched in monitors.items():
                with contextlib.suppress(zmq.ZMQError):
                    watched.disable_monitor()
                monitor.close(linger=0)
            for sock in relays:
                sock.close(linger=0)
            pipe.close(linger=0)

    def _pump(self, src: zmq.Socket, dst: zmq.Socket) -> None:
        for _ in range(_BATCH):
            try:
                frames = src.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                dst.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.ZMQError:  # full (EAGAIN) or no route: dropped, never waited for
                self.dropped += 1

    def _on_monitor(self, monitor: zmq.Socket) -> None:
        while True:
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2 or len(frames[0]) != 6:
                continue
            event, value = struct.unpack("=HI", frames[0])
            self.failed_handshakes += 1
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                reason = _PROTOCOL_ERRORS.get(value, f"protocol error {value:#x}")
            else:  # NO_DETAIL: an errno (EFAULT: no ZAP handler answered, refused)
                reason = f"no detail: {os.strerror(value)}"
            if (event, value) not in self._told_failures and len(self._told_failures) < 64:
                self._told_failures.add((event, value))
                log.warning(
                    "remote attach: a handshake failed on %s (%s); said once per reason",
                    frames[1].decode("utf-8", "replace"),
                    reason,
                )
