#!/usr/bin/env bash
# A write that passed the commit barrier while the session was still synced,
# and reaches the source only after the commit was announced, is mirrored:
# its bytes reach the target, which is the volume in use from then on.  The
# writer is stopped at the crash point just after its barrier wait (before
# it tracks and writes), the commit runs to the end, and the writer goes on.
# Before the fix the shim mirrored only when the state after the write was
# still a mirrored one, so this write stayed on the source alone (t0043 saw
# it about 1 run in 8).  Needs the crash-point build (make crash-build).
. "$(dirname "$0")/lib-test.sh"

crash_synced_session 8
head -c 4096 /dev/urandom >"$SCRATCH/block"

VOLMIG_CRASH=shim.barrier.after:1:stop spawn wpid $CV exec -s "$st" -- python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, open(sys.argv[2], "rb").read(), 5 * 1048576)' "$src" "$SCRATCH/block" \
	2>"$SCRATCH/writer.err"
# the program stops itself at the point and says its pid
pid=$(stopped_at shim.barrier.after "$SCRATCH/writer.err")
ok_if "the writer stopped after its barrier wait, before its write" test -n "$pid"
ok_if "commit while it is stopped" $CV commit -s "$st"
ok_if "state is committed" test "$(status_field "$st" state)" = committed
kill -CONT "$pid"
wait "$wpid"
rc=$?
[ "$rc" -eq 0 ] && ok "the writer goes on and exits 0" ||
	{ not_ok "the writer goes on and exits 0 (exit $rc)"; sed 's/^/#   /' "$SCRATCH/writer.err"; }
ok_if "its bytes are on the target, the volume in use" \
	cmp -s -i 0:$((5 * 1048576)) -n 4096 "$SCRATCH/block" "$tgt"
ok_if "and on the source" cmp -s -i 0:$((5 * 1048576)) -n 4096 "$SCRATCH/block" "$src"
ok_if "the target is the source" cmp "$src" "$tgt"
done_testing
