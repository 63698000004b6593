#!/usr/bin/env bash
# While mirrored, a `sync --follow` copier confirms a dirty region (copies
# it, so it is clean) only once no write has begun on it for a whole pass.
# Before, it copied every dirty region once an interval: a region a program
# keeps writing was copied whole again and again (fio rewriting 256 regions
# of 1 MiB: the copier copied 192 MiB/s while fio wrote 125 MiB/s, and fio
# lost 43 % of its IOPS), and each copy made the next write log a record.
# Here a program keeps writing one region (3) and writes another (7) once:
# region 7 is confirmed, region 3 is not copied at all while it is written
# (at most one copy is allowed for a writer held off a whole pass by the
# machine; the old code made about ten in the window), and once the program
# stops, region 3 is copied exactly once.  The window is 2 s of writing at
# a 0.2 s interval; a slow machine can only make copies more likely, never
# hide them.
. "$(dirname "$0")/lib-test.sh"

src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/state"
make_random "$src" 16
mib=1048576
ok_if "setup, 1 MiB regions" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" \
	--region-size 1M
spawn cpid $VOLMIG sync -s "$st" --follow --checkpoint-interval 0.2 --progress-interval 0 \
	2>"$SCRATCH/follow.err"
poll() { # what: wait up to 10 s for it to hold
	for _ in $(seq 200); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
is_synced() { [ "$(status_field "$st" state)" = synced ]; }
dirty() { $VOLMIG_BIN status -s "$st" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["dirty_regions"])'; }
dirty_is() { [ "$(dirty)" = "$1" ]; }
ok_if "the --follow copier reaches synced" poll is_synced

spawn wpid $VOLMIG exec -s "$st" -- python3 -c '
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDWR)
rnd = random.Random(1)
os.pwrite(fd, rnd.randbytes(4096), 7 * 1048576 + 8192)   # region 7, once
n = 0
while not os.path.exists(sys.argv[2]):                    # region 3, all along
    os.pwrite(fd, rnd.randbytes(4096), 3 * 1048576 + rnd.randrange(256) * 4096)
    n += 1
    if n == 100:
        open(sys.argv[2] + ".started", "w").close()
print(n)' "$src" "$SCRATCH/stop" >"$SCRATCH/writer.out"
ok_if "the program writes" poll test -e "$SCRATCH/stop.started"
ok_if "region 7, written once, is confirmed: one dirty region left" poll dirty_is 1
b1=$(status_field "$st" bytes_copied)
sleep_ms 2000
b2=$(status_field "$st" bytes_copied)
ok_if "  region 3, written all along, is not copied meanwhile ($((b2 - b1)) bytes in 2 s)" \
	test $((b2 - b1)) -le $mib
ok_if "  and it is still dirty" dirty_is 1
ok_if "  the program is still writing" kill -0 "$wpid"
recs=$(dlog_records "$st")
ok_if "  it logged a record for each region it made dirty, 2, and one more at most ($recs)" \
	test "$recs" -ge 2 -a "$recs" -le 3

: >"$SCRATCH/stop"
wait "$wpid"
ok_if "the program made writes and exited 0 ($(cat "$SCRATCH/writer.out") writes)" \
	test "$(cat "$SCRATCH/writer.out")" -gt 100
ok_if "once it stops, region 3 is confirmed too" poll dirty_is 0
b3=$(status_field "$st" bytes_copied)
ok_if "  by one copy of it ($((b3 - b2)) bytes)" test $((b3 - b2)) -eq $mib
kill -TERM "$cpid"
wait "$cpid"
ok_if "the target is the source" cmp "$src" "$tgt"
ok_if "volmig verify passes" $VOLMIG verify -s "$st"
done_testing
