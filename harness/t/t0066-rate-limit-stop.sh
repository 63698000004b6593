#!/usr/bin/env bash
# A copier waiting for its bandwidth limit stops at once on SIGTERM and on
# an abort.  Under --rate 16k each thread's next 1 MiB region waits its
# share of the limit (64 s a region, so the fourth thread waits over three
# minutes).  Before, that wait did not look at the stop: the copier went on
# waiting, and copying, for minutes after the signal or the abort, and
# only a SIGKILL ended it.  The regions it gave up are not done: the next
# run copies them, and the target ends identical.  A pause holds the
# waiting threads too: before, lifting the limit while paused let each copy
# the region it was waiting for.  The parts that count recorded bytes run
# one thread: of several, the one with region 0 may come second to the
# limit and wait 64 s, with region 1 copied and the cursor still at 0.
. "$(dirname "$0")/lib-test.sh"

src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/st"
make_random "$src" 16
ok_if "setup of a 16 MiB pair" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
spawn pid $VOLMIG sync -s "$st" --rate 16k --threads 1 --progress-interval 0 2>"$SCRATCH/sync.err"
for _ in $(seq 200); do
	[ "$(status_field "$st" synced_bytes)" -gt 0 ] && break
	sleep 0.05
done
mid=$(status_field "$st" synced_bytes)
ok_if "the first region is recorded, the others wait for the limit ($mid bytes)" \
	test "$mid" -eq 1048576
kill -TERM "$pid"
wait_exit "$pid" 10
ok_if "SIGTERM ends the waiting copier (exit $exit_rc, want 1 within 10 s)" test "$exit_rc" = 1
ok_if "  it says its progress is saved" grep -q 'interrupted by signal 15; progress is saved' \
	"$SCRATCH/sync.err"
ok_if "  no region it gave up was recorded ($(status_field "$st" synced_bytes) bytes)" \
	test "$(status_field "$st" synced_bytes)" -eq 1048576
ok_if "sync with no limit finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  the target is the source" cmp "$src" "$tgt"
ok_if "  each byte was copied once ($(status_field "$st" bytes_copied))" \
	test "$(status_field "$st" bytes_copied)" -eq $((16 * 1048576))
ok_if "volmig verify passes" $VOLMIG verify -s "$st"

# an abort while the copier waits: it stops at its next look
rm -rf "$st" "$tgt"
ok_if "setup again" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
spawn pid $VOLMIG sync -s "$st" --rate 16k --threads 4 --progress-interval 0 2>"$SCRATCH/sync.err"
ok_if "a copier runs" wait_copier "$st"
ok_if "abort" $VOLMIG abort -s "$st"
wait_exit "$pid" 10
ok_if "the waiting copier stops (exit $exit_rc, want 1 within 10 s)" test "$exit_rc" = 1
ok_if "  it says the session was aborted" grep -q 'was aborted; the copier stops' "$SCRATCH/sync.err"
ok_if "state is aborted" test "$(status_field "$st" state)" = aborted

# a pause while a thread waits for the limit, then the limit lifted:
# nothing is copied until volmig resume
rm -rf "$st" "$tgt"
ok_if "setup again" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
spawn pid $VOLMIG sync -s "$st" --rate 16k --threads 1 --checkpoint-interval 0.2 \
	--progress-interval 0.2 2>"$SCRATCH/sync.err"
for _ in $(seq 200); do
	[ "$(status_field "$st" synced_bytes)" -gt 0 ] && break
	sleep 0.05
done
ok_if "the first region is recorded, the others wait for the limit" \
	test "$(status_field "$st" synced_bytes)" -eq 1048576
ok_if "pause" eval '$VOLMIG pause -s "$st" 2>"$SCRATCH/ctl.err"'
ok_if "  it says copying paused" grep -q ': copying paused$' "$SCRATCH/ctl.err"
ok_if "  the copier says it is paused" \
	wait_line 'copying is paused \(volmig resume goes on\)' "$SCRATCH/sync.err"
ok_if "pause again (exit 0)" eval '$VOLMIG pause -s "$st" 2>"$SCRATCH/ctl.err"'
ok_if "  it says copying was already paused" grep -q ': copying was already paused$' \
	"$SCRATCH/ctl.err"
ok_if "throttle 0 (no limit) while paused" $VOLMIG throttle -s "$st" 0
# a waiting thread sees a new limit within 0.1 s, and its copy would be
# recorded within the 0.2 s checkpoint interval (t0042: a second)
sleep 1
ok_if "  the waiting thread copied nothing ($(status_field "$st" synced_bytes) bytes)" \
	test "$(status_field "$st" synced_bytes)" -eq 1048576
ok_if "  the progress line says paused, with no ETA" grep -q 'written ETA paused$' "$SCRATCH/sync.err"
ok_if "resume" $VOLMIG resume -s "$st"
wait_exit "$pid" 30
ok_if "  the copier finishes (exit $exit_rc, want 0 within 30 s)" test "$exit_rc" = 0
ok_if "  it says copying resumed" grep -q 'copying resumed' "$SCRATCH/sync.err"
ok_if "  the target is the source" cmp "$src" "$tgt"
ok_if "  each byte was copied once ($(status_field "$st" bytes_copied))" \
	test "$(status_field "$st" bytes_copied)" -eq $((16 * 1048576))
ok_if "resume again (exit 0)" eval '$VOLMIG resume -s "$st" 2>"$SCRATCH/ctl.err"'
ok_if "  it says copying was not paused" grep -q ': copying was not paused$' "$SCRATCH/ctl.err"
done_testing
