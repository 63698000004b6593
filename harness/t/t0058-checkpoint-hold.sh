#!/usr/bin/env bash
# I6 when a checkpoint's flush overruns its interval: the copying done since
# the last committed snapshot stays within one interval (plus the I/Os in
# flight), because once that snapshot is an interval old the workers take no
# new item until the next checkpoint commits.  A slow flush is made with the
# test preload (faultio, delay=) on the target's fdatasync; the copier is
# killed right after that flush (crash point copier.target-flush.after), and
# the restarted sync counts what it copied again (bytes_recopied).
. "$(dirname "$0")/lib-test.sh"
need_crash_build
cd "$SCRATCH" || exit 1
FAULTIO="$VOLMIG_BUILD/libfaultio.so"
MIB=1048576

# 1. The first checkpoint's flush takes 4 s, at a copy rate of 6 MiB/s and
#    an interval of 0.25 s: a copier that went on copying during the flush
#    would have copied about 24 MiB more by the kill.
rate=$((6 * MIB)) iv=0.25 threads=4
make_random hold.src 64
ok_if "setup of a 64 MiB pair" $CV setup -s st --source hold.src --target hold.tgt
VOLMIG_FAULT="path=hold.tgt,call=fdatasync,delay=4000,count=1" VOLMIG_FAULT_LOG=1 \
	LD_PRELOAD="$FAULTIO" VOLMIG_CRASH=copier.target-flush.after:1 \
	$CV sync -s st --rate $rate --threads $threads --checkpoint-interval $iv \
	--progress-interval 0 2>sync1.err
rc=$?
ok_if "the first target flush was delayed 4 s" grep -q "faultio: 4000 ms delay on sync of .*hold.tgt" sync1.err
ok_if "the copier was killed right after that flush (exit $rc)" \
	sh -c "[ $rc -eq 137 ] && grep -q 'crash point copier.target-flush.after hit 1' sync1.err"
ok_if "the restarted sync exits 0" $VOLMIG sync -s st --progress-interval 0
ok_if "the target is identical" cmp -s hold.src hold.tgt
ok_if "verify exits 0" $VOLMIG verify -s st
again=$(status_field st bytes_recopied)
run=$(copy_run_bytes $MIB $rate)
bound=$(awk -v r=$rate -v i=$iv -v t=$threads -v b=$run 'BEGIN { printf "%.0f", r * i + (t + 1) * b }')
note "copied again after the kill: $again bytes (bound $bound; without the hold about 30 MiB)"
# what the first checkpoint's snapshot found copied was never recorded
ok_if "bytes_recopied counts the copying the kill lost ($again > 0)" test "$again" -gt 0
ok_if "copied again: at most one interval's copying and the I/Os in flight ($again <= $bound)" \
	test "$again" -le "$bound"

# 2. Bulk writes stall while other threads go on.
#    a. One write stalls 1 s.  What the others copy past it is recorded
#       only once it is done (a cursor records what is done below it), so
#       the checkpoints that commit meanwhile record nothing, and copying
#       begun since the stalled write began is at risk.  The hold counts
#       from that start; counted from each checkpoint's own snapshot, it
#       let copying run on for the whole stall (8 to 12 MiB at the kill).
#    b. The first four writes stall 0.5 s each and end together: each
#       thread then takes a new item, taken before the hold but let through
#       by the bandwidth limit only after it.  Such an item does not begin
#       until the next checkpoint commits; begun all the same, 7 MiB.
#    The first flush after the stall is delayed 4 s, and the copier is
#    killed right after it.
for stall in "delay=1000,count=1" "delay=500,count=4"; do
	ms=${stall#delay=} ms=${ms%%,*} d=st-$ms
	rm -f stall.tgt
	make_random stall.src 64
	ok_if "setup of a 64 MiB pair" $VOLMIG setup -s $d --source stall.src --target stall.tgt
	VOLMIG_FAULT="path=stall.tgt,op=write,$stall;path=stall.tgt,call=fdatasync,delay=4000,count=1" \
		VOLMIG_FAULT_LOG=1 LD_PRELOAD="$FAULTIO" VOLMIG_CRASH=copier.target-flush.after:1 \
		$CV sync -s $d --rate $rate --threads $threads --checkpoint-interval $iv \
		--progress-interval 0 2>sync3.err
	rc=$?
	ok_if "target writes stalled ($stall)" grep -q "faultio: $ms ms delay on write to .*stall.tgt" sync3.err
	ok_if "the copier was killed right after the delayed flush (exit $rc)" \
		sh -c "[ $rc -eq 137 ] && grep -q 'crash point copier.target-flush.after hit 1' sync3.err"
	ok_if "the restarted sync exits 0" $VOLMIG sync -s $d --progress-interval 0
	ok_if "the target is identical" cmp -s stall.src stall.tgt
	again=$(status_field $d bytes_recopied)
	note "copied again after the kill: $again bytes (bound $bound)"
	ok_if "copied again: at most one interval's copying and the I/Os in flight ($again <= $bound)" \
		test "$again" -le "$bound"
done

# 3. Every target flush overruns the interval (300 ms against 0.1 s): the
#    workers are held during each, and the copy still ends, identical.
make_random slow.src 32
ok_if "setup of a 32 MiB pair" $VOLMIG setup -s st2 --source slow.src --target slow.tgt
VOLMIG_FAULT="path=slow.tgt,call=fdatasync,delay=300" VOLMIG_FAULT_LOG=1 LD_PRELOAD="$FAULTIO" \
	$VOLMIG sync -s st2 --checkpoint-interval 0.1 --progress-interval 0 2>sync2.err
ok_if "sync with slow flushes exits 0" test $? -eq 0
ok_if "its flushes were delayed" grep -q "faultio: 300 ms delay on sync of .*slow.tgt" sync2.err
ok_if "the target is identical" cmp -s slow.src slow.tgt
ok_if "verify exits 0" $VOLMIG verify -s st2

# The preload refuses a rule it cannot honour: delay= with err=, or 0 ms.
for rule in "delay=100,err=EIO" "delay=0"; do
	VOLMIG_FAULT="$rule" LD_PRELOAD="$FAULTIO" head -c 1 /dev/zero >/dev/null 2>bad.err
	rc=$?
	ok_if "faultio refuses '$rule' (exit $rc)" \
		sh -c "[ $rc -eq 2 ] && grep -q 'faultio: VOLMIG_FAULT' bad.err"
done
done_testing
