#!/usr/bin/env python3
"""Count the dirty-log records of a session: dlog-records.py STATE_DIR.

Prints "records regions" for every segment in STATE/log (32-byte records
after a 4 KiB header, lib/dlog.h; a zero sequence number ends a segment).
Records the copier punched out once it had recorded them (zeros before the
first record; copier/ingest.h, ingest_trim) are no longer counted.
The benchmarks and the tests use it to check what a run logged.
"""
import os
import struct
import sys

recs = regions = 0
d = os.path.join(sys.argv[1], "log")
for name in os.listdir(d) if os.path.isdir(d) else []:
    if not name.endswith(".seg"):
        continue
    with open(os.path.join(d, name), "rb") as f:
        b = f.read()
    started = False
    for off in range(4096, len(b) - 31, 32):
        seq, pair, count = struct.unpack_from("<QII", b, off)
        if seq == 0 and not started:
            continue  # a prefix the copier punched out (ingest_trim)
        if seq == 0:
            break
        started = True
        recs += 1
        regions += count
print(recs, regions)
