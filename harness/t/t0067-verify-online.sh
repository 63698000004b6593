#!/usr/bin/env bash
# volmig verify compares only what is recorded clean, and a region written
# since its copy is not clean even before a copier ingests its dirty-log
# record.  Before, verify read the durable dirty set alone: after one write
# through the shim to a copied region, with no copier running to ingest its
# record, it reported "target differs" and exited 1 on a quiet system; and
# with a program writing while it ran, it failed at the first region the
# program wrote.  A region that differs is looked at again with the dirty
# log and durable state read anew: a write between verify's first read of
# them and its comparison (made there with the crash-point build's stop) is
# skipped, not reported.  It still finds a real difference, and it refuses
# a committed or aborted session, where only one side is kept up to date
# (and stops, saying so, when a commit comes while it runs).
# Off a terminal it prints a progress line every --progress-interval.
. "$(dirname "$0")/lib-test.sh"

partial_copy_files

partial_copy_session
ok_if "a program writes to region 1, copied already (no copier runs)" \
	shim_pwrite "$VOLMIG" "$st" "$src" "$SCRATCH/blk" $((mib + 4096))
ok_if "  its record is in the dirty log, not yet ingested ($(dlog_records "$st"))" \
	test "$(dlog_records "$st")" -eq 1
out=$($VOLMIG verify -s "$st" 2>&1)
rc=$?
ok_if "verify passes ($out)" test "$rc" -eq 0
ok_if "  it compared every copied region but the written one" \
	grep -q "verified $((done_mib - 1)) regions" <<<"$out"

# progress lines off a terminal: one per region at a microsecond's interval
# (reading two MiB takes longer), none at 0
$VOLMIG verify -s "$st" --progress-interval 0.000001 2>"$SCRATCH/progress.err"
ok_if "verify --progress-interval 0.000001 prints progress lines ($(grep -c 'verifying' "$SCRATCH/progress.err"))" \
	test "$(grep -c '^volmig: verifying [0-9.]*% .* ETA ' "$SCRATCH/progress.err")" -ge $((done_mib - 2))
$VOLMIG verify -s "$st" --progress-interval 0 2>"$SCRATCH/progress.err"
ok_if "  and none at 0" test "$(grep -c 'verifying' "$SCRATCH/progress.err")" -eq 0
$VOLMIG verify -s "$st" --progress-interval soon 2>"$SCRATCH/progress.err"
rc=$?
ok_if "  a bad interval is a usage error (exit $rc)" test "$rc" -eq 2
ok_if "  named in the message" grep -q -- '--progress-interval soon: want seconds' "$SCRATCH/progress.err"

# a real difference in a region recorded clean is still found
bad=$((2 * mib + 777))
dd if="$tgt" of="$SCRATCH/orig" bs=1 skip=$bad count=1 status=none
tr '\000-\377' '\001-\377\000' <"$SCRATCH/orig" >"$SCRATCH/flip" # another byte
dd if="$SCRATCH/flip" of="$tgt" bs=1 seek=$bad conv=notrunc status=none
out=$($VOLMIG verify -s "$st" 2>&1)
rc=$?
ok_if "a byte changed on the target of clean region 2: verify exits 1" test "$rc" -eq 1
ok_if "  naming its offset ($out)" grep -q "offset $bad (region 2)" <<<"$out"
dd if="$SCRATCH/orig" of="$tgt" bs=1 seek=$bad conv=notrunc status=none

# a program writing all over the copied regions while verify runs: it
# makes 20 writes, says it is ready, and goes on until told to stop
cat >"$SCRATCH/writer.py" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDWR)
span, d = int(sys.argv[2]), sys.argv[3]
n = 0
while n < 20 or not os.path.exists(d + "/stop"):
    os.pwrite(fd, os.urandom(4096), random.randrange(span // 4096) * 4096)
    n += 1
    if n == 20:
        open(d + "/ready", "w").close()
print(n - 20)
PY
writer() { # span
	rm -f "$SCRATCH/stop" "$SCRATCH/ready"
	spawn wpid $VOLMIG exec -s "$st" -- python3 "$SCRATCH/writer.py" "$src" "$1" "$SCRATCH" \
		>"$SCRATCH/writes"
	for _ in $(seq 200); do
		[ -e "$SCRATCH/ready" ] && return 0
		sleep 0.05
	done
	return 1
}
writer_stop() { # prints the writes made after the writer was ready
	touch "$SCRATCH/stop"
	wait "$wpid"
	cat "$SCRATCH/writes"
}
# five verifies while the writer writes over SPAN bytes
verifies_while_writing() { # span what
	local fails=0 n
	ok_if "a program writes to $2" writer "$1"
	for _ in 1 2 3 4 5; do
		$VOLMIG verify -s "$st" 2>>"$SCRATCH/verify.err" || fails=$((fails + 1))
	done
	n=$(writer_stop)
	ok_if "5 verifies while it wrote ($n writes) all pass" test "$fails" -eq 0 -a "${n:-0}" -gt 0
}
verifies_while_writing $((done_mib * mib)) "the copied regions"
grep -q 'written during the comparison' "$SCRATCH/verify.err" &&
	note "$(grep -h 'written during the comparison' "$SCRATCH/verify.err" | head -1)"

# mirrored: the copy finishes, then a program writes while verify runs
ok_if "sync finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "verify of the synced session" $VOLMIG verify -s "$st"
verifies_while_writing $((16 * mib)) "all of the volume, mirrored"
ok_if "the target is the source" cmp "$src" "$tgt"

ok_if "commit" $VOLMIG commit -s "$st"
ok_if "a write after the commit (to the target alone)" \
	shim_pwrite "$VOLMIG" "$st" "$src" "$SCRATCH/blk" 0
out=$($VOLMIG verify -s "$st" 2>&1)
rc=$?
ok_if "verify refuses a committed session (exit $rc)" test "$rc" -eq 1
ok_if "  and says why" grep -q "is committed: only its targets are kept up to date" <<<"$out"

# a write whose dirty-log record could not be written (ENOSPC): the shim
# flags its pair lost and lets the write go on; the whole pair is to be
# copied again, so verify compares none of it
rm -rf "$st" "$tgt"
partial_copy_session
ok_if "a write to region 2 whose record gets ENOSPC goes on" lost_tracking_write $((2 * mib))
ok_if "  the source has it" cmp -s -i 0:$((2 * mib)) -n 4096 "$SCRATCH/blk" "$src"
out=$($VOLMIG verify -s "$st" 2>&1)
rc=$?
ok_if "verify passes (exit $rc)" test "$rc" -eq 0
ok_if "  it says the pair is to be copied again, and compares none of it" \
	grep -q 'pair 0: a program could not log a write to .* not compared' <<<"$out"
ok_if "  and compares no region" grep -q "verified 0 regions" <<<"$out"
ok_if "sync copies it all again" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  the target is the source" cmp "$src" "$tgt"

# a write after verify read what is clean, before it compares the region
need_crash_build
rm -rf "$st" "$tgt"
partial_copy_session
VOLMIG_CRASH=verify.loaded:1:stop spawn vpid $CV verify -s "$st" 2>"$SCRATCH/verify.err"
pid=$(stopped_at verify.loaded "$SCRATCH/verify.err")
ok_if "verify stopped after reading what is recorded clean" test -n "$pid"
ok_if "a program writes to region 3, clean when verify read it" \
	shim_pwrite "$VOLMIG" "$st" "$src" "$SCRATCH/blk" $((3 * mib))
kill -CONT "$pid"
wait "$vpid"
rc=$?
ok_if "verify passes (exit $rc)" test "$rc" -eq 0
ok_if "  it found region 3 written and did not compare it" \
	grep -q '1 region written during the comparison, not compared' "$SCRATCH/verify.err"
ok_if "  it compared the $((done_mib - 1)) others" \
	grep -q "verified $((done_mib - 1)) regions" "$SCRATCH/verify.err"

# a commit while verify runs: from then on the source is not kept up to
# date, and verify stops with that said, not with "differs"
ok_if "sync finishes" $VOLMIG sync -s "$st" --progress-interval 0
VOLMIG_CRASH=verify.loaded:1:stop spawn vpid $CV verify -s "$st" 2>"$SCRATCH/verify.err"
pid=$(stopped_at verify.loaded "$SCRATCH/verify.err")
ok_if "verify stopped after reading what is recorded clean" test -n "$pid"
ok_if "commit" $VOLMIG commit -s "$st"
ok_if "a write to region 0 after the commit (the target alone)" \
	shim_pwrite "$VOLMIG" "$st" "$src" "$SCRATCH/blk" 0
kill -CONT "$pid"
wait "$vpid"
rc=$?
ok_if "verify fails (exit $rc)" test "$rc" -eq 1
ok_if "  saying the session was committed while it ran" \
	grep -q "was committed while verify ran: only its targets are kept up to date now" \
	"$SCRATCH/verify.err"
done_testing
