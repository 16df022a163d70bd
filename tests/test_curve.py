"""Remote attach over CURVE: an authorised laptop gets every relay, anyone else gets nothing.

Real sockets throughout: a stand-in daemon (three PUBs and an echoing ROUTER on ipc), a
``RemoteGateway`` on 127.0.0.1, and clients over tcp with and without the right keys.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from console.daemon.gateway import LOCAL_ENDPOINTS, RemoteGateway
from console.daemon.keys import (
    CurveError,
    authorize,
    authorized_keys,
    keys_main,
    load_client_pair,
    load_public,
    load_server_pair,
    make_client_keys,
    make_server_keys,
    secure_client,
)

pytestmark = pytest.mark.timeout(30)

SILENCE_S = 1.0  # how long a refused client must get nothing
WAIT_S = 5.0  # the most an authorised client may take to get through (usually ~50 ms)


# --------------------------------------------------------------------------- helpers


def free_base_port() -> int:
    """A port P with P..P+3 free on 127.0.0.1 (checked by binding each)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65532:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + 4):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no four free ports in a row")


@dataclass
class Daemon:
    """The daemon's side: PUBs on feed_pub/engine_pub/daemon_pub, a ROUTER on daemon_ctl."""

    endpoints: dict[str, str]
    pubs: dict[str, zmq.Socket]
    ctl: zmq.Socket
    seen: list[list[bytes]]  # every request the ROUTER got

    def echo(self) -> None:
        """Answer every pending request as the daemon does: ``envelope + [b"re:" + payload]``."""
        while self.ctl.poll(0):
            frames = self.ctl.recv_multipart()
            self.seen.append(frames)
            self.ctl.send_multipart([*frames[:-1], b"re:" + frames[-1]])


def until(check, timeout: float, *, pump=None, step_ms: int = 10):
    """Call ``pump`` then ``check`` every ``step_ms`` until ``check`` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        if pump is not None:
            pump()
        got = check()
        if got or time.monotonic() >= deadline:
            return got
        time.sleep(step_ms / 1000)


def recv_now(sock: zmq.Socket) -> list[bytes] | None:
    return sock.recv_multipart() if sock.poll(0) else None


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    make_server_keys(path)
    make_client_keys(path, "laptop")
    return path


@pytest.fixture
def daemon(ctx: zmq.Context) -> Iterator[Daemon]:
    ipc = Path(tempfile.mkdtemp(prefix="cv-", dir="/tmp"))
    ipc.chmod(0o700)
    endpoints = {name: f"ipc://{ipc}/{name}" for name in LOCAL_ENDPOINTS}
    pubs = {}
    for name in ("feed_pub", "engine_pub", "daemon_pub"):
        pubs[name] = ctx.socket(zmq.PUB)
        pubs[name].linger = 0
        pubs[name].bind(endpoints[name])
    ctl = ctx.socket(zmq.ROUTER)
    ctl.linger = 0
    ctl.bind(endpoints["daemon_ctl"])
    try:
        yield Daemon(endpoints, pubs, ctl, [])
    finally:
        for s in (*pubs.values(), ctl):
            s.close(linger=0)
        shutil.rmtree(ipc, ignore_errors=True)


@pytest.fixture
def gateway(daemon: Daemon, keys_dir: Path) -> Iterator[RemoteGateway]:
    gw = RemoteGateway(daemon.endpoints, "127.0.0.1", free_base_port(), keys_dir)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def client(
    ctx: zmq.Context,
    kind: int,
    endpoint: str,
    *,
    server: bytes | None,
    pair: tuple[bytes, bytes] | None,
    topic: bytes = b"",
) -> zmq.Socket:
    """A SUB (subscribed to ``topic``) or DEALER; CURVE when ``server`` and ``pair`` are given."""
    sock = ctx.socket(kind)
    sock.linger = 0
    if server is not None and pair is not None:
        secure_client(sock, server, pair[0], pair[1])
    if kind == zmq.SUB:
        sock.subscribe(topic)
    sock.connect(endpoint)
    return sock


# --------------------------------------------------------------------------- the relays


def test_an_authorised_client_gets_every_relay_and_its_ctl_replies(
    ctx: zmq.Context, daemon: Daemon, gateway: RemoteGateway, keys_dir: Path
) -> None:
    remote = gateway.endpoints()
    assert remote == {
        name: f"tcp://127.0.0.1:{gateway.base_port + i}" for i, name in enumerate(LOCAL_ENDPOINTS)
    }
    server = load_public(keys_dir / "server.key")
    pair = load_client_pair(keys_dir / "clients" / "laptop.key_secret")
    topics = {"feed_pub": b"_hb", "engine_pub": b"pair", "daemon_pub": b"_child"}
    subs = {
        name: client(ctx, zmq.SUB, remote[name], server=server, pair=pair, topic=topic)
        for name, topic in topics.items()
    }
    ctl = client(ctx, zmq.DEALER, remote["daemon_ctl"], server=server, pair=pair)
    try:
        for name, topic in topics.items():
            pub, sub = daemon.pubs[name], subs[name]

            def publish(pub: zmq.Socket = pub, topic: bytes = topic) -> None:
                pub.send_multipart([b"other", b"not subscribed"])
                pub.send_multipart([topic, b"body:" + topic])

            got = until(lambda sub=sub: recv_now(sub), WAIT_S, pump=publish)
            assert got == [topic, b"body:" + topic], name  # topic kept, filter kept

        ctl.send_multipart([b"ping"])
        reply = until(lambda: recv_now(ctl), WAIT_S, pump=daemon.echo)
        assert reply == [b"re:ping"]
        # the daemon saw the gateway's envelope (its DEALER's id, the client's id) + the payload
        assert len(daemon.seen) == 1
        assert len(daemon.seen[0]) == 3
        assert daemon.seen[0][-1] == b"ping"
        assert gateway.accepted >= 4
        assert gateway.refused == 0
        assert gateway.failed_handshakes == 0
    finally:
        for s in (*subs.values(), ctl):
            s.close(linger=0)


def test_refused_clients_get_nothing_and_are_counted(
    ctx: zmq.Context,
    daemon: Daemon,
    gateway: RemoteGateway,
    keys_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="console.daemon.gateway")
    remote = gateway.endpoints()
    server = load_public(keys_dir / "server.key")
    good = load_client_pair(keys_dir / "clients" / "laptop.key_secret")
    # a client pair made on another machine, never authorised here
    elsewhere = tmp_path / "elsewhere"
    stranger_public_file, stranger_secret_file = make_client_keys(elsewhere, "stranger")
    stranger = load_client_pair(stranger_secret_file)
    other_server = load_public(make_server_keys(elsewhere)[0])

    kinds = {
        "unauthorised key": {"server": server, "pair": stranger},
        "no CURVE": {"server": None, "pair": None},
        "another server key": {"server": other_server, "pair": good},
    }
    refused = {
        kind: (
            client(ctx, zmq.SUB, remote["feed_pub"], **opts),
            client(ctx, zmq.DEALER, remote["daemon_ctl"], **opts),
        )
        for kind, opts in kinds.items()
    }
    # an authorised client in the same window: the publisher does flow, the silence is a refusal
    witness = client(ctx, zmq.SUB, remote["feed_pub"], server=server, pair=good)
    late: list[zmq.Socket] = []
    try:
        for _sub, dealer in refused.values():
            dealer.send_multipart([b"ping"], zmq.NOBLOCK)
        witnessed: list[list[bytes]] = []

        def pump() -> None:
            daemon.pubs["feed_pub"].send_multipart([b"_hb", b"beat"])
            daemon.echo()
            if (got := recv_now(witness)) is not None:
                witnessed.append(got)

        def anything() -> str | None:
            for kind, (sub, dealer) in refused.items():
                if sub.poll(0) or dealer.poll(0):
                    return kind
            return None

        assert until(anything, SILENCE_S, pump=pump) is None
        assert witnessed and witnessed[0] == [b"_hb", b"beat"]
        assert daemon.seen == []  # no refused request reached the daemon
        assert gateway.refused >= 2  # the stranger's SUB and DEALER
        assert gateway.failed_handshakes >= 4  # no CURVE and the wrong server key, 2 each
        # logged once per key, with the public key and never a secret
        said = [r.getMessage() for r in caplog.records if "not authorised" in r.getMessage()]
        assert len(said) == 1
        assert stranger[0].decode() in said[0]
        assert stranger[1].decode() not in caplog.text
        assert good[1].decode() not in caplog.text

        # authorised while the gateway runs: the same key gets through at its next handshake
        authorize(keys_dir, stranger_public_file)
        sub = client(ctx, zmq.SUB, remote["engine_pub"], server=server, pair=stranger)
        late.append(sub)
        got = until(
            lambda: recv_now(sub),
            WAIT_S,
            pump=lambda: daemon.pubs["engine_pub"].send_multipart([b"pair", b"now"]),
        )
        assert got == [b"pair", b"now"]
    finally:
        for s in (*(s for pair in refused.values() for s in pair), witness, *late):
            s.close(linger=0)


def test_without_its_zap_handler_the_gateway_lets_nobody_in(
    ctx: zmq.Context, daemon: Daemon, gateway: RemoteGateway, keys_dir: Path
) -> None:
    """Fail-closed: libzmq lets any CURVE client in when no ZAP handler answers, unless the
    socket has a ZAP domain and ZAP_ENFORCE_DOMAIN; the gateway's sockets have both."""
    assert gateway._guard is not None
    gateway._guard.stop()  # the handler gone, the tcp sockets still open
    # libzmq closes the handler's ZAP socket in its reaper thread: a handshake in the first
    # moments may still reach that socket and wait for an answer that never comes (refused all
    # the same, but not counted), so a client that is neither let in nor refused tries again
    subs: list[zmq.Socket] = []
    got: list[list[bytes]] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while not gateway.failed_handshakes and time.monotonic() < deadline:
            sub = client(
                ctx,
                zmq.SUB,
                gateway.endpoints()["feed_pub"],
                server=load_public(keys_dir / "server.key"),
                pair=load_client_pair(keys_dir / "clients" / "laptop.key_secret"),
            )
            subs.append(sub)

            def pump(sub: zmq.Socket = sub) -> None:
                daemon.pubs["feed_pub"].send_multipart([b"_hb", b"beat"])
                for s in subs:
                    if (msg := recv_now(s)) is not None:
                        got.append(msg)

            until(lambda: gateway.failed_handshakes, 1.0, pump=pump)
        assert gateway.failed_handshakes
        until(lambda: got, 0.2, pump=pump)  # and a little longer, for good measure
        assert got == []
    finally:
        for s in subs:
            s.close(linger=0)


# --------------------------------------------------------------------------- life and ports


def test_stop_joins_every_thread_and_frees_the_ports(
    ctx: zmq.Context, daemon: Daemon, keys_dir: Path
) -> None:
    before = set(threading.enumerate())
    base = free_base_port()
    gw = RemoteGateway(daemon.endpoints, "127.0.0.1", base, keys_dir)
    gw.start()
    assert len(set(threading.enumerate()) - before) == 2  # the ZAP handler and the relay
    sub = client(
        ctx,
        zmq.SUB,
        gw.endpoints()["feed_pub"],
        server=load_public(keys_dir / "server.key"),
        pair=load_client_pair(keys_dir / "clients" / "laptop.key_secret"),
    )
    try:
        got = until(
            lambda: recv_now(sub),
            WAIT_S,
            pump=lambda: daemon.pubs["feed_pub"].send_multipart([b"_hb", b"x"]),
        )
        assert got == [b"_hb", b"x"]
    finally:
        sub.close(linger=0)
    gw.stop()
    gw.stop()  # idempotent
    assert set(threading.enumerate()) == before
    assert not gw.running
    with pytest.raises(RuntimeError):
        gw.start()

    # the same four ports bind again at once
    with RemoteGateway(daemon.endpoints, "127.0.0.1", base, keys_dir) as again:
        assert again.running
    assert set(threading.enumerate()) == before


def test_a_port_in_use_is_one_line_and_leaves_nothing_running(
    daemon: Daemon, keys_dir: Path
) -> None:
    before = set(threading.enumerate())
    base = free_base_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()
        gw = RemoteGateway(daemon.endpoints, "127.0.0.1", base, keys_dir)
        with pytest.raises(CurveError) as err:
            gw.start()
    assert f"127.0.0.1:{base + 2}" in str(err.value)
    assert "\n" not in str(err.value)
    assert set(threading.enumerate()) == before
    gw.stop()  # harmless after a failed start
    # and the ports it did bind before failing are free again
    with RemoteGateway(daemon.endpoints, "127.0.0.1", base, keys_dir):
        pass


def test_a_gateway_without_a_server_key_says_what_to_run(daemon: Daemon, tmp_path: Path) -> None:
    gw = RemoteGateway(daemon.endpoints, "127.0.0.1", free_base_port(), tmp_path / "none")
    with pytest.raises(CurveError, match=r"server\.key_secret: no server key yet .*keys init"):
        gw.start()
    gw.stop()


# --------------------------------------------------------------------------- the key store


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_key_files_are_private_and_public_files_hold_no_secret(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    public, secret = make_server_keys(keys)
    assert _mode(keys) == 0o700  # an existing directory is tightened
    c_public, c_secret = make_client_keys(keys, "laptop")
    for d in (keys, keys / "authorized", keys / "clients"):
        assert _mode(d) == 0o700, d
    for s in (secret, c_secret):
        assert _mode(s) == 0o600, s
        assert "secret-key" in s.read_text()
    authorised = keys / "authorized" / "laptop.key"
    for p in (public, c_public, authorised):
        assert "secret-key" not in p.read_text(), p
    assert load_public(authorised) == load_public(c_public)
    assert load_client_pair(c_secret)[0] == load_public(c_public)
    assert load_server_pair(keys)[0] == load_public(public)
    assert authorized_keys(keys) == {"laptop": load_public(c_public)}
    assert not list(keys.glob(".new-*"))  # the scratch directories are gone

    with pytest.raises(
        CurveError, match=r"authorized/laptop\.key: a client named .laptop. is already authorised"
    ):
        make_client_keys(keys, "laptop")
    with pytest.raises(CurveError, match="holds a secret key"):
        authorize(keys, c_secret)
    with pytest.raises(CurveError, match="no such file"):
        load_public(keys / "nope.key")
    with pytest.raises(CurveError, match="holds no secret key"):
        load_client_pair(c_public)
    bogus = tmp_path / "bogus.key"
    bogus.write_text('curve\n    public-key = "not a key"\n')
    with pytest.raises(CurveError, match=r"bogus\.key: holds no valid CURVE key"):
        load_public(bogus)
    with pytest.raises(CurveError, match="not a usable key name"):
        make_client_keys(keys, "../escape")


# --------------------------------------------------------------------------- multipar-console keys


def test_keys_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    keys = tmp_path / "cfg" / "multipar-console" / "keys"

    assert keys_main(["init"]) == 0
    out = capsys.readouterr().out
    server_public, server_secret = load_server_pair(keys)
    assert server_public.decode() in out
    assert str(keys / "server.key") in out
    assert server_secret.decode() not in out
    assert _mode(keys) == 0o700

    assert keys_main(["init"]) == 2  # never overwrites the server pair by accident
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "server.key_secret" in captured.err
    assert "--force" in captured.err
    assert load_server_pair(keys)[0] == server_public

    assert keys_main(["client", "laptop"]) == 0
    out = capsys.readouterr().out
    client_secret_file = keys / "clients" / "laptop.key_secret"
    assert str(client_secret_file) in out
    assert str(keys / "server.key") in out
    client_public, client_secret = load_client_pair(client_secret_file)
    for secret in (client_secret, server_secret):
        assert secret.decode() not in out

    # a key made on the laptop itself, authorised by its public file
    made_elsewhere, _ = make_client_keys(tmp_path / "laptop-side", "desk")
    assert keys_main(["authorize", str(made_elsewhere)]) == 0
    capsys.readouterr()

    assert keys_main(["list"]) == 0
    out = capsys.readouterr().out
    assert server_public.decode() in out
    assert "laptop" in out
    assert "desk" in out
    assert client_public.decode() in out
    assert client_secret.decode() not in out
    assert server_secret.decode() not in out

    # bad input: one line naming the file and what to do, exit 2
    for argv, names in (
        (["authorize", str(client_secret_file)], "laptop.key_secret"),
        (["authorize", str(tmp_path / "missing.key")], "missing.key"),
        (["client", "laptop"], "laptop"),
    ):
        assert keys_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert names in err

    other = tmp_path / "other"
    assert keys_main(["client", "x", "--dir", str(other)]) == 2  # no server key there yet
    err = capsys.readouterr().err
    assert "keys init" in err
    assert len(err.strip().splitlines()) == 1

    assert keys_main(["init", "--dir", str(other)]) == 0
    first = load_server_pair(other)[0]
    assert keys_main(["init", "--dir", str(other), "--force"]) == 0
    assert load_server_pair(other)[0] != first
    capsys.readouterr()
    assert keys_main([]) == 2  # argparse's usage error
    capsys.readouterr()
