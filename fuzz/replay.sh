#!/usr/bin/env bash
# Replay every fuzz target's seeds and regressions through the normal
# build's replay drivers, as TAP: one check per target.
#
#   fuzz/replay.sh BUILD_DIR
#
# The targets are the fuzz/*.c that define FUZZ_NAME.  A target passes when
# its driver BUILD_DIR/fuzz/TARGET was built, it has seeds, it replays
# fuzz/seeds/TARGET and fuzz/regressions/TARGET with every contract holding
# (a broken one aborts the driver), and at least one seed is accepted by the
# code under test (seeds that are all refused went stale with a format
# change: `make fuzz-seeds` rewrites them).  TEST_PREFIX wraps the drivers
# (valgrind).
set -u
B=${1:?usage: fuzz/replay.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2

n=0 failed=0
check() { # ok?, description, [output to show]
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | tail -n 20 | sed 's/^/#   /'
	fi
}

for src in fuzz/*.c; do
	grep -q '^#define FUZZ_NAME' "$src" || continue
	t=$(basename "$src" .c)
	bin=$B/fuzz/$t
	if [ ! -x "$bin" ]; then
		check fail "$t: driver $bin not built"
		continue
	fi
	seeds=$(find "fuzz/seeds/$t" -maxdepth 1 -type f ! -name '.*' ! -name 'README*' 2>/dev/null | wc -l)
	if [ "$seeds" -eq 0 ]; then
		check fail "$t: no seeds in fuzz/seeds/$t"
		continue
	fi
	dirs=("fuzz/seeds/$t")
	[ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
	# shellcheck disable=SC2086
	out=$(${TEST_PREFIX:-} "$bin" "${dirs[@]}" 2>&1)
	rc=$?
	summary=$(printf '%s\n' "$out" | grep -E "^$t: [0-9]+ inputs" | tail -n 1)
	if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
		check fail "$t: replay of ${dirs[*]} failed (status $rc)" "$out"
		continue
	fi
	accepted=$(printf '%s\n' "$summary" | sed -E 's/.* ([0-9]+) accepted.*/\1/')
	if [ "$accepted" -eq 0 ]; then
		check fail "$t: no seed is accepted any more (stale seeds? make fuzz-seeds)" "$out"
		continue
	fi
	check ok "$summary: seeds and regressions replayed"
done
echo "1..$n"
[ "$failed" -eq 0 ]
