"""A stand-in child process for supervisor tests: beats on a PUB socket, acks on a ROUTER.

``python tests/fake_child.py --kind feed|engine --pub EP [--cmd EP] [--silent-after S]
[--exit-after S]``. It speaks the real wire (feed/wire.py, engine/wire.py) so the console's
bridge and backend read it as they read the real children; it trades nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq

from engine import wire as engine_wire
from feed import wire as feed_wire


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=("feed", "engine"), required=True)
    p.add_argument("--pub", required=True)
    p.add_argument("--cmd")
    p.add_argument("--beat-interval", type=float, default=0.2)
    p.add_argument("--silent-after", type=float, help="stop beating after this many seconds")
    p.add_argument("--exit-after", type=float, help="exit with code 3 after this many seconds")
    args = p.parse_args()

    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(args.pub)
    router = None
    poller = zmq.Poller()
    if args.cmd:
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(args.cmd)
        poller.register(router, zmq.POLLIN)
    t0 = time.monotonic()
    next_beat = t0
    seq = 0
    while not stop[0]:
        now = time.monotonic()
        if args.exit_after is not None and now - t0 > args.exit_after:
            return 3
        if now >= next_beat and (args.silent_after is None or now - t0 < args.silent_after):
            seq += 1
            m = {"seq": seq, "kind": args.kind, "pid": os.getpid(), "ts": time.time_ns()}
            payload = feed_wire.encode_map(m) if args.kind == "feed" else engine_wire.pack(m)
            pub.send_multipart([b"_hb", payload])
            next_beat = now + args.beat_interval
        if router is not None:
            if dict(poller.poll(50)):
                ident, payload = router.recv_multipart()
                try:
                    c = engine_wire.parse_command(payload)
                    ack = engine_wire.make_ack(c["id"], c["cmd"], True, f"{c['cmd']} done")
                except engine_wire.CommandError as exc:
                    ack = engine_wire.make_ack("?", "?", False, str(exc))
                router.send_multipart([ident, ack])
        else:
            time.sleep(0.05)
    ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
