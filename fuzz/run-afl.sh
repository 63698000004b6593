#!/usr/bin/env bash
# Run afl-fuzz on fuzz targets for a fixed time each and fail if any crashed
# or hung.  `make fuzz` calls it after building the targets with
# afl-clang-fast.
#
#   fuzz/run-afl.sh AFL_BUILD_DIR SECONDS TARGET...
#
# Each target's corpus starts from fuzz/seeds/TARGET and
# fuzz/regressions/TARGET, with the dictionary fuzz/dict/TARGET.dict when
# there is one.  afl-fuzz writes to AFL_BUILD_DIR/fuzz-out/TARGET (replaced
# on every run), its log to AFL_BUILD_DIR/fuzz-out/TARGET.log.  One line per
# target:
#
#   fuzz TARGET: S s, N execs (E/s), C in corpus, E edges, K crashes, H hangs
#
# then, for each crash or hang, the file and how to replay it.  Exit status
# 1 when any target crashed or hung or afl-fuzz could not run, else 0.
# FUZZ_JOBS=N runs N targets at a time (default 1).  Extra afl-fuzz
# options can be given in AFL_FUZZ_ARGS.
set -u
if [ $# -lt 3 ]; then
	echo "usage: fuzz/run-afl.sh AFL_BUILD_DIR SECONDS TARGET..." >&2
	exit 2
fi
B=$1 secs=$2
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
jobs=${FUZZ_JOBS:-1}
case $secs in '' | *[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a number of seconds" >&2; exit 2 ;; esac
case $jobs in '' | *[!0-9]* | 0) echo "fuzz: FUZZ_JOBS must be a positive number" >&2; exit 2 ;; esac
command -v afl-fuzz >/dev/null 2>&1 || { echo "fuzz: afl-fuzz not found (install AFL++)" >&2; exit 1; }

# What a container needs: no CPU frequency governor to check, core dumps
# that may go to a pipe, CPUs that may all look busy, no terminal.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_TRY_AFFINITY=1

# Run one target; its verdict goes to $out.result ("ok" or the reason).
run_one() {
	local t=$1 bin=$B/fuzz/$1 out=$B/fuzz-out/$1 in=$B/fuzz-in/$1
	local log=$B/fuzz-out/$1.log result=$B/fuzz-out/$1.result
	local args f n rc

	rm -rf "$out" "$in" "$result"
	mkdir -p "$in" "$B/fuzz-out"
	if [ ! -x "$bin" ]; then
		echo "$bin was not built" >"$result"
		return
	fi
	n=0
	for f in fuzz/seeds/"$t"/* fuzz/regressions/"$t"/*; do
		[ -f "$f" ] || continue
		case ${f##*/} in .* | README*) continue ;; esac
		cp "$f" "$in/$(basename "$(dirname "$f")")-${f##*/}"
		n=$((n + 1))
	done
	if [ "$n" -eq 0 ]; then
		echo "no seeds in fuzz/seeds/$t" >"$result"
		return
	fi
	args=(-i "$in" -o "$out" -V "$secs" -t 1000)
	[ -f "fuzz/dict/$t.dict" ] && args+=(-x "fuzz/dict/$t.dict")
	# shellcheck disable=SC2086
	afl-fuzz "${args[@]}" ${AFL_FUZZ_ARGS:-} -- "$bin" >"$log" 2>&1 </dev/null
	rc=$?
	if [ "$rc" -ne 0 ] || [ ! -f "$out/default/fuzzer_stats" ]; then
		echo "afl-fuzz exited with status $rc (log: $log)" >"$result"
		return
	fi
	echo ok >"$result"
}

stat_of() { # stats-file key
	awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1"
}

report_one() {
	local t=$1 out=$B/fuzz-out/$1 result=$B/fuzz-out/$1.result
	local stats=$out/default/fuzzer_stats f bad=0

	if [ "$(cat "$result" 2>/dev/null)" != ok ]; then
		echo "fuzz $t: FAILED: $(cat "$result" 2>/dev/null || echo 'no result')"
		[ -f "$out.log" ] && tail -n 15 "$out.log" | sed 's/^/    | /'
		return 1
	fi
	printf 'fuzz %s: %s s, %s execs (%s/s), %s in corpus, %s edges, %s crashes, %s hangs\n' "$t" \
		"$(stat_of "$stats" run_time)" "$(stat_of "$stats" execs_done)" \
		"$(stat_of "$stats" execs_per_sec)" "$(stat_of "$stats" corpus_count)" \
		"$(stat_of "$stats" edges_found)" "$(stat_of "$stats" saved_crashes)" \
		"$(stat_of "$stats" saved_hangs)"
	for kind in crash hang; do
		local files=() shown=0
		for f in "$out/default/${kind}es/id:"*; do
			[ -f "$f" ] && files+=("$f")
		done
		[ ${#files[@]} -gt 0 ] || continue
		bad=1
		for f in "${files[@]}"; do
			if [ "$shown" -eq 3 ]; then
				echo "fuzz $t: ... and $((${#files[@]} - shown)) more ${kind}es in $(dirname "$f")"
				break
			fi
			echo "fuzz $t: $kind: $f"
			shown=$((shown + 1))
		done
		f=${files[0]}
		echo "    replay: $B/fuzz/$t '$f'"
		[ "$kind" = crash ] &&
			timeout 10 "$B/fuzz/$t" "$f" 2>&1 | grep -m 3 -E 'contract broken|ERROR|runtime error' | sed 's/^/    | /'
	done
	return $bad
}

targets=("$@")
pids=()
for t in "${targets[@]}"; do
	run_one "$t" &
	pids+=($!)
	if [ ${#pids[@]} -ge "$jobs" ]; then
		wait "${pids[0]}"
		pids=("${pids[@]:1}")
	fi
done
for p in "${pids[@]}"; do
	wait "$p"
done

failed=()
for t in "${targets[@]}"; do
	report_one "$t" || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]} (a crash or hang is a broken contract: fix it, then add the input to fuzz/regressions/TARGET/)"
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs} s each, no crash and no hang"
