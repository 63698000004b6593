#!/usr/bin/env bash
# The harness writer (2 processes x 2 threads; pwrite, pwritev2, libaio)
# writes self-describing blocks under `volmig exec` while the copier is
# SIGKILLed 10 times and the writer itself is killed and restarted; every
# acknowledged write must reach the target.  Files, then loop devices.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/online.sh"

size=64
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=16 ON_KILLS=2 ON_WRITER_KILLS=1; fi
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
note "files"
online_writer "$SCRATCH/src.img" "$SCRATCH/tgt.img" "$size"

note "loop block devices"
if ! loops_available; then
	skip_test "loop block devices cannot be made here (need root and the loop driver)"
	done_testing
fi
SCRATCH_FILES=$SCRATCH
SCRATCH="$SCRATCH_FILES/loop"
mkdir -p "$SCRATCH"
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
loop_attach src_dev "$SCRATCH/src.img" || { not_ok "attach source loop"; done_testing; }
loop_attach tgt_dev "$SCRATCH/tgt.img" || { not_ok "attach target loop"; done_testing; }
note "source $src_dev, target $tgt_dev"
_on_writer_gen=0
online_writer "$src_dev" "$tgt_dev" "$size"
SCRATCH=$SCRATCH_FILES
done_testing
