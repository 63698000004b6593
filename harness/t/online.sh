# online.sh: migrations while applications write (the shim), shared by the
# t003x scenarios.  Source it after lib-test.sh.
#
#   online_fio SOURCE TARGET SIZE_MIB [before-setup]
#       unmodified fio under `volmig exec`: three jobs (psync, pvsync2, and
#       libaio with direct=1), each writing its third of the source once in
#       random order with verify headers, rate-limited so the copy runs
#       alongside; the copier is SIGKILLed at ON_KILLS random moments and
#       restarted.  Then: cmp, volmig verify, and fio's verify-only pass over
#       the target.  With before-setup, fio starts (and opens the source)
#       before `volmig setup`.
#
#   online_writer SOURCE TARGET SIZE_MIB
#       the harness writer (harness/writer.c): two processes of two threads
#       with pwrite, pwritev2 and libaio, acknowledging each write; the
#       copier is SIGKILLed ON_KILLS times and the writer itself killed and
#       restarted ON_WRITER_KILLS times.  Then: cmp, volmig verify, and
#       every acknowledged write is on the target (writer verify).

ON_KILLS=${ON_KILLS:-10}
ON_WRITER_KILLS=${ON_WRITER_KILLS:-3}
ON_RATE_MIB=${ON_RATE_MIB:-8}
ON_INTERVAL=${ON_INTERVAL:-0.25}
ON_SYNC_ARGS=${ON_SYNC_ARGS:-} # more options for every sync (--direct)
WRITER_BIN="$VOLMIG_BUILD/harness/writer"

# Run `volmig sync` until it exits on its own, SIGKILLing it at $1 random
# moments first (100 to 400 ms after each start).  Sets SYNC_RC, SYNC_KILLS.
# Between runs, calls the function named by $2 (if any) with the run number;
# before the run that is not killed, the one named by $3 (if any).
_on_sync_with_kills() {
	local want=$1 between=${2:-} before_last=${3:-} pid delay runs=0
	SYNC_KILLS=0
	while :; do
		runs=$((runs + 1))
		[ "$SYNC_KILLS" -ge "$want" ] && [ -n "$before_last" ] && "$before_last"
		spawn pid $VOLMIG sync -s "$ON_ST" $ON_SYNC_ARGS --rate "${ON_RATE_MIB}M" \
			--checkpoint-interval "$ON_INTERVAL" --progress-interval 0 2>>"$SCRATCH/sync.log"
		if [ "$SYNC_KILLS" -lt "$want" ]; then
			rand_between 100 400
			delay=$RAND
			sleep_ms "$delay"
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid"
		SYNC_RC=$?
		if [ "$SYNC_RC" -eq 137 ]; then
			SYNC_KILLS=$((SYNC_KILLS + 1))
			[ -n "$between" ] && "$between" "$runs"
			continue
		fi
		[ "$SYNC_KILLS" -ge "$want" ] && break
		# finished before all the kills: the application still writes,
		# so a later run has work (the dirty log) again
		[ -n "$between" ] && "$between" "$runs"
		[ "$runs" -gt $((want * 4)) ] && break
	done
}

# fio job file: three jobs, one per engine, each on its third of the source.
_on_fio_job() { # file size_mib rate_mib
	local third=$(($2 / 3)) rate=$3
	cat <<EOF
[global]
filename=$1
rw=randwrite
bs=4k
verify=crc32c
verify_state_save=0
do_verify=0
rate=${rate}m
size=${third}m
[psync]
ioengine=psync
offset=0
[pvsync2]
ioengine=pvsync2
offset=${third}m
[libaio]
ioengine=libaio
iodepth=16
direct=1
offset=$((2 * third))m
EOF
}

# Wait (at most 20 s) until a child of pid has path open.
_on_wait_open() { # pid path
	local want c f
	want=$(readlink -f "$2")
	for _ in $(seq 400); do
		local kids=() t k
		for t in /proc/"$1"/task/*/children; do
			read -r -a k <"$t" 2>/dev/null
			kids+=("${k[@]}")
		done
		for c in "${kids[@]}" "$1"; do
			for f in /proc/"$c"/fd/*; do
				[ "$(readlink "$f" 2>/dev/null)" = "$want" ] && return 0
			done
		done
		sleep 0.05
	done
	return 1
}

online_fio() {
	local src=$1 tgt=$2 size_mib=$3 mode=${4:-}
	local fio_pid fio_rc rate job="$SCRATCH/fio.job"
	ON_ST="$SCRATCH/state"

	test_seed
	# fio takes about as long as four sync runs between kills plus the
	# copy, so writes land before, during and after every kill
	rate=$((size_mib / 3 / 6))
	[ "$rate" -lt 1 ] && rate=1
	_on_fio_job "$src" "$size_mib" "$rate" >"$job"
	if [ "$mode" = before-setup ]; then
		spawn fio_pid $VOLMIG exec -s "$ON_ST" -- fio --output="$SCRATCH/fio.out" "$job"
		if _on_wait_open "$fio_pid" "$src"; then
			ok "fio has the source open before setup"
		else
			not_ok "fio did not open $src within 20 s"
		fi
		ok_if "setup while fio writes to $src" $VOLMIG setup -s "$ON_ST" --source "$src" \
			--target "$tgt" --region-size 64k
	else
		ok_if "setup of $src -> $tgt" $VOLMIG setup -s "$ON_ST" --source "$src" \
			--target "$tgt" --region-size 64k
		spawn fio_pid $VOLMIG exec -s "$ON_ST" -- fio --output="$SCRATCH/fio.out" "$job"
	fi
	_on_sync_with_kills "$ON_KILLS"
	note "copier killed $SYNC_KILLS times; last run exited $SYNC_RC"
	wait "$fio_pid"
	fio_rc=$?
	[ "$fio_rc" -eq 0 ] && ok "fio (psync, pvsync2, libaio direct=1) ran to the end under the shim" ||
		{ not_ok "fio exited $fio_rc"; sed 's/^/# /' "$SCRATCH/fio.out"; }
	[ "$SYNC_KILLS" -ge "$ON_KILLS" ] && ok "copier killed $SYNC_KILLS times mid-copy" ||
		not_ok "copier killed only $SYNC_KILLS times, want $ON_KILLS"
	_on_finish "$src" "$tgt"
	if fio --output="$SCRATCH/fio-verify.out" --verify_only \
		<(_on_fio_job "$tgt" "$size_mib" "$rate" | sed '/^rate=/d') >/dev/null 2>&1; then
		ok "fio's verify-only pass over the target succeeds"
	else
		not_ok "fio's verify-only pass over the target fails"
		grep -iE 'verify|bad|error' "$SCRATCH/fio-verify.out" | head -20 | sed 's/^/# /'
	fi
}

# After the application stopped: a last sync, then the target must equal
# the source.
_on_finish() { # src tgt
	local src=$1 tgt=$2 rc
	$VOLMIG sync -s "$ON_ST" $ON_SYNC_ARGS --progress-interval 0 2>>"$SCRATCH/sync.log"
	rc=$?
	[ "$rc" -eq 0 ] && ok "the last sync drains the dirty log and exits 0" ||
		{ not_ok "the last sync exits $rc"; tail -5 "$SCRATCH/sync.log" | sed 's/^/# /'; }
	[ "$(status_field "$ON_ST" state)" = synced ] && ok "state is synced" ||
		not_ok "state is $(status_field "$ON_ST" state), want synced"
	if cmp "$src" "$tgt" >"$SCRATCH/cmp.out" 2>&1; then
		ok "target byte-identical to source (cmp)"
	else
		not_ok "target differs from source: $(head -1 "$SCRATCH/cmp.out")"
	fi
	ok_if "volmig verify agrees" $VOLMIG verify -s "$ON_ST"
	[ -z "$(ls -A "$ON_ST/log" 2>/dev/null)" ] && ok "every dirty-log segment was ingested and removed" ||
		not_ok "segments left in $ON_ST/log: $(ls "$ON_ST/log" | tr '\n' ' ')"
}

_on_writer_gen=0
_on_writer_start() {
	_on_writer_gen=$((_on_writer_gen + 1))
	spawn ON_WRITER_PID $VOLMIG exec -s "$ON_ST" -- "$WRITER_BIN" write --dev "$ON_SRC" \
		--size "$((ON_SIZE_MIB * 1048576))" --procs 2 --threads 2 --engine mix \
		--gen "$_on_writer_gen" --ack "$SCRATCH/ack" --seed "$((TEST_SEED + _on_writer_gen))" \
		>>"$SCRATCH/writer.log" 2>&1
}

# Between copier runs: now and then kill the writer (by pid) and restart it.
_on_writer_between() { # run
	if [ "$_on_writer_kills" -lt "$ON_WRITER_KILLS" ] && [ $(($1 % 3)) -eq 2 ]; then
		kill -KILL "$ON_WRITER_PID" 2>/dev/null
		wait "$ON_WRITER_PID" 2>/dev/null
		_on_writer_kills=$((_on_writer_kills + 1))
		_on_writer_start
	fi
}

# Before the last copier run: stop the writer (it writes as fast as it can,
# so a rate-limited copy would never catch up with it).
_on_writer_stop() {
	[ -n "$_on_writer_alive" ] && return 0
	if kill -0 "$ON_WRITER_PID" 2>/dev/null; then _on_writer_alive=yes; else _on_writer_alive=no; fi
	kill -KILL "$ON_WRITER_PID" 2>/dev/null
	wait "$ON_WRITER_PID" 2>/dev/null
}

online_writer() {
	ON_SRC=$1 ON_TGT=$2 ON_SIZE_MIB=$3 ON_ST="$SCRATCH/state"
	_on_writer_kills=0
	_on_writer_alive=
	test_seed
	mkdir -p "$SCRATCH/ack"
	ok_if "setup of $ON_SRC -> $ON_TGT" $VOLMIG setup -s "$ON_ST" --source "$ON_SRC" \
		--target "$ON_TGT" --region-size 64k
	_on_writer_start
	_on_sync_with_kills "$ON_KILLS" _on_writer_between _on_writer_stop
	note "copier killed $SYNC_KILLS times, writer killed $_on_writer_kills times; last sync exited $SYNC_RC"
	[ "$SYNC_KILLS" -ge "$ON_KILLS" ] && ok "copier killed $SYNC_KILLS times mid-copy" ||
		not_ok "copier killed only $SYNC_KILLS times, want $ON_KILLS"
	[ "$_on_writer_kills" -ge "$ON_WRITER_KILLS" ] && ok "writer killed and restarted $_on_writer_kills times" ||
		not_ok "writer killed only $_on_writer_kills times, want $ON_WRITER_KILLS"
	[ "$_on_writer_alive" = yes ] && ok "writer kept writing through every copier run" ||
		not_ok "writer stopped on its own: $(tail -3 "$SCRATCH/writer.log" | tr '\n' ' ')"
	_on_finish "$ON_SRC" "$ON_TGT"
	local acks
	acks=$(cat "$SCRATCH"/ack/ack.* 2>/dev/null | wc -c)
	[ "$acks" -gt 16000 ] && ok "writer acknowledged $((acks / 16)) writes" ||
		not_ok "writer acknowledged only $((acks / 16)) writes"
	if "$WRITER_BIN" verify --dev "$ON_TGT" --size "$((ON_SIZE_MIB * 1048576))" \
		--ack "$SCRATCH/ack" >"$SCRATCH/verify.out" 2>&1; then
		ok "every acknowledged write is on the target ($(tail -1 "$SCRATCH/verify.out"))"
	else
		not_ok "acknowledged writes missing on the target"
		head -20 "$SCRATCH/verify.out" | sed 's/^/# /'
	fi
}
