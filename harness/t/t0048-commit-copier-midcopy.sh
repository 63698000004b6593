#!/usr/bin/env bash
# A commit while a `sync --follow` copier is in the middle of copying a
# region: a program's write to that region, made after the commit's barrier
# and before the copier's own write of the region, must not be undone on
# the target by the copier's copy (which read the source before the write).
# The copier is stopped at the crash point between its read of the source
# and its write of the target; the commit starts; the program writes; the
# copier goes on.  Needs the crash-point build (make crash-build).
. "$(dirname "$0")/lib-test.sh"

crash_synced_session 8
head -c 4096 /dev/urandom >"$SCRATCH/a"
head -c 4096 /dev/urandom >"$SCRATCH/b"
at=$((3 * 1048576))

# a program's write of BLOCK at $at, under the shim
app_write() { shim_pwrite "$CV" "$st" "$src" "$1" "$at"; } # block

VOLMIG_CRASH=copier.source-read.after:2:stop spawn spid $CV sync -s "$st" --follow \
	--progress-interval 0 --checkpoint-interval 0.1 2>"$SCRATCH/sync.err"
wait_copier "$st" || not_ok "the copier did not start"
# the copier stops at its second copy of the region: the first follows the
# write, the second follows the checkpoint that read the write's record (so
# the record is no longer pending when the commit begins).  Should the
# first copy come after that checkpoint, another write makes another copy.
stopped() {
	pid=$(sed -n 's/.*crash point copier.source-read.after hit 2 (pid \([0-9]*\)), stopped.*/\1/p' "$SCRATCH/sync.err")
	[ -n "$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = T ]
}
pid=
for _ in 1 2 3 4 5 6 7 8 9 10; do
	app_write "$SCRATCH/a" || not_ok "a write while synced (mirrored)"
	for _ in $(seq 20); do stopped && break 2; sleep 0.05; done
done
ok_if "the copier stopped between its read of the region and its write" \
	test -n "$pid" -a "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = T

spawn cpid $CV commit -s "$st" 2>"$SCRATCH/commit.err"
# the commit may wait for the copier's copy to end; let it get past its
# barrier either way
for _ in $(seq 40); do
	kill -0 "$cpid" 2>/dev/null || break
	sleep 0.05
done
ok_if "a write after the commit began" app_write "$SCRATCH/b"
kill -CONT "$pid"
wait "$cpid"
rc=$?
[ "$rc" -eq 0 ] && ok "commit succeeds" ||
	{ not_ok "commit succeeds (exit $rc)"; sed 's/^/#   /' "$SCRATCH/commit.err"; }
note "commit: $(tail -1 "$SCRATCH/commit.err")"
ok_if "state is committed" test "$(status_field "$st" state)" = committed
wait "$spid"
rc=$?
[ "$rc" -eq 0 ] && ok "the --follow copier ends with the session (exit 0)" ||
	{ not_ok "the --follow copier ends with the session (exit $rc)"; tail -3 "$SCRATCH/sync.err" | sed 's/^/#   /'; }
ok_if "the last write is on the target, the volume in use" \
	cmp -s -i 0:$at -n 4096 "$SCRATCH/b" "$tgt"
done_testing
