#!/usr/bin/env bash
# I6 on loop block devices: the same kill/resume run as t0010 with source
# and target on /dev/loopN.  Skipped, saying why, where loops cannot be made.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/kill-resume.sh"

size=256 kills=20
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=32 kills=3 KR_RATE_MIB=4; fi
if ! loops_available; then
	skip_test "loop block devices cannot be made here (need root and the loop driver)"
	done_testing
fi
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
head -c 1M /dev/urandom | dd of="$SCRATCH/tgt.img" conv=notrunc status=none # stale data to overwrite
loop_attach src_dev "$SCRATCH/src.img" || { not_ok "attach source loop"; done_testing; }
loop_attach tgt_dev "$SCRATCH/tgt.img" || { not_ok "attach target loop"; done_testing; }
note "source $src_dev, target $tgt_dev"
kill_resume "$src_dev" "$tgt_dev" "$size" "$kills"
done_testing
