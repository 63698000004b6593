#!/usr/bin/env bash
# Unmodified fio (psync, pvsync2, libaio direct=1) writes with verify headers
# under `volmig exec` while the copier is killed and resumed; files.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/online.sh"

size=96
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=24 ON_KILLS=2; fi
command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; }
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
online_fio "$SCRATCH/src.img" "$SCRATCH/tgt.img" "$size"
done_testing
