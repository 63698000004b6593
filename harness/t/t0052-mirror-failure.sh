#!/usr/bin/env bash
# A mirrored write whose target write fails: before a commit the program's
# write succeeds (the region stays dirty, the failure is counted, the copier
# copies it again); once a commit's barrier is up it fails with the target's
# errno, since the target must then hold every write the program was told
# succeeded.  The target write fails by libfaultio.so; the commit is stopped
# after its barrier and its final flush (state.committed.before).  The count
# of failures (status: mirror_errors) outlives a rebuild of the control
# block and is recorded by a running copier's checkpoints.  Needs the
# crash-point build (make crash-build).
. "$(dirname "$0")/lib-test.sh"

crash_synced_session 4
FAULTIO="$VOLMIG_BUILD/libfaultio.so"
SHIM="$(dirname "$CV")/libvolmig.so"
# app_write OFFSET: a program writes 4 KiB of new bytes at OFFSET under the
# shim, its target writes failing with EIO; its stderr in $SCRATCH/app.err
app_write() {
	head -c 4096 /dev/urandom >"$SCRATCH/new"
	$CV exec -s "$st" -- env LD_PRELOAD="$SHIM $FAULTIO" \
		VOLMIG_FAULT="path=tgt.img,op=write,err=EIO" VOLMIG_FAULT_LOG=1 python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, open(sys.argv[2], "rb").read(), int(sys.argv[3]))' "$src" "$SCRATCH/new" "$1" \
		2>"$SCRATCH/app.err"
}
mirror_errors() {
	$CV status -s "$st" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["mirror_errors"])'
}
dirty_regions() {
	$CV status -s "$st" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["dirty_regions"])'
}
block_is_new() { cmp -s -i 0:"$2" -n 4096 "$SCRATCH/new" "$1"; } # file offset

ok_if "synced: the program's write succeeds though its target write fails" app_write 65536
ok_if "the target write was failed (faultio)" grep -q "faultio: EIO on write to .*tgt.img" "$SCRATCH/app.err"
ok_if "the source has the write" block_is_new "$src" 65536
ok_if "the target does not" eval "! block_is_new '$tgt' 65536"
ok_if "the failure is counted (mirror_errors 1)" test "$(mirror_errors)" = 1
ok_if "sync (the session is synced already) copies the region again" \
	$CV sync -s "$st" --progress-interval 0
ok_if "the target has the write" block_is_new "$tgt" 65536
ok_if "no region is left dirty" test "$(dirty_regions)" = 0
ok_if "the count outlives the control block sync rebuilt (mirror_errors 1)" \
	test "$(mirror_errors)" = 1

# A copier running (--follow) keeps the block: its checkpoints record the
# count.  With the block's file gone, status reads durable state alone.
spawn fpid $CV sync -s "$st" --follow --checkpoint-interval 0.1 --progress-interval 0
wait_copier "$st" || not_ok "the copier did not start"
ok_if "a second failed target write while a copier runs" app_write 196608
rm -f "$st/ctl"
recorded=
for _ in $(seq 100); do
	[ "$(mirror_errors)" = 2 ] && { recorded=1; break; }
	sleep 0.1
done
ok_if "a checkpoint records the count (mirror_errors 2 with no block)" test -n "$recorded"
kill -KILL "$fpid"
wait "$fpid" 2>/dev/null

VOLMIG_CRASH=state.committed.before:1:stop spawn cpid $CV commit -s "$st" 2>"$SCRATCH/commit.err"
ok_if "commit stopped after its barrier" \
	wait_line "state.committed.before hit 1 .*stopped" "$SCRATCH/commit.err"

ok_if "the count outlives the control block commit rebuilt (mirror_errors 2)" \
	test "$(mirror_errors)" = 2
app_write 131072
rc=$?
ok_if "barrier up: the program's write fails (exit $rc)" test "$rc" -ne 0
ok_if "with the target's errno (EIO)" grep -q "Input/output error" "$SCRATCH/app.err"
ok_if "the failure is counted (mirror_errors 3)" test "$(mirror_errors)" = 3
kill -CONT "$cpid"
wait "$cpid"
rc=$?
ok_if "the commit goes on and ends (exit $rc)" test "$rc" -eq 0
ok_if "state is committed" test "$(status_field "$st" state)" = committed
done_testing
