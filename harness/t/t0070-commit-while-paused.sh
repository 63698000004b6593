#!/usr/bin/env bash
# A commit while the copier is paused (I4).  A `sync --follow` copier under
# a low bandwidth limit copies the first of three dirty regions and takes
# the next as its item, then waits for the limit.  It is paused there and
# the limit lifted: the item stays held, and it must be held before the
# copy begins, with neither the target lock nor the region's copy bit
# taken.  Held after either, the commit (which takes the target lock for
# writing and copies the dirty regions itself) would wait for a resume
# that no one gives.  Here the commit finishes while the copier is still
# paused, copies the two regions left, and the copier ends with it.
. "$(dirname "$0")/lib-test.sh"

mib=1048576 src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/st"
make_random "$src" 8
ok_if "setup of an 8 MiB pair" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
ok_if "sync (the copier exits once synced)" $VOLMIG sync -s "$st" --progress-interval 0
for r in 1 3 5; do
	head -c 4096 /dev/urandom >"$SCRATCH/b$r"
	ok_if "a write to region $r while synced (mirrored, no copier)" \
		shim_pwrite "$VOLMIG" "$st" "$src" "$SCRATCH/b$r" $((r * mib))
done
ok_if "  three regions in the dirty log" test "$(pair_field "$st" dirty_log_regions)" -eq 3

# 16 KiB/s: after the first region the next waits 64 s for the limit
spawn spid $VOLMIG sync -s "$st" --follow --rate 16k --threads 1 --checkpoint-interval 0.2 \
	--progress-interval 0.2 2>"$SCRATCH/sync.err"
for _ in $(seq 200); do
	[ "$(pair_field "$st" dirty_regions)" = 2 ] && [ "$(pair_field "$st" dirty_log_regions)" = 0 ] &&
		break
	sleep 0.05
done
ok_if "the copier copied one region; two stay dirty (waiting for the limit)" \
	test "$(pair_field "$st" dirty_regions)" -eq 2
ok_if "pause" $VOLMIG pause -s "$st"
ok_if "  the copier says it is paused" wait_line 'copying is paused' "$SCRATCH/sync.err"
ok_if "throttle 0 (no limit) while paused" $VOLMIG throttle -s "$st" 0
# a waiting thread sees a new limit within 0.1 s; a hold after the copy
# began would be reached by now
sleep 1
ok_if "  the held item copied nothing (still 2 dirty)" test "$(pair_field "$st" dirty_regions)" -eq 2
ok_if "  the copier runs" kill -0 "$spid"
spawn cpid $VOLMIG commit -s "$st" 2>"$SCRATCH/commit.err"
wait_exit "$cpid" 30
ok_if "the commit finishes while the copier is paused (exit $exit_rc, want 0 within 30 s)" \
	test "$exit_rc" = 0
ok_if "  it copied the two regions left" grep -q '(2 dirty regions copied' "$SCRATCH/commit.err"
ok_if "  state is committed" test "$(status_field "$st" state)" = committed
ok_if "  the session is still paused" test "$(status_field "$st" paused)" = True
wait_exit "$spid" 30
ok_if "the paused copier ends with the commit (exit $exit_rc, want 0 within 30 s)" \
	test "$exit_rc" = 0
ok_if "  it says the session is committed" \
	test "$(tail -n 1 "$SCRATCH/sync.err")" = "volmig: session $st is committed"
for r in 1 3 5; do
	ok_if "  write $r is on the target" cmp -s -i 0:$((r * mib)) -n 4096 "$SCRATCH/b$r" "$tgt"
done
ok_if "  the target is the source" cmp "$src" "$tgt"
done_testing
