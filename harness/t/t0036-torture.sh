#!/usr/bin/env bash
# scripts/volmig-torture, the command for testing one's own program: it runs
# the harness writer through a migration with copier kills and I/O faults,
# reports that no write was lost, and the same seed gives the same run.
. "$(dirname "$0")/lib-test.sh"

T="$TOP/scripts/volmig-torture"
W="$VOLMIG_BUILD/harness/writer"
make_random "$SCRATCH/vol.img" 16
run() { # seed out extra...
	local seed=$1 out=$2
	shift 2
	VOLMIG_BUILD=$VOLMIG_BUILD TMPDIR=$SCRATCH "$T" --volume "$SCRATCH/vol.img" --seed "$seed" \
		--kills 3 --seconds 5 "$@" -- "$W" write --dev "$SCRATCH/vol.img" --size 16M --procs 1 \
		--threads 2 --engine mix --ack "$SCRATCH/ack.$seed.$RANDOM" >"$out" 2>&1
}
run 11 "$SCRATCH/a.out"
rc=$?
[ "$rc" -eq 0 ] && grep -q "no write lost" "$SCRATCH/a.out" &&
	ok "torture run: $(grep 'no write lost' "$SCRATCH/a.out" | sed 's/volmig-torture: //')" ||
	{ not_ok "torture run exited $rc"; sed 's/^/# /' "$SCRATCH/a.out"; }
run 11 "$SCRATCH/b.out"
if diff <(grep -E 'kill [0-9]+:' "$SCRATCH/a.out") <(grep -E 'kill [0-9]+:' "$SCRATCH/b.out") >/dev/null &&
	[ "$(grep -cE 'kill [0-9]+:' "$SCRATCH/a.out")" -ge 3 ]; then
	ok "the same seed gives the same kills ($(grep -E 'kill [0-9]+:' "$SCRATCH/a.out" | sed 's/.*after //' | tr '\n' ' '))"
else
	not_ok "seed 11 twice gave different runs"
fi
if [ -f "$VOLMIG_BUILD/libfaultio.so" ]; then
	run 12 "$SCRATCH/c.out" --faults
	rc=$?
	[ "$rc" -eq 0 ] && grep -q "no write lost" "$SCRATCH/c.out" &&
		ok "with I/O faults (EINTR, short writes, a target EIO): no write lost" ||
		{ not_ok "torture run with faults exited $rc"; sed 's/^/# /' "$SCRATCH/c.out"; }
else
	skip_test "no libfaultio.so in $VOLMIG_BUILD"
fi
ok_if "usage error: exit 2" test "$("$T" --volume x >/dev/null 2>&1; echo $?)" -eq 2
done_testing
