#!/usr/bin/env bash
# A process that opened the source before `volmig setup` (fio under volmig
# exec, started first) keeps writing through setup and sync: it picks the
# session up, and nothing it wrote is lost.  Files, then loop devices.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/online.sh"

size=48
ON_KILLS=4
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=24 ON_KILLS=2; fi
command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; }
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
note "files"
online_fio "$SCRATCH/src.img" "$SCRATCH/tgt.img" "$size" before-setup

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
online_fio "$src_dev" "$tgt_dev" "$size" before-setup
SCRATCH=$SCRATCH_FILES
done_testing
