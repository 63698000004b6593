#!/usr/bin/env bash
# A commit with no copier running, after a program died in the middle of a
# write (killed at the crash point between its tracking and its write, so
# its in-flight count stays in the control block) while another program
# keeps the control block attached: the commit takes the dead writer's
# count back itself and succeeds, instead of finding the region raced until
# it gives up.  Needs the crash-point build (make crash-build).
. "$(dirname "$0")/lib-test.sh"

crash_synced_session 4
# a program that stays attached to the control block
spawn hpid $CV exec -s "$st" -- python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"h" * 4096, 0)
open(sys.argv[2], "w").close()
time.sleep(120)' "$src" "$SCRATCH/held"
for _ in $(seq 200); do [ -e "$SCRATCH/held" ] && break; sleep 0.05; done
ok_if "a program holds the control block" test -e "$SCRATCH/held"
VOLMIG_CRASH=shim.source-write.before:1 $CV exec -s "$st" -- python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"d" * 4096, 2 * 1048576)' "$src"
rc=$?
[ "$rc" -eq 137 ] && ok "a writer killed between its tracking and its write" ||
	not_ok "a writer killed between its tracking and its write (exit $rc)"
$CV commit -s "$st" >"$SCRATCH/commit.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok "commit with no copier running succeeds" ||
	{ not_ok "commit with no copier running succeeds (exit $rc)"; sed 's/^/#   /' "$SCRATCH/commit.out"; }
ok_if "state is committed" test "$(status_field "$st" state)" = committed
kill -KILL "$hpid" 2>/dev/null
wait "$hpid" 2>/dev/null
ok_if "the target is the source" cmp "$src" "$tgt"
done_testing
