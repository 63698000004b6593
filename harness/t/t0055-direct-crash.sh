#!/usr/bin/env bash
# The crash sweep's copier points with `sync --direct`, whose bulk copies
# move runs of regions per I/O (copier/engine.c, copy_run; t0054): the
# copier is crashed after a target write and after a target flush, N = 1,
# 2, 3 times, while the harness writer writes under the shim; the target
# must equal the source, hold every acknowledged write, and the bytes
# copied again stay within the I6 bound for runs.  Needs the crash-point
# build (make crash-build).
CRASH_SYNC_ARGS=--direct exec "$(dirname "$0")/../crash-sweep.sh" 'copier.target-*'
