# lib-test.sh: what every scenario test shares.  Source it first:
#
#   . "$(dirname "$0")/lib-test.sh"
#
# It makes a scratch directory ($SCRATCH, removed on exit), finds the build
# ($VOLMIG: the volmig binary, run through $TEST_PREFIX), and prints TAP:
#   ok_if "what" COMMAND...     one check: passes when COMMAND succeeds
#   ok / not_ok "what"          one check decided by the caller
#   skip_test "why"             a skipped check (never counted as passed)
#   spawn VAR COMMAND...        start COMMAND in the background; its pid in
#                               VAR; killed (by pid) on exit if still alive
#   loop_attach VAR FILE        attach FILE to a loop device (name in VAR);
#                               detached on exit; fails when loops cannot
#                               be made here
#   done_testing                plan line; exit status 1 if a check failed
# Seeds: test_seed prints and returns the seed ($VOLMIG_TEST_SEED or random)
# and seeds $RANDOM with it, so a failing run can be repeated; draw with
# rand_between LO HI (into $RAND) or sleep_rand_ms LO HI, never in $(...).
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${VOLMIG_BUILD:=$TOP/build/default}"
VOLMIG_BIN="$VOLMIG_BUILD/volmig"

# In a sanitizer build, test programs (the writer) run with the shim
# (never sanitized) preloaded ahead of their own sanitizer runtime.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
SCRATCH=$(mktemp -d "${TMPDIR:-/var/tmp}/volmig-test.XXXXXX")
_t_scratch=$SCRATCH # removed at exit, even if a test points SCRATCH below it
# strace through a wrapper that turns LeakSanitizer off in what it traces:
# LeakSanitizer cannot run under ptrace and fails the traced program at its
# exit (sanitizer builds, make check-asan).  Only where strace is installed,
# so that `command -v strace` still tells.
if _t_strace=$(command -v strace); then
	mkdir -p "$SCRATCH/.strace"
	cat >"$SCRATCH/.strace/strace" <<EOF_STRACE
#!/bin/sh
ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0" exec "$_t_strace" "\$@"
EOF_STRACE
	chmod +x "$SCRATCH/.strace/strace"
	PATH="$SCRATCH/.strace:$PATH"
fi
_t_n=0
_t_failed=0
_t_pids=()
_t_loops=()

_t_cleanup() {
	local p l
	for p in "${_t_pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -KILL "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		fi
	done
	for l in "${_t_loops[@]}"; do
		losetup -d "$l" 2>/dev/null
	done
	rm -rf "$_t_scratch"
}
trap _t_cleanup EXIT

# $VOLMIG runs volmig through $TEST_PREFIX (valgrind, strace) -- except
# `volmig exec`, whose program must start with the environment exec gives it
# (valgrind following the exec would drop LD_PRELOAD; t0550 runs programs
# under the shim under valgrind the right way round).  A script, not a
# function, so that `env VAR=... $VOLMIG ...` works too.
VOLMIG="$SCRATCH/.bin/volmig"
mkdir -p "$SCRATCH/.bin"
cat >"$VOLMIG" <<EOF_VOLMIG
#!/bin/sh
[ "\$1" = exec ] && exec "$VOLMIG_BIN" "\$@"
exec ${TEST_PREFIX:-} "$VOLMIG_BIN" "\$@"
EOF_VOLMIG
chmod +x "$VOLMIG"

ok() {
	_t_n=$((_t_n + 1))
	echo "ok $_t_n - $*"
}

not_ok() {
	_t_n=$((_t_n + 1))
	_t_failed=$((_t_failed + 1))
	echo "not ok $_t_n - $*"
}

ok_if() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

skip_test() {
	_t_n=$((_t_n + 1))
	echo "ok $_t_n # SKIP $*"
}

done_testing() {
	echo "1..$_t_n"
	[ "$_t_failed" -eq 0 ]
	exit $?
}

note() {
	echo "# $*"
}

# The crash-point build (make crash-build): CV is its volmig; without it
# the test is skipped.
need_crash_build() {
	local cb=${VOLMIG_CRASH_BUILD:-$TOP/build/crash}
	if [ ! -x "$cb/volmig" ] || [ ! -f "$cb/libvolmig.so" ]; then
		skip_test "no crash-point build in $cb (make crash-build)"
		done_testing
	fi
	CV="$cb/volmig"
}

# A program's pwrite of the bytes of FILE at OFFSET into SRC, run under the
# shim of the volmig binary VM for the session in ST.
shim_pwrite() { # vm st src file offset
	"$1" exec -s "$2" -- python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, open(sys.argv[2], "rb").read(), int(sys.argv[3]))' "$3" "$4" "$5"
}

# The pid of the process stopped at crash point POINT (VOLMIG_CRASH=POINT:1:stop,
# crash-point build), from the line it wrote to FILE, once it is stopped;
# waits up to TRIES x 50 ms (default 200).  Prints nothing, status 1, if no
# process stopped there.
stopped_at() { # point file [tries]
	local p
	for _ in $(seq "${3:-200}"); do
		p=$(sed -n "s/.*crash point $1 hit 1 (pid \([0-9]*\)), stopped.*/\1/p" "$2")
		if [ -n "$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = T ]; then
			echo "$p"
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# Wait up to 10 s for FILE to hold a line matching the extended regular
# expression RE (a program's message, an event and not a sleep).
wait_line() { # re file
	for _ in $(seq 200); do
		grep -qE -- "$1" "$2" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# Wait up to 10 s for a copier to run on the session in ST.
wait_copier() { # st
	for _ in $(seq 200); do
		[ "$(status_field "$1" copier_pid)" != null ] && return 0
		sleep 0.05
	done
	return 1
}

# The files partial_copy_session and lost_tracking_write work on: a random
# 16 MiB source, its target's and state's paths, and $SCRATCH/blk, 4 KiB a
# program writes.  Sets mib, src, tgt, st.
partial_copy_files() {
	mib=1048576 src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/st"
	make_random "$src" 16
	head -c 4096 /dev/urandom >"$SCRATCH/blk"
}

# A session on $src (a file of 16 MiB) and $tgt in $st whose copy was
# stopped part way (SIGTERM, rate-limited): sets done_mib, the MiB recorded
# copied, at least 4.
partial_copy_session() {
	local pid
	ok_if "setup of a 16 MiB pair" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
	spawn pid $VOLMIG sync -s "$st" --rate 4M --progress-interval 0 --checkpoint-interval 0.25 \
		2>/dev/null
	for _ in $(seq 200); do
		[ "$(status_field "$st" synced_bytes)" -ge $((4 * 1048576)) ] && break
		sleep 0.05
	done
	kill -TERM "$pid"
	wait_exit "$pid" 10
	ok_if "a copy stopped part way (exit $exit_rc)" test "$exit_rc" = 1
	done_mib=$(($(status_field "$st" synced_bytes) / 1048576))
	ok_if "  with $done_mib of 16 regions recorded copied" test "$done_mib" -ge 4 -a "$done_mib" -lt 16
}

# A program's write of $SCRATCH/blk at OFFSET into $src (session $st) whose
# dirty-log record gets ENOSPC (faultio): the shim flags the pair's
# tracking lost and lets the write go on.
lost_tracking_write() { # offset
	local logdir
	logdir=$(cd "$st" && pwd -P)/log/
	$VOLMIG exec -s "$st" -- env \
		LD_PRELOAD="$(realpath "$VOLMIG_BUILD/libvolmig.so") $(realpath "$VOLMIG_BUILD/libfaultio.so")" \
		VOLMIG_FAULT="path=$logdir,op=write,err=ENOSPC,after=1,count=1" python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, open(sys.argv[2], "rb").read(), int(sys.argv[3]))' "$src" "$SCRATCH/blk" "$1"
}

# A synced session of the crash-point build on a random source of MIB MiB
# (skips without that build): st, src, tgt name its state, source, target.
crash_synced_session() { # mib
	need_crash_build
	st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
	make_random "$src" "$1"
	ok_if "setup" $CV setup -s "$st" --source "$src" --target "$tgt"
	ok_if "sync (the copier exits once synced)" $CV sync -s "$st" --progress-interval 0
}

test_seed() {
	local seed=${VOLMIG_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
	seed=$((seed % 2147483647))
	RANDOM=$seed
	note "seed $seed (set VOLMIG_TEST_SEED=$seed to repeat this run)"
	TEST_SEED=$seed
}

# Random integer in [lo, hi] from the seeded $RANDOM, into $RAND.  Not in
# a command substitution: bash reseeds $RANDOM in subshells, which would
# make the run impossible to repeat from its seed.
rand_between() {
	local lo=$1 hi=$2
	RAND=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
}

# Random waits are stretched under $TEST_PREFIX (valgrind starts programs
# ten times slower), so that "killed mid-copy" still means mid-copy.
DELAY_SCALE=1
[ -n "${TEST_PREFIX:-}" ] && DELAY_SCALE=10

# Sleep a random number of milliseconds in [lo, hi] (seeded, scaled).
sleep_rand_ms() {
	rand_between "$1" "$2"
	sleep_ms "$RAND"
}

# Sleep N milliseconds (scaled).
sleep_ms() {
	sleep "$(awk -v d="$1" -v k="$DELAY_SCALE" 'BEGIN { printf "%.3f", d * k / 1000 }')"
}

spawn() {
	local var=$1
	shift
	"$@" &
	local _sp_pid=$!
	_t_pids+=("$_sp_pid")
	printf -v "$var" '%s' "$_sp_pid"
}

# wait_exit PID SECONDS: wait up to SECONDS for the spawned PID to exit and
# set exit_rc to its exit status, or to "running" when it did not (it is
# then SIGKILLed, by its pid).  Not in a command substitution: only this
# shell can wait for its children.
wait_exit() {
	local pid=$1
	for _ in $(seq $(($2 * 20))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		exit_rc=running
		return
	fi
	wait "$pid"
	exit_rc=$?
}

loop_attach() {
	local var=$1 file=$2 _la_dev
	_la_dev=$(losetup --find --show "$file" 2>/dev/null) || return 1
	_t_loops+=("$_la_dev")
	printf -v "$var" '%s' "$_la_dev"
}

# Can this machine make loop devices?  (root, loop driver, a free device)
loops_available() {
	local f="$SCRATCH/.loopprobe" dev
	[ "$(id -u)" -eq 0 ] || return 1
	truncate -s 1M "$f" || return 1
	dev=$(losetup --find --show "$f" 2>/dev/null) || { rm -f "$f"; return 1; }
	losetup -d "$dev"
	rm -f "$f"
	return 0
}

# copy_run_bytes REGION RATE [direct] [THREADS]: what one copier thread
# copies per bulk I/O at most, for I6's bounds; the rule of copier/engine.c
# (run_regions, next_bulk): buffered 4 MiB (near a hole; elsewhere a
# region), direct 16 MiB a thread and 64 MiB in all, at most 64 regions,
# and under a --rate (bytes/s; 0 for none) a tenth of a second's worth;
# never less than a region.
copy_run_bytes() {
	local region=$1 rate=$2 direct=${3:-} threads=${4:-4} bytes n
	bytes=4194304
	if [ "$direct" = direct ]; then
		bytes=$((67108864 / threads))
		[ "$bytes" -le 16777216 ] || bytes=16777216
	fi
	n=$((bytes / region))
	[ "$n" -le 64 ] || n=64
	[ "$rate" -eq 0 ] || [ "$n" -le $((rate / 10 / region)) ] || n=$((rate / 10 / region))
	[ "$n" -ge 1 ] || n=1
	echo $((n * region))
}

# JSON field of the first pair in `volmig status --json`, as JSON (numbers,
# true/false, quoted strings).
pair_field() { # dir key
	$VOLMIG_BIN status -s "$1" --json | python3 -c \
		'import json, sys; print(json.dumps(json.load(sys.stdin)["pairs"][0][sys.argv[1]]))' "$2"
}

# JSON field of `volmig status --json` (top level, numbers and strings).
status_field() { # dir key
	$VOLMIG_BIN status -s "$1" --json | python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v if v is not None else "null")' "$2"
}

# The dirty-log records in the segments of the session in ST (scripts/dlog-records.py).
dlog_records() { python3 "$TOP/scripts/dlog-records.py" "$1" | cut -d' ' -f1; } # st

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Random data file of N MiB.
make_random() { # file mib
	head -c "$(($2 * 1048576))" /dev/urandom >"$1"
}
