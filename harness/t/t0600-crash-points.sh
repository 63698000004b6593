#!/usr/bin/env bash
# Crash at named crash points (lib/crash.h) and check the invariants after
# the restart: the quick subset here; `make check-crash` runs every point
# for N = 1, 2, 3 (VOLMIG_CRASH_FULL=1).  See harness/crash-sweep.sh.
if [ -n "${VOLMIG_CRASH_FULL:-}" ]; then
	exec "$(dirname "$0")/../crash-sweep.sh"
fi
exec "$(dirname "$0")/../crash-sweep.sh" --quick
