#!/usr/bin/env python3
"""Measure an application's write stalls: write 4 KiB at random offsets of
a file or device every INTERVAL_MS and log each write's start time and
latency, until killed (SIGTERM).  Run it under `volmig exec` so the writes
go through the shim.

    stallprobe.py PATH BASE SIZE_BYTES INTERVAL_MS LOG   writes in [BASE, BASE+SIZE)
    stallprobe.py --report LOG FROM TO     max and p99 latency (ms) of the
                                           writes started in [FROM, TO]
"""
import os
import random
import signal
import sys
import time


def probe(path, base, size, interval_ms, log):
    fd = os.open(path, os.O_WRONLY)
    out = open(log, 'w', buffering=1 << 16)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    buf = os.urandom(4096)
    blocks = size // 4096
    while not stop:
        off = base + random.randrange(blocks) * 4096
        t0 = time.time()
        os.pwrite(fd, buf, off)
        t1 = time.time()
        out.write(f'{t0:.6f} {(t1 - t0) * 1e3:.3f}\n')
        time.sleep(interval_ms / 1000.0)
    out.close()


def report(log, t_from, t_to):
    lat = []
    with open(log) as f:
        for line in f:
            t, ms = line.split()
            if t_from <= float(t) <= t_to:
                lat.append(float(ms))
    if not lat:
        print('0 writes')
        return 1
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f'{len(lat)} writes, longest {lat[-1]:.2f} ms, p99 {p99:.2f} ms')
    return 0


if __name__ == '__main__':
    if len(sys.argv) == 5 and sys.argv[1] == '--report':
        sys.exit(report(sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
    if len(sys.argv) == 6:
        probe(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
        sys.exit(0)
    print(__doc__, file=sys.stderr)
    sys.exit(2)
