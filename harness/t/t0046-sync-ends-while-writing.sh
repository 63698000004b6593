#!/usr/bin/env bash
# `volmig sync` (without --follow) ends by itself while a program keeps
# writing random blocks under the shim: once synced, the writes are
# mirrored, and one whole pass over the dirty regions while mirrored ends
# the sync even though the program keeps dirtying regions.  A regression
# restarted that pass at every checkpoint that read new dirty-log records,
# so with a steady writer the sync never ended (the convergence benchmark
# showed it: not converged in 60 s at 123 writes a second on 1 GiB; here
# it ran 40 s without ending).  The 60 s limit below only bounds a failure;
# a sync that works ends in well under a second.
. "$(dirname "$0")/lib-test.sh"

test_seed
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
# 4096 regions of 8 KiB: the writer keeps turning clean regions dirty, so
# every checkpoint reads new records and some region is always dirty
make_random "$src" 32
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 8k
# the writer: 4 KiB random writes as fast as it can, until told to stop;
# it says how many it made
spawn wpid $VOLMIG exec -s "$st" -- python3 -c '
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDWR)
rnd = random.Random(int(sys.argv[3]))
n = 0
while not os.path.exists(sys.argv[2]):
    os.pwrite(fd, rnd.randbytes(4096), rnd.randrange(32 * 256) * 4096)
    n += 1
    if n == 20:
        open(sys.argv[2] + ".started", "w").close()
print(n)' "$src" "$SCRATCH/stop" "$TEST_SEED" >"$SCRATCH/writer.out"
for _ in $(seq 200); do [ -e "$SCRATCH/stop.started" ] && break; sleep 0.05; done
ok_if "the writer runs" test -e "$SCRATCH/stop.started"

timeout 60 $VOLMIG sync -s "$st" --progress-interval 0 --checkpoint-interval 0.2 \
	2>"$SCRATCH/sync.err"
rc=$?
[ "$rc" -eq 0 ] && ok "sync ends by itself while the program writes (exit 0)" ||
	{ not_ok "sync ends by itself while the program writes (exit $rc; 124: still running after 60 s)"; tail -3 "$SCRATCH/sync.err" | sed 's/^/#   /'; }
ok_if "the session is synced" test "$(status_field "$st" state)" = synced
writes_then=$(status_field "$st" bytes_copied)

: >"$SCRATCH/stop"
wait "$wpid"
ok_if "the writer made writes and exited 0" test "$(cat "$SCRATCH/writer.out")" -gt 20
ok_if "a sync after the writer stopped" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "the target is the source" cmp "$src" "$tgt"
note "bytes copied by the first sync: $writes_then"
done_testing
