#!/usr/bin/env bash
# A process that opened the source before `volmig setup` (fio under volmig
# exec, started first) keeps writing through setup and sync: it picks the
# session up, and nothing it wrote is lost.  Files, then loop devices.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/online.sh"

size=48
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=24 ON_KILLS=2; fi
ON_KILLS=${ON_KILLS_BEFORE:-4}
command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; }
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
note "files"
online_fio "$SCRATCH/src.img" "$SCRATCH/tgt.img" "$size" before-setup
done_testing
