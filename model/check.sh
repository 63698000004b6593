#!/usr/bin/env bash
# model/check.sh: check the Promela model of the shim/copier protocol
# (model/volmig.pml) with spin, and print TAP.
#
#   model/check.sh
#
# The correct model must pass every configuration below with an exhaustive
# search: no error, nothing cut off by the depth bound or the memory bound.
# Each broken variant must make spin report a violation of I1 (the monitor's
# assertion), and the sanity variant must show that the copier reaches
# synced.  Without spin the whole file is skipped ("1..0 # SKIP").
#
# Environment: CC (default cc); MODEL_JOBS, how many pan runs at once
# (default 2); MODEL_MEMLIM, the memory bound of one run in MiB (default
# 1536, so two runs stay under 4 GiB).  Exit status 0 when every check
# passed, 1 otherwise.
set -u

here=$(cd "$(dirname "$0")" && pwd)
model="$here/volmig.pml"
CC=${CC:-cc}
jobs=${MODEL_JOBS:-2}
memlim=${MODEL_MEMLIM:-1536}
depth=10000 # search depth bound; the deepest run reaches about 600

if ! command -v spin >/dev/null 2>&1; then
	echo "1..0 # SKIP spin not installed"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/volmig-model.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# One line per check: expect|defines|what.  expect is "pass" (exhaustive,
# no error), "i1" (a violation of I1), or "reach" (the REACH_SYNCED
# assertion).  Writers make 1 write each unless NW0/NW1 say otherwise.
checks=(
	"pass|-DNW0=2 -DNW1=1|correct model, no crash, writes 2+1"
	"pass|-DMAXCC=1|correct model, the copier process crashes at any step"
	"pass|-DMAXKILL=1|correct model, a writer process is killed at any step"
	"pass|-DMAXPL=1|correct model, power loss at any step"
	"pass|-DMAXCC=1 -DMAXKILL=1|correct model, a writer killed and the copier crashed"
	"reach|-DREACH_SYNCED|sanity: the copier reaches synced"
	"i1|-DBROKEN_WRITE_BEFORE_INTENT|broken: data write before its intent is durable"
	"i1|-DBROKEN_NO_DRAIN|broken: copy cleans without waiting for writes in flight"
	"i1|-DBROKEN_CLEAN_BEFORE_FLUSH -DMAXPL=1|broken: checkpoint commits before the target flush"
	"i1|-DBROKEN_INGEST_KEEPS_DEL|broken: ingest keeps a pending delete"
	"i1|-DBROKEN_REPAIR_SETS_DIRTY -DMAXKILL=1|broken: repair of a dead writer sets DIRTY"
	"i1|-DBROKEN_STALE_DIRTY -DMAXPL=1|broken: control block trusted after power loss"
)

# Build and run check i in its own directory; pan's output in out.
run_one() { # index defines
	local d="$work/$1"
	mkdir -p "$d" && cd "$d" || return 1
	# shellcheck disable=SC2086
	if ! spin -a $2 "$model" >spin.log 2>&1; then
		echo "spin -a failed" >out
		cat spin.log >>out
		return 1
	fi
	if ! $CC -O2 -DSAFETY -DMEMLIM="$memlim" -o pan pan.c >cc.log 2>&1; then
		echo "compiling pan failed" >out
		cat cc.log >>out
		return 1
	fi
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f 'wall %e s, peak %M KiB' -o time.log ./pan -m"$depth" >out 2>&1
	else
		./pan -m"$depth" >out 2>&1
	fi
	rm -f pan pan.* ./*.trail
}

# Run the checks, at most $jobs at once, the longest first.
order=(4 3 1 0 2)
for i in "${!checks[@]}"; do
	[ "$i" -gt 4 ] && order+=("$i")
done
running=0
for i in "${order[@]}"; do
	IFS='|' read -r _ defs _ <<<"${checks[$i]}"
	run_one "$i" "$defs" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

# Pull "name value" statistics out of pan's output.
stat_of() { # file
	awk '
		/states, stored/ { states = $1 }
		/depth reached/ { for (i = 1; i <= NF; i++) if ($i == "reached") depth = $(i + 1); sub(",", "", depth) }
		/total actual memory usage/ { mem = $1 }
		/^pan: elapsed time/ { t = $4 }
		END { printf "%s states, depth %s, %s MB, %s s", states, depth, mem, t }
	' "$1"
}

n=0 failed=0
for i in "${!checks[@]}"; do
	IFS='|' read -r expect defs what <<<"${checks[$i]}"
	out="$work/$i/out"
	n=$((n + 1))
	verdict="" why=""
	if [ ! -s "$out" ]; then
		verdict=bad why="no output from pan"
	elif ! grep -q 'errors: [0-9]' "$out"; then
		verdict=bad why=$(head -n 3 "$out" | tr '\n' ' ')
	else
		errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | head -n 1)
		violated=$(grep -m 1 'assertion violated' "$out")
		case $expect in
		pass)
			if [ "$errors" != 0 ]; then
				verdict=bad why="$errors error(s): $(grep -m 1 -E 'violated|invalid end' "$out" | cut -c 1-120)"
			elif grep -q -E 'Search not completed|max search depth too small|reached -DMEMLIM bound|out of memory' "$out"; then
				verdict=bad why="search not exhaustive: $(grep -m 1 -E 'not completed|too small|MEMLIM|out of memory' "$out")"
			else
				verdict=ok why="exhaustive, 0 errors: $(stat_of "$out")"
			fi
			;;
		i1 | reach)
			view=""
			case $violated in
			*ddirty*tin\[* | *tin\[*ddirty*) view="I1 for the target's page cache (process crash)" ;;
			*ddirty*din\[* | *din\[*ddirty*) view="I1 for the target on disk (power loss)" ;;
			"pan:"*"assertion violated 0 "*) view="REACH_SYNCED" ;;
			esac
			if [ "$errors" = 0 ]; then
				verdict=bad why="expected a violation, found none: $(stat_of "$out")"
			elif [ "$expect" = i1 ] && [ "${view#I1}" = "$view" ]; then
				verdict=bad why="expected a violation of I1, got: $(echo "$violated" | cut -c 1-120)"
			elif [ "$expect" = reach ] && [ "$view" != REACH_SYNCED ]; then
				verdict=bad why="expected the REACH_SYNCED assertion, got: $(echo "$violated" | cut -c 1-120)"
			else
				verdict=ok why="spin finds a violation of $view"
				[ "$expect" = reach ] && why="a run reaches synced (the REACH_SYNCED assertion fires)"
			fi
			;;
		esac
	fi
	if [ "$verdict" = ok ]; then
		echo "ok $n - $what ($defs)"
	else
		echo "not ok $n - $what ($defs)"
		failed=$((failed + 1))
	fi
	echo "# $why"
	[ -s "$work/$i/time.log" ] && echo "# $(tail -n 1 "$work/$i/time.log")"
	if [ "$verdict" != ok ]; then
		grep -v '^Depth=' "$out" | sed 's/^/#   /' | head -n 40
	fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
