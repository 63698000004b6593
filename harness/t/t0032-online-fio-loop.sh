#!/usr/bin/env bash
# t0031 on loop block devices (skipped, saying why, where they cannot be made).
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/online.sh"

size=96
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=24 ON_KILLS=2; fi
command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; }
if ! loops_available; then
	skip_test "loop block devices cannot be made here (need root and the loop driver)"
	done_testing
fi
make_random "$SCRATCH/src.img" "$size"
truncate -s "${size}M" "$SCRATCH/tgt.img"
loop_attach src_dev "$SCRATCH/src.img" || { not_ok "attach source loop"; done_testing; }
loop_attach tgt_dev "$SCRATCH/tgt.img" || { not_ok "attach target loop"; done_testing; }
note "source $src_dev, target $tgt_dev"
online_fio "$src_dev" "$tgt_dev" "$size"
done_testing
