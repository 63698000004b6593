#!/usr/bin/env bash
# A file source that shrinks while it is copied: the copier cuts the target
# back to the source's length at its next checkpoint.  The copier is killed
# just before the cut (target.cut.before) and just after it
# (target.cut.after); the next sync must finish with the target equal to the
# source, length included, and verify must agree.  Needs the crash-point
# build (make crash-build).
. "$(dirname "$0")/lib-test.sh"

need_crash_build
MIB=1048576
short=$((MIB + 555555)) # not on a region boundary

for point in target.cut.before target.cut.after; do
	d="$SCRATCH/$point" st="$SCRATCH/$point/state"
	src="$d/src.img" tgt="$d/tgt.img"
	mkdir -p "$d"
	make_random "$src" 4
	ok_if "$point: setup (64 KiB regions)" $CV setup -s "$st" --source "$src" --target "$tgt" \
		--region-size 64k
	VOLMIG_CRASH=$point:1 spawn cpid $CV sync -s "$st" --rate 1M --checkpoint-interval 0.1 \
		--progress-interval 0 2>"$d/sync.err"
	wait_copier "$st" || not_ok "$point: the copier did not start"
	ok_if "$point: a program under the shim shrinks the source to $short bytes" \
		$CV exec -s "$st" -- truncate -s "$short" "$src"
	# the copier's next checkpoint cuts the target back and dies at the
	# point (bounded wait: the copy at 1 MiB/s lasts 4 s)
	for _ in $(seq 200); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
	if kill -0 "$cpid" 2>/dev/null; then
		not_ok "$point: the copier did not reach the point in 10 s"
		kill -KILL "$cpid"
	fi
	wait "$cpid"
	rc=$?
	ok_if "$point: the copier was killed there (exit $rc)" \
		eval "[ $rc -eq 137 ] && grep -q 'crash point $point hit 1' '$d/sync.err'"
	len=$(stat -c %s "$tgt")
	if [ $point = target.cut.after ]; then
		ok_if "$point: the target was cut before the kill ($len bytes)" test "$len" -eq "$short"
	else
		ok_if "$point: the target was not cut yet ($len bytes)" test "$len" -eq $((4 * MIB))
	fi
	ok_if "$point: the next sync finishes" $CV sync -s "$st" --progress-interval 0
	ok_if "$point: the target is the source, length and bytes" cmp "$src" "$tgt"
	ok_if "$point: verify agrees" $CV verify -s "$st"
done
done_testing
