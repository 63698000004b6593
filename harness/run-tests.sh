#!/usr/bin/env bash
# Run every unit test binary and scenario script, read their TAP, and end
# with the summary line "N passed, N failed, N skipped".
#
#   harness/run-tests.sh BUILD_DIR
#
# Environment: T=PATTERN runs only tests whose name matches the shell
# pattern (several: PAT1|PAT2); TEST_PREFIX wraps every test binary (valgrind, strace);
# VOLMIG_TEST_QUICK=1 runs the quick subset of the scenarios.
# Each test's output is kept in BUILD_DIR/test-logs/NAME.log.  Runs on one
# BUILD_DIR take turns (a lock file there): a second run would remove the
# first one's logs under it, and a test whose log is gone counts as failed.
set -u
B=${1:?usage: run-tests.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
logs="$B/test-logs"
mkdir -p "$B" && exec 9>"$B/.run-tests.lock" || exit 2
if ! flock -n 9; then
	echo "run-tests.sh: another run on $B is under way; waiting for it to end" >&2
	flock 9 || exit 2
fi
rm -rf "$logs"
mkdir -p "$logs"
export VOLMIG_BUILD="$top/$B"

passed=0 failed=0 skipped=0
failed_names=()

run_one() { # name, command...
	local name=$1 log="$logs/$1.log" rc t0 t1 p f s
	shift
	if [ -n "${T:-}" ]; then
		local pat hit=
		IFS='|' read -r -a pats <<<"$T"
		for pat in "${pats[@]}"; do
			# shellcheck disable=SC2053
			[[ $name == $pat ]] && hit=1
		done
		[ -n "$hit" ] || return 0
	fi
	t0=$(date +%s.%N)
	"$@" >"$log" 2>&1 </dev/null
	rc=$?
	t1=$(date +%s.%N)
	if [ -r "$log" ]; then
		p=$(grep -cE '^ok [0-9]+' "$log" | head -1)
		s=$(grep -cE '^ok [0-9]+ # (SKIP|skip)' "$log" | head -1)
		f=$(grep -cE '^not ok [0-9]+' "$log" | head -1)
	else
		p=0 s=0 f=1 # its checks cannot be counted
		echo "not ok - $name: its log $log is gone" >&2
	fi
	p=$((p - s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # died or exited non-zero without saying which check failed
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$s" -eq 0 ]; then
		f=1 # a test that checks nothing is a failure
		echo "not ok - $name ran no check" >>"$log"
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	printf '%-36s %4d passed %3d failed %3d skipped  %6.1fs\n' "$name" "$p" "$f" "$s" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
	if [ "$f" -gt 0 ]; then
		failed_names+=("$name")
		sed 's/^/    | /' "$log" | tail -n 40
	fi
	grep -E '^ok [0-9]+ # (SKIP|skip)' "$log" | sed 's/^/    skipped: /'
}

for bin in "$B"/unit/u-*; do
	[ -x "$bin" ] || continue
	# shellcheck disable=SC2086
	run_one "$(basename "$bin")" ${TEST_PREFIX:-} "$bin"
done
for script in harness/t/t[0-9]*.sh; do
	[ -f "$script" ] || continue
	run_one "$(basename "$script" .sh)" bash "$script"
done

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]} (logs in $logs)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
