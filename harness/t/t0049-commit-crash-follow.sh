#!/usr/bin/env bash
# A commit killed after its record and before its announcement has made the
# target the volume in use already; the next command announces it.  A
# `sync --follow` copier running meanwhile must not copy onto the target:
# a copy that read the source before the announcement and writes after a
# program's write that went to the target alone would undo that write.
# The copier holds its copies off while the dead commit's barrier is up.
# Here it is stopped between its read and its write should it copy at all,
# and let go only after the program's last write.  Needs the crash-point
# build (make crash-build).
. "$(dirname "$0")/lib-test.sh"

crash_synced_session 8
at=$((3 * 1048576))
for b in a c; do head -c 4096 /dev/urandom >"$SCRATCH/$b"; done
app_write() { shim_pwrite "$CV" "$st" "$src" "$1" "$at"; } # block

VOLMIG_CRASH=copier.source-read.after:1:stop spawn spid $CV sync -s "$st" --follow \
	--progress-interval 0 --checkpoint-interval 0.1 2>"$SCRATCH/sync.err"
wait_copier "$st" || not_ok "the copier did not start"
VOLMIG_CRASH=state.committed.after:1 $CV commit -s "$st" 2>"$SCRATCH/commit.err"
rc=$?
[ "$rc" -eq 137 ] && ok "commit killed after its record, before its announcement" ||
	not_ok "commit killed after its record, before its announcement (exit $rc)"
ok_if "a program's write (still mirrored)" app_write "$SCRATCH/a"
# a copier that copies the region now stops at the point; give it the time
# a lazy pass takes (it must not copy at all)
pid=$(stopped_at copier.source-read.after "$SCRATCH/sync.err" 30)
[ -n "$pid" ] && note "the copier copied after the commit's record (stopped, pid $pid)"
ok_if "the next command announces the commit" $CV status -s "$st"
ok_if "state is committed" test "$(status_field "$st" state)" = committed
ok_if "a program's write once committed (the target alone)" app_write "$SCRATCH/c"
[ -n "$pid" ] && kill -CONT "$pid"
for _ in $(seq 200); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$spid" 2>/dev/null && { not_ok "sync --follow did not end with the commit"; kill -KILL "$spid"; }
wait "$spid" 2>/dev/null
ok_if "the last write is on the target, the volume in use" \
	cmp -s -i 0:$at -n 4096 "$SCRATCH/c" "$tgt"
done_testing
