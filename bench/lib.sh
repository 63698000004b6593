# bench/lib.sh: helpers shared by the benchmark scripts (sourced by run.sh).
#
# Result lines: emit appends one JSON object to $RAW per measurement.
# Processes: every background process is started through bg_start (or its
# pid is added with bg_track) and ended by pid with bg_stop; the EXIT trap
# ends whatever is left, by pid, never by name.  Scratch data lives in $DATA
# (under /var/tmp by default) and is removed at exit unless --keep.

PIDS=()

# The interpreter itself, not a wrapper (a pyenv shim costs a few hundred ms
# a call, which would show between a kill and the restart).
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PYTHON=python3
python3() { command "$PYTHON" "$@"; }

# Seconds since the epoch, microsecond resolution (bash 5).
now() { printf '%s\n' "$EPOCHREALTIME"; }

# Arithmetic on decimals: calc 'EXPR' (awk syntax).
calc() { awk "BEGIN { printf \"%.6f\n\", $1 }"; }

log() { printf 'bench: %s\n' "$*" >&2; }

# Bytes from a size with a k/M/G/T suffix (powers of two).
bytes() {
	local v=$1 n u
	n=${v%[kKmMgGtT]}
	u=${v#"$n"}
	case $u in
	'') echo "$n" ;;
	k | K) echo $((n << 10)) ;;
	m | M) echo $((n << 20)) ;;
	g | G) echo $((n << 30)) ;;
	t | T) echo $((n << 40)) ;;
	esac
}

# One JSON object from key=value arguments.  Values that look like numbers,
# true, false or null are written bare; key:=RAW writes RAW as it is;
# key~=TEXT is always a string (a revision like 34e0656 looks like a
# number); the rest are strings.  Every line carries the run mode and a
# timestamp.
json() {
	local out='' kv k v
	for kv in "$@"; do
		if [[ $kv == *:=* ]]; then
			k=${kv%%:=*}
			v=${kv#*:=}
		else
			if [[ ${kv%%=*} == *~ ]]; then
				k=${kv%%~=*}
				v=${kv#*~=}
			else
				k=${kv%%=*}
				v=${kv#*=}
			fi
			if [[ $kv == "$k~="* ]] ||
				! [[ $v =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ || $v == true || $v == false || $v == null ]]; then
				v=${v//\\/\\\\}
				v=${v//\"/\\\"}
				v="\"$v\""
			fi
		fi
		out+="${out:+,}\"$k\":$v"
	done
	printf '{%s}\n' "$out"
}

emit() {
	json "$@" mode="$MODE" time="$(now)" >>"$RAW"
}

bg_track() { PIDS+=("$1"); }

# bg_start VAR CMD...: run CMD in the background, its pid in VAR.
bg_start() {
	local __var=$1
	shift
	"$@" &
	PIDS+=("$!")
	printf -v "$__var" '%s' "$!"
}

alive() { kill -0 "$1" 2>/dev/null; }

# bg_stop PID [SIGNAL]: signal a process we started and reap it if it is our child.
bg_stop() {
	local pid=$1 sig=${2:-TERM}
	[ -n "$pid" ] || return 0
	if alive "$pid"; then
		kill "-$sig" "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

cleanup_all() {
	local p
	for p in "${PIDS[@]}"; do
		if alive "$p"; then
			kill -KILL "$p" 2>/dev/null
		fi
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	if [ -n "${DATA:-}" ] && [ -d "$DATA" ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf -- "$DATA"
	fi
}

# Wait until FILE exists and is not empty (up to SECONDS, default 10).
wait_file() {
	local f=$1 limit=${2:-10} i=0
	while [ ! -s "$f" ]; do
		sleep 0.01
		i=$((i + 1))
		[ $i -ge $((limit * 100)) ] && return 1
	done
	return 0
}

# The block device the scratch directory lives on, as /sys/class/block/NAME
# (empty when unknown: a tmpfs, an overlay).
data_disk() {
	local src
	src=$(df --output=source "$DATA" 2>/dev/null | tail -1)
	src=${src#/dev/}
	[ -n "$src" ] && [ -r "/sys/class/block/$src/stat" ] && echo "/sys/class/block/$src"
}

# Wait until the scratch disk is idle: nothing in flight and no counter
# moving for 0.3 s (at most 30 s).  A file system mounted with `discard`
# trims the blocks of a removed file after its journal commits; the trims of
# the last run's target would otherwise slow down the next run, whichever
# tool it is.
settle_disk() {
	local disk a b i
	disk=$(data_disk) || return 0
	[ -n "$disk" ] || return 0
	a=$(cat "$disk/stat")
	for ((i = 0; i < 100; i++)); do
		sleep 0.3
		b=$(cat "$disk/stat")
		# field 9 of the stat file: I/Os in flight
		[ "$a" = "$b" ] && [ "$(echo "$b" | awk '{print $9}')" = 0 ] && return 0
		a=$b
	done
	log "the scratch disk did not settle in 30 s"
}

# Flush dirty pages and empty the page cache, so every run reads from the
# disk; then let the disk settle.  DROP_OK=false when the cache cannot be
# dropped (not root, a container).
DROP_OK=true
drop_caches() {
	sync
	settle_disk
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		if [ "$DROP_OK" = true ]; then
			log "cannot drop the page cache (not root?): runs may be served from memory"
		fi
		DROP_OK=false
	fi
}

# A pool of random bytes that the data files are built from (64 MiB).
POOL_MIB=64
make_pool() {
	[ -s "$DATA/pool" ] || head -c $((POOL_MIB << 20)) /dev/urandom >"$DATA/pool"
}

# make_dense FILE SIZE: a fully allocated file of SIZE bytes (a multiple of
# 1 MiB) of non-zero, incompressible data.
make_dense() {
	local f=$1 size=$2 left
	make_pool
	rm -f "$f"
	left=$((size >> 20))
	while [ $left -ge $POOL_MIB ]; do
		cat "$DATA/pool"
		left=$((left - POOL_MIB))
	done >"$f"
	[ $left -gt 0 ] && head -c $((left << 20)) "$DATA/pool" >>"$f"
	sync "$f"
}

# make_sparse FILE SIZE DATA: a SIZE-byte file holding DATA bytes of data in
# 4 MiB extents spread evenly over it, holes in between.
make_sparse() {
	local f=$1 size=$2 data=$3 n step i
	make_pool
	rm -f "$f"
	truncate -s "$size" "$f"
	n=$((data >> 22))
	[ $n -gt 0 ] || return 0
	step=$(((size >> 22) / n))
	for ((i = 0; i < n; i++)); do
		dd if="$DATA/pool" of="$f" bs=4M count=1 skip=$((i % (POOL_MIB / 4))) \
			seek=$((i * step)) conv=notrunc status=none
	done
	sync "$f"
}

# Free page reporting (virtio-balloon): a VM hands freed memory back to its
# host, and touching it again then costs a fault on the host.  Each copy
# starts from a dropped page cache, and whichever tool ran first after a
# pause paid for it (bench/README).  An order above the largest (10) reports
# nothing; page_reporting_restore puts back what was there (PR_SAVED: the
# order before the run, empty if it was left alone).
PR_PARAM=/sys/module/page_reporting/parameters/page_reporting_order
PR_SAVED=
page_reporting_off() {
	local was
	was=$(cat "$PR_PARAM" 2>/dev/null) || return 0
	[ "$was" -gt 10 ] 2>/dev/null && return 0
	if echo 11 >"$PR_PARAM" 2>/dev/null; then
		PR_SAVED=$was
		log "free page reporting off for the run (page_reporting_order $was -> 11)"
	else
		log "free page reporting stays on (page_reporting_order $was: not writable here)"
	fi
}
page_reporting_restore() {
	[ -n "$PR_SAVED" ] || return 0
	echo "$PR_SAVED" >"$PR_PARAM" 2>/dev/null && PR_SAVED=
}

# readahead_kib DIR: the largest readahead window of the disk DIR is on
# (its queue's read_ahead_kb; a partition's is its disk's), or "unknown".
readahead_kib() {
	local dev q
	dev=/sys/dev/block/$(mountpoint -d "$(df --output=target "$1" | tail -1)")
	for q in "$dev/queue" "$dev/../queue"; do
		[ -r "$q/read_ahead_kb" ] && { cat "$q/read_ahead_kb"; return; }
	done
	echo unknown
}

# A fresh, sparse target of SIZE bytes.
fresh_target() {
	rm -f "$1"
	truncate -s "$2" "$1"
}

# jget FILE EXPR: a value from a JSON file (python expression on d); text
# before the first '{' is skipped.
jget() {
	python3 -c 'import json,sys
t=open(sys.argv[1]).read()
d=json.loads(t[t.find("{"):])  # fio may print a line before its JSON
v=eval(sys.argv[2])
print("null" if v is None else v)' "$1" "$2"
}

# status_get STATE EXPR: a value from volmig status --json.
status_get() {
	"$VOLMIG" status -s "$1" --json >"$DATA/status.json" 2>/dev/null || return 1
	jget "$DATA/status.json" "$2"
}

# Dirty-log records in STATE/log: "records regions" (scripts/dlog-records.py).
# Used to check that a run logged what it should.
log_records() {
	python3 "$(dirname "${BASH_SOURCE[0]}")/../scripts/dlog-records.py" "$1"
}
