"""The receiving floor: what a Python process that only receives the paced ticks costs.

``python -m bench.receive_floor ENDPOINT N TOPIC...`` subscribes a SUB (RCVHWM as the engine's)
to the topics as the engine does (their first bytes, ``engine/node/tick_in.tick_prefixes``),
polls and receives ``N`` messages as the engine's loop does (``poll``, then
``recv(NOBLOCK)`` until ``zmq.Again``), decodes nothing and prints one JSON line: its CPU per
message (utime + stime, libzmq's I/O thread included) and its main thread's, counted from the
first message to the last. ``bench/throughput.py`` sends it the paced run's ticks: the figure is
the part of the engine's CPU per tick that any Python subscriber pays at that pace, before a
tick is decoded.
"""

from __future__ import annotations

import json
import os
import sys
import time

import zmq

from engine.node.tick_in import tick_prefixes


def main(argv: list[str]) -> int:
    endpoint, n, topics = argv[0], int(argv[1]), argv[2:]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.setsockopt(zmq.LINGER, 0)
    for prefix in tick_prefixes(topics):  # as the engine subscribes
        sub.setsockopt(zmq.SUBSCRIBE, prefix)
    sub.connect(endpoint)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    recv = sub.recv
    got = 0
    t0 = m0 = 0.0
    while got < n:
        if not poller.poll(5000):
            break  # the sender stopped short: report what came
        while True:
            try:
                recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not got:
                times = os.times()
                t0, m0 = times.user + times.system, time.thread_time()
            got += 1
    times = os.times()
    cpu, main_cpu = times.user + times.system - t0, time.thread_time() - m0
    per = max(got - 1, 1)
    print(json.dumps({"received": got, "cpu_us_per_msg": cpu * 1e6 / per, "main_us_per_msg": main_cpu * 1e6 / per}))
    sub.close(0)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
