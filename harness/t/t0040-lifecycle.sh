#!/usr/bin/env bash
# The whole lifecycle with a program that never stops: setup, sync, synced
# (mirroring, sync --follow), switch, switch --source, switch, commit --
# with the copier and the program (the harness writer under volmig exec)
# killed at random moments in every phase and restarted.  Checks: reads of
# a switched source come from the target (and from the source again after
# switch --source); after commit the source no longer changes while the
# program writes; the target holds every acknowledged write; the longest
# write stall during switch and commit is printed.
. "$(dirname "$0")/lib-test.sh"

W="$VOLMIG_BUILD/harness/writer"
PROBE="$TOP/harness/stallprobe.py"
MIB=1048576
size=32
[ -n "${VOLMIG_TEST_QUICK:-}" ] && size=16
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
wlen=$(((size - 8) * MIB))          # the writer's blocks
plen=$((6 * MIB)) pbase=$wlen       # the stall probe's
rbase=$(((size - 1) * MIB))         # untouched: the redirection check's
test_seed
make_random "$src" "$size"
truncate -s "${size}M" "$tgt"
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 64k

gen=0 wkills=0 ckills=0
start_writer() {
	gen=$((gen + 1))
	spawn wpid $VOLMIG exec -s "$st" -- "$W" write --dev "$src" --size "$((size * MIB))" \
		--region-of-interest "0:$wlen" --procs 2 --threads 2 --engine mix --gen "$gen" \
		--ack "$SCRATCH/ack" --seed "$((TEST_SEED + gen))" >>"$SCRATCH/writer.log" 2>&1
}
kill_writer() { # restart: yes/no
	kill -KILL "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	wkills=$((wkills + 1))
	[ "$1" = yes ] && start_writer
}
start_copier() {
	spawn cpid $VOLMIG sync -s "$st" --follow --rate 32M --checkpoint-interval 0.25 \
		--progress-interval 0 2>>"$SCRATCH/sync.log"
}
kill_copier() {
	kill -KILL "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	ckills=$((ckills + 1))
	start_copier
}
pause_ms() { sleep_rand_ms "$1" "$2"; }
state_is() { [ "$(status_field "$st" state)" = "$1" ]; }
wait_state() { # state seconds
	local i
	for i in $(seq $(($2 * 20))); do state_is "$1" && return 0; sleep 0.05; done
	return 1
}

# copying: the copier and the writer each killed at a random moment
start_writer
start_copier
pause_ms 100 400; kill_copier
pause_ms 100 400; kill_writer yes
pause_ms 100 400; kill_copier
# synced: the writer is too fast for a rate-limited copy to catch up, so
# stop it for the copy to converge, then write again while mirrored
kill_writer no
if wait_state synced 60; then ok "synced after $ckills copier kills"; else
	not_ok "not synced: $(status_field "$st" state)"; done_testing; fi
start_writer
pause_ms 200 600; kill_copier
pause_ms 100 400; kill_writer yes
spawn ppid $VOLMIG exec -s "$st" -- python3 "$PROBE" "$src" "$pbase" "$plen" 2 "$SCRATCH/probe.log"

# switched: reads come from the target.  Make the source differ from the
# target in an untouched region behind the shim's back; a read through the
# shim must still return the target's bytes.
pause_ms 300 600
t_sw0=$(date +%s.%N)
ok_if "switch" $VOLMIG switch -s "$st"
t_sw1=$(date +%s.%N)
state_is switched && ok "state is switched" || not_ok "state is $(status_field "$st" state)"
head -c 65536 /dev/urandom | dd of="$src" bs=64k seek=$((rbase / 65536)) conv=notrunc status=none
want_t=$(dd if="$tgt" bs=64k skip=$((rbase / 65536)) count=1 status=none | sha256sum)
want_s=$(dd if="$src" bs=64k skip=$((rbase / 65536)) count=1 status=none | sha256sum)
got=$($VOLMIG exec -s "$st" -- dd if="$src" bs=64k skip=$((rbase / 65536)) count=1 status=none | sha256sum)
[ "$got" = "$want_t" ] && ok "switched: read() of the source returns the target's data" ||
	not_ok "switched: read() of the source did not come from the target"
got=$($VOLMIG exec -s "$st" -- python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
sys.stdout.buffer.write(os.pread(fd, 65536, int(sys.argv[2])))' "$src" "$rbase" | sha256sum)
[ "$got" = "$want_t" ] && ok "switched: pread() of the source returns the target's data" ||
	not_ok "switched: pread() of the source did not come from the target"
pause_ms 100 400; kill_copier
pause_ms 100 400; kill_writer yes

ok_if "switch --source" $VOLMIG switch -s "$st" --source
got=$($VOLMIG exec -s "$st" -- dd if="$src" bs=64k skip=$((rbase / 65536)) count=1 status=none | sha256sum)
[ "$got" = "$want_s" ] && ok "switched back: reads return the source's data again" ||
	not_ok "switched back: read did not come from the source"
# put the source right again (behind the shim, as it was made wrong)
dd if="$tgt" of="$src" bs=64k skip=$((rbase / 65536)) seek=$((rbase / 65536)) count=1 \
	conv=notrunc status=none
pause_ms 100 400; kill_writer yes
ok_if "switch again" $VOLMIG switch -s "$st"
pause_ms 100 400; kill_copier

# commit while the writer, the probe and the copier run
pause_ms 300 600
t_c0=$(date +%s.%N)
ok_if "commit" $VOLMIG commit -s "$st"
t_c1=$(date +%s.%N)
state_is committed && ok "state is committed" || not_ok "state is $(status_field "$st" state)"
sum1=$(sha "$src")
pause_ms 1000 1500
kill -0 "$wpid" 2>/dev/null && ok "the writer kept running through commit" ||
	not_ok "the writer stopped: $(tail -2 "$SCRATCH/writer.log" | tr '\n' ' ')"
sum2=$(sha "$src")
[ "$sum1" = "$sum2" ] && ok "after commit the source no longer changes while the program writes" ||
	not_ok "the source changed after commit"
wait_exit "$cpid" 10
ok_if "sync --follow ends by itself after commit, exit 0 ($exit_rc)" test "$exit_rc" = 0
kill -TERM "$ppid" 2>/dev/null
wait "$ppid" 2>/dev/null
kill_writer no
note "copier killed $ckills times, writer killed $wkills times (generations 1..$gen)"
if "$W" verify --dev "$tgt" --size "$((size * MIB))" --ack "$SCRATCH/ack" >"$SCRATCH/verify.out" 2>&1; then
	ok "every acknowledged write is on the target ($(tail -1 "$SCRATCH/verify.out"))"
else
	not_ok "acknowledged writes missing on the target"
	head -10 "$SCRATCH/verify.out" | sed 's/^/# /'
fi
note "stall probe: $(wc -l <"$SCRATCH/probe.log") writes from $(head -1 "$SCRATCH/probe.log" | cut -d' ' -f1) to $(tail -1 "$SCRATCH/probe.log" | cut -d' ' -f1); switch at $t_sw0, commit at $t_c0"
note "write stalls during switch: $(python3 "$PROBE" --report "$SCRATCH/probe.log" "$t_sw0" "$(awk -v t="$t_sw1" 'BEGIN { printf "%.6f", t + 0.5 }')")"
note "write stalls during commit: $(python3 "$PROBE" --report "$SCRATCH/probe.log" "$t_c0" "$(awk -v t="$t_c1" 'BEGIN { printf "%.6f", t + 0.5 }')")"
note "commit took $(awk -v a="$t_c0" -v b="$t_c1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms"
done_testing
