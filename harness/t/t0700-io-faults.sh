#!/usr/bin/env bash
# t0700-io-faults.sh: I/O faults on the source, the target, the dirty log
# and the copier's state store, injected by the test preload libfaultio.so
# (harness/faultio.c: EIO, ENOSPC, EINTR, short transfers).  Every run must
# end in a correct state or a clear error, never a silent difference:
#
#   - a run that fails exits 1 with a message naming the volume or the state
#     directory at fault: never a crash (a signal), never a hang (60 s);
#   - what it recorded clean is right (volmig verify), and the source is
#     never changed by the copier;
#   - the next run without faults finishes and the target equals the source
#     (cmp, volmig verify);
#   - short transfers and EINTR are handled: the run does not fail at all.
#
# Under the shim the fault preload comes after it:
# LD_PRELOAD="libvolmig.so libfaultio.so", so an application write goes
# shim -> faultio -> libc (the shim tracks it, then it fails) and the shim's
# own dirty-log I/O goes through faultio too; every acknowledged write of
# the harness writer must then be on the target (writer verify).
#
# Files only: faults are injected above the device, so a loop device would
# add nothing.
#
# $VOLMIG is left unquoted on purpose (it may carry $TEST_PREFIX):
# shellcheck disable=SC2086
# shellcheck source=harness/t/lib-test.sh
. "$(dirname "$0")/lib-test.sh"

FAULTIO="$VOLMIG_BUILD/libfaultio.so"
WRITER="$VOLMIG_BUILD/harness/writer"
if [ ! -f "$FAULTIO" ] || [ ! -x "$WRITER" ]; then
	not_ok "build $FAULTIO and $WRITER first (make check builds them)"
	done_testing
fi
FAULTIO=$(realpath "$FAULTIO")
# the shim as `volmig exec` names it, so that it is not preloaded twice
SHIM=$(realpath "$VOLMIG_BUILD/libvolmig.so")
# canonical: the paths faultio matches are the kernel's (/proc/self/fd)
D=$(cd "$SCRATCH" && pwd -P)
SIZE_MIB=8
SIZE=$((SIZE_MIB * 1048576))
LIMIT=60 # seconds a run may take before it counts as hung
[ -n "${TEST_PREFIX:-}" ] && LIMIT=240 # valgrind
test_seed

# ---------------------------------------------------------------- helpers

# A new session in $D/NAME: a random source with a 1 MiB hole (so the copier
# punches the target too), a sparse target.  Sets DIR ST SRC TGT SRC_SHA.
fresh() { # name
	DIR="$D/$1" ST="$D/$1/state" SRC="$D/$1/src.img" TGT="$D/$1/tgt.img"
	mkdir -p "$DIR"
	make_random "$SRC" "$SIZE_MIB"
	fallocate -p -o 3M -l 1M "$SRC" 2>/dev/null ||
		dd if=/dev/zero of="$SRC" bs=1M seek=3 count=1 conv=notrunc status=none
	truncate -s "${SIZE_MIB}M" "$TGT"
	SRC_SHA=$(sha "$SRC")
	if ! $VOLMIG setup -s "$ST" --source "$SRC" --target "$TGT" --region-size 64k \
		>/dev/null 2>"$DIR/setup.err"; then
		not_ok "$1: setup failed: $(head -1 "$DIR/setup.err")"
		return 1
	fi
}

# Wait for pid at most secs seconds; its status, or 124 after killing it.
wait_limited() { # pid secs
	local pid=$1 n=$(($2 * 10))
	while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 124
	fi
	wait "$pid"
}

# One copier run with VOLMIG_FAULT=RULES; stderr (with faultio's log of each
# injection) in $DIR/NAME.err (ERR), exit status in RC.
fault_sync() { # name rules [sync options]...
	local name=$1 rules=$2 pid
	shift 2
	ERR="$DIR/$name.err"
	spawn pid env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$FAULTIO" VOLMIG_FAULT="$rules" \
		VOLMIG_FAULT_LOG=1 $VOLMIG sync -s "$ST" --progress-interval 0 \
		--checkpoint-interval 0.1 "$@" 2>"$ERR"
	wait_limited "$pid" "$LIMIT"
	RC=$?
}

# ok when COMMAND succeeds, else not_ok with the second text.
check() { # ok-text not-ok-text command...
	local yes=$1 no=$2
	shift 2
	if "$@"; then
		ok "$yes"
	else
		not_ok "$no"
		return 1
	fi
}

show() { # file
	grep -v '^faultio: ' "$1" | head -5 | sed 's/^/#   /'
	grep '^faultio: ' "$1" | head -3 | sed 's/^/#   /'
}

# The message lines (not faultio's) of ERR.
messages() { grep -v '^faultio: ' "$ERR"; }

# Did faultio inject anything in the last run?  A check that never saw its
# fault proves nothing, so that is a failure.
injected() { # what
	if grep -q '^faultio: ' "$ERR"; then
		return 0
	fi
	not_ok "$1: the fault was never injected (exit $RC)"
	show "$ERR"
	return 1
}

# The last run failed cleanly: exit 1, and its messages hold every NEEDLE.
clear_error() { # what needle...
	local what=$1 n
	shift
	injected "$what" || return 1
	case $RC in
	124) not_ok "$what: hung (killed after $LIMIT s)"; show "$ERR"; return 1 ;;
	1) ;;
	*) not_ok "$what: exit $RC, want 1 and a clear message"; show "$ERR"; return 1 ;;
	esac
	for n in "$@"; do
		if ! messages | grep -qF -- "$n"; then
			not_ok "$what: exit 1, but no message names '$n'"
			show "$ERR"
			return 1
		fi
	done
	ok "$what: exit 1: $(messages | grep -m1 -E 'error|fail' | cut -c1-160)"
}

# The last run handled its faults: exit 0.
transparent() { # what
	injected "$1" || return 1
	if [ "$RC" -eq 0 ]; then
		ok "$1: handled, exit 0 ($(grep -c '^faultio: ' "$ERR") faults injected)"
	else
		not_ok "$1: exit $RC, want 0 (these faults are to be retried)"
		show "$ERR"
	fi
}

# The last run ended either way, as long as it was clean: exit 0, or exit 1
# with a message naming NEEDLE.  For faults whose handling belongs to
# Berkeley DB (it retries some errors, and reports some retried ones).
correct_or_clear() { # what needle
	injected "$1" || return 1
	if [ "$RC" -eq 0 ]; then
		ok "$1: handled, exit 0"
	elif [ "$RC" -eq 1 ] && messages | grep -qF -- "$2"; then
		ok "$1: exit 1: $(messages | grep -m1 -E 'error|fail' | cut -c1-160)"
	else
		not_ok "$1: exit $RC, want 0, or 1 with a message naming '$2'"
		show "$ERR"
	fi
}

# What the session recorded clean matches the target (after a failed run).
verify_recorded() { # what
	if $VOLMIG verify -s "$ST" >"$DIR/verify.out" 2>&1; then
		ok "$1: what was recorded clean is on the target (volmig verify)"
	else
		not_ok "$1: volmig verify fails after the fault: $(head -1 "$DIR/verify.out")"
	fi
}

# A field of pair 0 in `status --json`; empty when there is no such key.
pair_field() { # key
	$VOLMIG_BIN status -s "$ST" --json 2>/dev/null | python3 -c \
		'import json,sys; v=json.load(sys.stdin)["pairs"][0].get(sys.argv[1]); print("" if v is None else v)' "$1"
}

# A run without faults finishes; target == source; verify agrees; the
# source is as it was (unless an application wrote it: SRC_SHA empty).
recover() { # what
	local rc
	$VOLMIG sync -s "$ST" --progress-interval 0 2>"$DIR/recover.err"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		not_ok "$1: the next sync without faults exits $rc"
		show "$DIR/recover.err"
	elif ! cmp "$SRC" "$TGT" >"$DIR/cmp.out" 2>&1; then
		not_ok "$1: SILENT DIFFERENCE after recovery: $(head -1 "$DIR/cmp.out")"
	elif ! $VOLMIG verify -s "$ST" >"$DIR/verify.out" 2>&1; then
		not_ok "$1: volmig verify disagrees with cmp: $(head -1 "$DIR/verify.out")"
	elif [ -n "$SRC_SHA" ] && [ "$(sha "$SRC")" != "$SRC_SHA" ]; then
		not_ok "$1: the source changed (only the application writes it)"
	else
		ok "$1: the next sync finishes; target == source (cmp, verify)${SRC_SHA:+; source unchanged}"
	fi
}

# ------------------------------------------------------ the target volume

note "target: EIO on one write"
if fresh tgt-eio; then
	fault_sync run "path=$TGT,op=write,err=EIO,after=20,count=1" --threads 4
	clear_error "target EIO on write" "target $TGT" "Input/output error"
	# the region that failed is not recorded clean: the cursor stops at it
	at=$(sed -n 's/^faultio: EIO on write to .* at offset \([0-9]*\) .*/\1/p' "$ERR" | head -1)
	cur=$(pair_field cursor_regions)
	if [ -n "$at" ] && [ -n "$cur" ]; then
		check "target EIO: durable cursor ($cur regions) stops at or before the failed write ($at)" \
			"target EIO: durable cursor $cur regions is past the failed write at $at" \
			[ $((cur * 65536)) -le "$at" ]
	fi
	verify_recorded "target EIO"
	recover "target EIO"
fi

note "target: ENOSPC from the 20th write on (the disk stays full)"
if fresh tgt-enospc; then
	fault_sync run "path=$TGT,op=write,err=ENOSPC,after=20"
	clear_error "target ENOSPC" "target $TGT" "No space left on device"
	verify_recorded "target ENOSPC"
	recover "target ENOSPC"
fi

note "target: short writes and EINTR (writes, flushes, hole punching)"
if fresh tgt-short; then
	fault_sync run "path=$TGT,op=write,err=short,prob=0.5,seed=$TEST_SEED;path=$TGT,op=any,err=EINTR,prob=0.3,seed=$((TEST_SEED + 1))"
	transparent "target short writes and EINTR"
	ok_if "target short writes and EINTR: target == source right away" cmp -s "$SRC" "$TGT"
	recover "target short writes and EINTR"
fi

note "target: hole punching fails (EIO on fallocate)"
if fresh tgt-punch; then
	fault_sync run "path=$TGT,op=alloc,err=EIO"
	correct_or_clear "target fallocate EIO" "target $TGT"
	recover "target fallocate EIO"
fi

note "target: write-behind (sync_file_range) fails: a hint, the checkpoint's flush decides"
if fresh tgt-swb; then
	fault_sync run "path=$TGT,call=sync_file_range,err=EIO"
	correct_or_clear "target sync_file_range EIO" "target $TGT"
	recover "target sync_file_range EIO"
fi

note "target: fdatasync EIO at the first checkpoint"
if fresh tgt-fsync; then
	fault_sync run "path=$TGT,call=fdatasync,err=EIO,count=1" --rate 16M
	clear_error "target fdatasync EIO" "target $TGT" "flush failed"
	# I3: nothing may be recorded clean by a checkpoint whose flush failed,
	# and no checkpoint before it flushed anything
	copied=$(pair_field bytes_copied)
	check "target fdatasync EIO: nothing recorded copied (bytes_copied 0)" \
		"target fdatasync EIO: bytes_copied is '$copied' after a failed first flush" \
		[ "$copied" = 0 ]
	verify_recorded "target fdatasync EIO"
	recover "target fdatasync EIO"
fi

# ------------------------------------------------------ the source volume

note "source: EIO on one read"
if fresh src-eio; then
	fault_sync run "path=$SRC,op=read,err=EIO,after=10,count=1"
	clear_error "source EIO on read" "source $SRC" "Input/output error"
	verify_recorded "source EIO"
	recover "source EIO"
fi

note "source: short reads and EINTR"
if fresh src-short; then
	fault_sync run "path=$SRC,op=read,err=short,prob=0.5,seed=$TEST_SEED;path=$SRC,op=read,err=EINTR,prob=0.3,seed=$((TEST_SEED + 2))"
	transparent "source short reads and EINTR"
	ok_if "source short reads and EINTR: target == source right away" cmp -s "$SRC" "$TGT"
	recover "source short reads and EINTR"
fi

# --------------------------------------------- the copier's state store
# Berkeley DB's files: volmig.db (pages, written when the store closes),
# log.NNNNNNNNNN (its write-ahead log: one write and one fdatasync per
# commit), __db.NNN and __db.register (its environment).

note "state: EIO on Berkeley DB log writes from the 3rd on"
if fresh st-logw; then
	fault_sync run "path=$ST/log.,op=write,err=EIO,after=2"
	clear_error "state log write EIO" "$ST" "Input/output error"
	verify_recorded "state log write EIO"
	recover "state log write EIO"
fi

note "state: ENOSPC on Berkeley DB log writes from the 3rd on"
if fresh st-logfull; then
	fault_sync run "path=$ST/log.,op=write,err=ENOSPC,after=2"
	clear_error "state log write ENOSPC" "$ST" "No space left on device"
	recover "state log write ENOSPC"
fi

note "state: EIO on Berkeley DB log fdatasync from the 3rd on"
if fresh st-logsync; then
	fault_sync run "path=$ST/log.,op=sync,err=EIO,after=2" --rate 16M
	clear_error "state log fdatasync EIO" "$ST" "Input/output error"
	verify_recorded "state log fdatasync EIO"
	recover "state log fdatasync EIO"
fi

note "state: EIO reading volmig.db"
if fresh st-dbread; then
	fault_sync run "path=$ST/volmig.db,op=read,err=EIO"
	clear_error "state volmig.db read EIO" "$ST" "Input/output error"
	recover "state volmig.db read EIO"
fi

note "state: EIO on the Berkeley DB environment files"
if fresh st-env; then
	fault_sync run "path=$ST/__db.,op=any,err=EIO"
	clear_error "state __db.* EIO" "$ST" "Input/output error"
	recover "state __db.* EIO"
fi

note "state: short transfers on every Berkeley DB file"
if fresh st-short; then
	fault_sync run "path=$ST/volmig.db,op=any,err=short,prob=0.5,seed=$TEST_SEED;path=$ST/log.,op=any,err=short,prob=0.5,seed=$TEST_SEED;path=$ST/__db.,op=any,err=short,prob=0.5,seed=$TEST_SEED"
	transparent "state short transfers"
	recover "state short transfers"
fi

note "state: EINTR on every file of the state directory"
if fresh st-eintr; then
	fault_sync run "path=$ST/,op=any,err=EINTR,prob=0.05,seed=$TEST_SEED"
	correct_or_clear "state EINTR" "$ST"
	recover "state EINTR"
fi

note "state: volmig.db cannot be flushed when the store closes"
if fresh st-dbsync; then
	fault_sync run "path=$ST/volmig.db,op=sync,err=EIO"
	# regression (fixed in edcfc5e): the failed close was ignored, exit 0
	clear_error "state volmig.db fdatasync EIO" "$ST" "Input/output error"
	recover "state volmig.db fdatasync EIO"
fi

note "state: a short write of the copier's pid to STATE/lock"
# Regression (fixed in edcfc5e): a short write was taken for a failure with
# errno 0 after the lock fd was closed, so the copier ran unlocked and a
# second one was let in (the two then hung).
if fresh st-lock; then
	first='' second=''
	spawn first env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$FAULTIO" \
		VOLMIG_FAULT="path=$ST/lock,op=write,err=short,count=1" VOLMIG_FAULT_LOG=1 \
		$VOLMIG sync -s "$ST" --progress-interval 0 --rate 2M 2>"$DIR/first.err"
	sleep 0.5
	if ! kill -0 "$first" 2>/dev/null; then
		# it gave up on the lock: fine, if it said so
		wait "$first"
		RC=$? ERR="$DIR/first.err"
		clear_error "short write to STATE/lock" "$ST"
	else
		spawn second $VOLMIG sync -s "$ST" --progress-interval 0 --rate 2M \
			2>"$DIR/second.err"
		wait_limited "$second" 10
		rc=$?
		if [ "$rc" -eq 1 ] && grep -q 'another copier' "$DIR/second.err"; then
			ok "short write to STATE/lock: a second copier is still refused"
		else
			not_ok "short write to STATE/lock: a second copier ran beside the first (exit $rc)"
		fi
		kill -TERM "$first" 2>/dev/null
		wait_limited "$first" 10
	fi
	recover "short write to STATE/lock"
fi

# -------------------------------------------- under the shim (writer runs)

# The harness writer (1 process, 2 threads; pwrite, pwritev2 and libaio)
# under `volmig exec` with LD_PRELOAD="shim faultio" and VOLMIG_FAULT=RULES
# for SECS seconds, while a copier runs without faults.  The session is
# synced first, so every region starts clean and the first write to each
# appends a dirty-log record.  WRC and SYNC_RC: their exit statuses; logs in
# $DIR/NAME.writer and $DIR/NAME.sync.
shim_run() { # name rules secs
	local name=$1 rules=$2 secs=$3 wp sp
	WLOG="$DIR/$name.writer" SLOG="$DIR/$name.sync" ERR="$DIR/$name.writer"
	mkdir -p "$DIR/ack"
	SRC_SHA=
	$VOLMIG sync -s "$ST" --progress-interval 0 2>"$SLOG" ||
		note "$name: the first sync failed: $(tail -1 "$SLOG")"
	spawn wp $VOLMIG exec -s "$ST" -- env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$SHIM $FAULTIO" \
		VOLMIG_FAULT="$rules" VOLMIG_FAULT_LOG=1 "$WRITER" write --dev "$SRC" --size "$SIZE" \
		--procs 1 --threads 2 --engine mix --ack "$DIR/ack" --seconds "$secs" \
		--seed "$TEST_SEED" >"$WLOG" 2>&1
	spawn sp $VOLMIG sync -s "$ST" --progress-interval 0 --checkpoint-interval 0.1 \
		--rate 32M 2>>"$SLOG"
	wait_limited "$wp" "$LIMIT"
	WRC=$?
	RC=$WRC
	wait_limited "$sp" "$LIMIT"
	SYNC_RC=$?
	[ "$SYNC_RC" -eq 124 ] && not_ok "$name: the copier hung while the writer ran"
}

# The writer failed its write with the real errno and said so.
writer_failed() { # what errno-text
	injected "$1" || return 1
	if [ "$WRC" -eq 1 ] && grep -q "writer: error: .*$2" "$WLOG"; then
		ok "$1: the write fails: $(grep -m1 'writer: error: ' "$WLOG" | cut -c1-150)"
	else
		not_ok "$1: writer exit $WRC, want 1 with '$2'"
		show "$WLOG"
	fi
}

# The faults were injected and the writer did not see them: exit 0.
writer_went_on() { # what
	injected "$1" || return 1
	if [ "$WRC" -eq 0 ]; then
		ok "$1: the writer goes on, exit 0"
	else
		not_ok "$1: writer exit $WRC, want 0"
		show "$WLOG"
	fi
}

# After the writer stopped: a sync without faults, then target == source,
# verify, and every acknowledged write is on the target.
shim_finish() { # what
	local acks
	recover "$1"
	acks=$(cat "$DIR"/ack/ack.* 2>/dev/null | wc -c)
	if "$WRITER" verify --dev "$TGT" --size "$SIZE" --ack "$DIR/ack" >"$DIR/wverify.out" 2>&1; then
		ok "$1: all $((acks / 16)) acknowledged writes are on the target (writer verify)"
	else
		not_ok "$1: acknowledged writes missing on the target"
		head -5 "$DIR/wverify.out" | sed 's/^/#   /'
	fi
}

note "shim order: the shim records its intent before a source write that then fails"
if fresh order; then
	$VOLMIG sync -s "$ST" --progress-interval 0 2>/dev/null
	mkdir -p "$DIR/ack"
	SRC_SHA=
	$VOLMIG exec -s "$ST" -- env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$SHIM $FAULTIO" \
		VOLMIG_FAULT="path=$SRC,op=write,err=EIO,count=1" "$WRITER" write --dev "$SRC" \
		--size "$SIZE" --ack "$DIR/ack" --count 1 >"$DIR/order.writer" 2>&1
	wrc=$?
	# the segment's first record (after its 4 KiB header) is written
	segs=("$ST"/log/*.seg)
	seg=${segs[0]}
	rec=$([ -f "$seg" ] && od -An -tx1 -j 4096 -N 32 "$seg" | tr -d ' 0\n')
	check "with LD_PRELOAD='libvolmig.so libfaultio.so' the failed write was tracked first" \
		"shim order: writer exit $wrc, segment '$seg', first record '${rec:-none}'" \
		[ "$wrc" -eq 1 ] && [ -n "$rec" ]
	recover "shim order"
fi

note "dirty log: one segment write gets ENOSPC (the loss of tracking is flagged)"
if fresh dl-enospc1; then
	shim_run run "path=$ST/log/,op=write,err=ENOSPC,after=1,count=1" 2
	writer_went_on "dirty log ENOSPC once"
	shim_finish "dirty log ENOSPC once"
	# the pair was flagged lost: some copier run ingests the flag and says so
	warn=$(cat "$SLOG" "$DIR/recover.err" | grep -m1 'lost track')
	check "dirty log ENOSPC once: the copier re-copies the pair: ${warn:0:120}" \
		"dirty log ENOSPC once: no 'lost track' warning from the copier" [ -n "$warn" ]
fi

note "dirty log: tracking of a pair is lost a second time, after the copier handled the first"
# Regression (fixed in edcfc5e): the segment header only had a bit per pair,
# already set and already handled at the second loss, so that loss lived in
# the control block alone; once the block was rebuilt from durable state the
# region was never copied and sync said synced over a differing target.
relost() {
	local c app cur s lost _
	relost_state() { # prints: cursor dirty state
		$VOLMIG_BIN status -s "$ST" --json 2>/dev/null | python3 -c \
			'import json,sys; j=json.load(sys.stdin); p=j["pairs"][0]; print(p.get("cursor_regions", 0), p["dirty_regions"], j["state"])'
	}
	c='' app=''
	spawn c $VOLMIG sync -s "$ST" --progress-interval 0 --rate 1M --checkpoint-interval 0.1 \
		2>"$DIR/run.err"
	for _ in $(seq 300); do
		read -r cur _ s < <(relost_state)
		[ "${cur:-0}" -ge 16 ] && break
		sleep 0.05
	done
	# an application loses tracking of region 5, below the cursor (its
	# first segment record gets ENOSPC): the copier makes the whole pair
	# dirty; later it loses tracking of region 100 (its second record),
	# which the bulk pass has copied after that
	spawn app $VOLMIG exec -s "$ST" -- env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$SHIM $FAULTIO" \
		VOLMIG_FAULT="path=$ST/log/,op=write,err=ENOSPC,after=1,count=1;path=$ST/log/,op=write,err=ENOSPC,after=2,count=1" \
		VOLMIG_FAULT_LOG=1 python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"A" * 4096, 5 * 65536)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
os.pwrite(fd, b"B" * 4096, 100 * 65536)
' "$SRC" "$DIR/go" 2>"$DIR/app.err"
	# the first loss must be handled (every region dirty again) before the
	# bulk pass copies region 100, or region 100 is still dirty at the
	# second write and that write needs no record: wait for the copier to
	# say so (bounded), and give up this try when it was too late
	wait_line 'lost track' "$DIR/run.err"
	lost=$?
	read -r cur _ s < <(relost_state)
	if [ "$lost" -ne 0 ] || [ "${cur:-0}" -ge 100 ]; then
		kill -KILL "$c" "$app" 2>/dev/null
		wait "$c" "$app" 2>/dev/null
		return 1
	fi
	# the copier is killed once region 100 is durably copied, before the
	# bulk pass ends (the session stays copying: writes are not mirrored)
	for _ in $(seq 600); do
		read -r cur _ s < <(relost_state)
		[ "$s" = copying ] || break
		[ "$cur" -gt 100 ] && break
		sleep 0.05
	done
	kill -KILL "$c" 2>/dev/null
	wait "$c" 2>/dev/null
	read -r cur _ s < <(relost_state)
	# the second loss while no copier runs; the application exits, so the
	# next copier is alone and rebuilds the control block
	touch "$DIR/go"
	wait_limited "$app" "$LIMIT"
	[ "$s" = copying ] && [ "$cur" -gt 100 ] && [ "$cur" -lt 128 ] &&
		[ "$(grep -c '^faultio: ENOSPC' "$DIR/app.err")" -eq 2 ] && grep -q 'lost track' "$DIR/run.err"
}
if fresh dl-relost; then
	if ! relost && fresh dl-relost2 && ! relost; then
		not_ok "second loss of tracking: the scenario could not be set up twice (the program or the copier too slow?)"
		show "$DIR/app.err"
		show "$DIR/run.err"
	else
		$VOLMIG sync -s "$ST" --progress-interval 0 2>"$DIR/final.err"
		rc=$?
		if [ "$rc" -ne 0 ]; then
			not_ok "second loss of tracking: the next sync exits $rc"
			show "$DIR/final.err"
		elif ! cmp -s "$SRC" "$TGT"; then
			not_ok "second loss of tracking: SILENT DIFFERENCE: sync exits 0 but $(cmp "$SRC" "$TGT" 2>&1 | head -1)"
		else
			ok "second loss of tracking: the region is copied again (sync exits 0, target == source)"
		fi
	fi
fi

note "dirty log: the disk fills up after 20 segment writes"
if fresh dl-enospc; then
	shim_run run "path=$ST/log/,op=write,err=ENOSPC,after=20" 2
	writer_failed "dirty log full" "No space left on device"
	shim_finish "dirty log full"
fi

note "dirty log: no space to preallocate a segment"
if fresh dl-alloc; then
	shim_run run "path=$ST/log/,op=alloc,err=ENOSPC" 2
	writer_failed "dirty log preallocation ENOSPC" "No space left on device"
	shim_finish "dirty log preallocation ENOSPC"
fi

note "dirty log: one fdatasync of the segment gets EIO"
if fresh dl-fsync; then
	shim_run run "path=$ST/log/,op=sync,err=EIO,after=10,count=1" 2
	writer_failed "dirty log fdatasync EIO" "Input/output error"
	shim_finish "dirty log fdatasync EIO"
fi

note "dirty log: EIO on one segment write"
if fresh dl-eio; then
	shim_run run "path=$ST/log/,op=write,err=EIO,after=10,count=1" 2
	writer_failed "dirty log write EIO" "Input/output error"
	shim_finish "dirty log write EIO"
fi

note "dirty log: short segment writes, EINTR on its fdatasync"
if fresh dl-short; then
	shim_run run "path=$ST/log/,op=write,err=short,prob=0.5,seed=$TEST_SEED;path=$ST/log/,op=sync,err=EINTR,prob=0.5,seed=$((TEST_SEED + 4))" 2
	writer_went_on "dirty log short writes and EINTR"
	shim_finish "dirty log short writes and EINTR"
fi

note "source: EIO on an application write"
if fresh app-eio; then
	shim_run run "path=$SRC,op=write,err=EIO,after=50,count=1" 2
	writer_failed "source EIO on an application write" "Input/output error"
	shim_finish "source EIO on an application write"
fi

note "source: short application writes and EINTR"
if fresh app-short; then
	shim_run run "path=$SRC,op=write,err=short,prob=0.3,seed=$TEST_SEED;path=$SRC,op=write,err=EINTR,prob=0.2,seed=$((TEST_SEED + 3))" 2
	writer_went_on "source short writes and EINTR under the shim"
	shim_finish "source short writes and EINTR under the shim"
fi

# The copier fails while an application writes: the harness writer runs
# under the shim (no faults) for SECS seconds; meanwhile a copier with
# VOLMIG_FAULT=RULES, then, after it stopped, one without.  ERR: the faulty
# run's stderr; RC its status.
live_run() { # name rules secs
	local name=$1 rules=$2 secs=$3 wp sp
	WLOG="$DIR/$name.writer" SLOG="$DIR/$name.sync"
	mkdir -p "$DIR/ack"
	SRC_SHA=
	$VOLMIG sync -s "$ST" --progress-interval 0 2>"$SLOG" ||
		note "$name: the first sync failed: $(tail -1 "$SLOG")"
	spawn wp $VOLMIG exec -s "$ST" -- "$WRITER" write --dev "$SRC" --size "$SIZE" --procs 1 \
		--threads 2 --engine mix --ack "$DIR/ack" --seconds "$secs" --seed "$TEST_SEED" \
		>"$WLOG" 2>&1
	sleep 0.3
	fault_sync "$name" "$rules" --rate 32M
	spawn sp $VOLMIG sync -s "$ST" --progress-interval 0 --checkpoint-interval 0.1 \
		--rate 32M 2>>"$SLOG"
	wait_limited "$wp" "$LIMIT"
	WRC=$?
	[ "$WRC" -eq 0 ] || { not_ok "$name: the writer failed (exit $WRC)"; show "$WLOG"; }
	wait_limited "$sp" "$LIMIT"
	SYNC_RC=$?
	[ "$SYNC_RC" -eq 124 ] && not_ok "$name: the copier after the faulty one hung"
}

note "target: EIO on one write while the application writes"
if fresh live-tgt; then
	live_run run "path=$TGT,op=write,err=EIO,after=40,count=1" 2
	clear_error "target EIO during live writes" "target $TGT" "Input/output error"
	shim_finish "target EIO during live writes"
fi

note "target: fdatasync EIO while the application writes"
if fresh live-fsync; then
	live_run run "path=$TGT,call=fdatasync,err=EIO,after=2" 2
	clear_error "target fdatasync EIO during live writes" "target $TGT" "flush failed"
	shim_finish "target fdatasync EIO during live writes"
fi

note "copier: EIO reading the dirty log"
if fresh live-ingest; then
	live_run run "path=$ST/log/,op=read,err=EIO,after=3" 2
	clear_error "dirty log read EIO in the copier" "$ST" "Input/output error"
	shim_finish "dirty log read EIO in the copier"
fi

note "copier: short reads and EINTR reading the dirty log"
if fresh live-ingest-short; then
	live_run run "path=$ST/log/,op=read,err=short,prob=0.5,seed=$TEST_SEED;path=$ST/log/,op=read,err=EINTR,prob=0.3,seed=$((TEST_SEED + 5))" 2
	transparent "dirty log short reads and EINTR in the copier"
	shim_finish "dirty log short reads and EINTR in the copier"
fi

done_testing
