#!/usr/bin/env bash
# A file source that changes length while it migrates: a program under the
# shim (harness/resizer.py) writes past the end, ftruncates and truncates
# the file shorter and longer, and reads back across the end, checking
# every byte and the length against its model.  Through copying (copier
# and program killed at random), synced (mirrored: the target has the
# source's length at once, with no copier running), switched (reads across
# the end come from the target), commit (fstat, stat by path and reads see
# the target; the source stops changing) -- then a source that grows past its reserve (the
# write goes on, the migration stops with a message), and a block-device
# target (it must hold the reserve; past the source's end it reads zeros).
. "$(dirname "$0")/lib-test.sh"

R="$TOP/harness/resizer.py"
MIB=1048576
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
lo=$((4 * MIB)) hi=$((16 * MIB - 4096))
test_seed
make_random "$src" 8
ok_if "setup --reserve 8M" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" \
	--region-size 64k --reserve 8M
v=$(pair_field "$st" regions)
[ "$v" = 256 ] && ok "the session tracks 16 MiB: 256 regions of 64k" ||
	not_ok "the session tracks 16 MiB: 256 regions of 64k (got $v)"
v=$(pair_field "$st" reserve)
[ "$v" = $((8 * MIB)) ] && ok "status shows the reserve" || not_ok "status shows the reserve ($v)"

gen=0 ckills=0 akills=0
# Returns once the program handles SIGTERM (stop_app's signal would kill a
# program still starting; bounded wait, not a pass condition).
start_app() { # file lo hi extra...
	local f=$1 l=$2 h=$3 i
	shift 3
	gen=$((gen + 1))
	spawn apid $VOLMIG exec -s "$S" -- python3 "$R" "$f" "$l" "$h" "$((TEST_SEED + gen))" \
		--ready "$SCRATCH/ready.$gen" "$@" >>"$SCRATCH/app.log" 2>&1
	for i in $(seq 200); do
		[ -e "$SCRATCH/ready.$gen" ] || ! kill -0 "$apid" 2>/dev/null && break
		sleep 0.05
	done
}
# End the program with SIGTERM: it finishes its op, reads the whole file
# back against its model and exits 0 when everything matched.
stop_app() { # what
	local rc
	kill -TERM "$apid" 2>/dev/null
	wait "$apid"
	rc=$?
	if [ "$rc" -eq 0 ]; then ok "$1: every read and the final length matched the model"; else
		not_ok "$1: every read and the final length matched the model (exit $rc)"
		tail -5 "$SCRATCH/app.log" | sed 's/^/#   /'
	fi
}
kill_app() {
	kill -KILL "$apid" 2>/dev/null
	wait "$apid" 2>/dev/null
	akills=$((akills + 1))
}
start_copier() {
	spawn cpid $VOLMIG sync -s "$S" --follow --rate 8M --checkpoint-interval 0.25 \
		--progress-interval 0 2>>"$SCRATCH/sync.log"
}
kill_copier() {
	kill -KILL "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	ckills=$((ckills + 1))
}
state_is() { [ "$(status_field "$S" state)" = "$1" ]; }
wait_state() { # state seconds (a bounded wait, not a pass condition)
	local i
	for i in $(seq $(($2 * 20))); do state_is "$1" && return 0; sleep 0.05; done
	return 1
}
same() { # what a b: same bytes and the same length
	if cmp -s "$2" "$3"; then ok "$1 ($(stat -c %s "$2") bytes)"; else
		not_ok "$1: $(cmp "$2" "$3" 2>&1 | head -1); lengths $(stat -c %s "$2") $(stat -c %s "$3")"
	fi
}

# ---- copying: the program and the copier killed at random moments
S=$st
start_app "$src" "$lo" "$hi"
start_copier
sleep_rand_ms 200 600; kill_copier; start_copier
sleep_rand_ms 200 600; kill_app; start_app "$src" "$lo" "$hi"
sleep_rand_ms 200 600; kill_copier; start_copier
if wait_state synced 90; then ok "synced after $ckills copier and $akills program kills"; else
	not_ok "synced (state $(status_field "$S" state))"
fi
stop_app "copying"
kill -TERM "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
ok_if "sync drains what is left" $VOLMIG sync -s "$S" --progress-interval 0
same "after copying, the target is the source" "$src" "$tgt"
ok_if "verify (regions past the source's end included)" $VOLMIG verify -s "$S"

# ---- synced: with no copier at all, mirroring alone keeps the target equal
start_app "$src" "$lo" "$hi" --ops 400
wait "$apid"
rc=$?
[ "$rc" -eq 0 ] && ok "synced: 400 ops, every read matched" || not_ok "synced: program exit $rc"
same "synced, no copier: writes past the end and truncations are mirrored" "$src" "$tgt"

# ---- switched: reads across the end come from the target
ok_if "switch" $VOLMIG switch -s "$S"
start_copier
start_app "$src" "$lo" "$hi"
sleep_rand_ms 300 800; kill_copier; start_copier
sleep_rand_ms 300 800
stop_app "switched"

# ---- commit while the program runs; then the source stays as it was
start_app "$src" "$lo" "$hi" --model "$SCRATCH/model"
sleep_rand_ms 200 500
ok_if "commit while the program changes the length" $VOLMIG commit -s "$S"
h1=$(sha "$src")
sleep_ms 700
h2=$(sha "$src")
[ "$h1" = "$h2" ] && ok "after commit the source no longer changes" ||
	not_ok "after commit the source no longer changes"
stop_app "committed (fstat and reads see the target)"
same "the target holds every acknowledged write, at the program's length" \
	"$SCRATCH/model" "$tgt"
# stat by path measures the target once committed, as fstat does: a write
# past the end makes the target longer than the source
head -c 4096 /dev/urandom >"$SCRATCH/blk"
ok_if "a write past the end (committed: the target alone)" \
	shim_pwrite "$VOLMIG_BIN" "$S" "$src" "$SCRATCH/blk" $((20 * MIB))
want=$(stat -c %s "$tgt")
ok_if "the target grew ($want bytes), the source did not ($(stat -c %s "$src"))" \
	test "$want" -eq $((20 * MIB + 4096)) -a "$(stat -c %s "$src")" -lt "$want"
got=$($VOLMIG_BIN exec -s "$S" -- python3 -c '
import os, sys
p = sys.argv[1]
d = os.open(os.path.dirname(p), os.O_RDONLY)
print(os.stat(p).st_size, os.lstat(p).st_size, os.stat(os.path.basename(p), dir_fd=d).st_size)' "$src")
ok_if "stat, lstat and fstatat of the source's path under the shim give the target's size" \
	test "$got" = "$want $want $want"
ok_if "statx (stat -c %s) under the shim gives the target's size" \
	test "$($VOLMIG_BIN exec -s "$S" -- stat -c %s "$src")" = "$want"
kill -TERM "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null

# ---- growth past the reserve: the write goes on, the migration stops
S="$SCRATCH/state2"
src2="$SCRATCH/src2.img" tgt2="$SCRATCH/tgt2.img"
make_random "$src2" 4
ok_if "setup --reserve 1M" $VOLMIG setup -s "$S" --source "$src2" --target "$tgt2" \
	--region-size 64k --reserve 1M
start_copier
# the control block exists once the copier runs: from then on the shim
# tracks (before it, writes are held off, not tracked, and say nothing)
for _ in $(seq 1200); do state_is setup || break; sleep 0.05; done
start_app "$src2" "$MIB" "$((5 * MIB - 4096))" --ops 60 --over 65536 --model "$SCRATCH/model2"
wait "$apid"
rc=$?
[ "$rc" -eq 0 ] && ok "a write past the reserve succeeds for the program" ||
	not_ok "a write past the reserve succeeds for the program (exit $rc)"
ok_if "the shim says the migration stops" grep -q "reaches past the 5242880 bytes" "$SCRATCH/app.log"
wait "$cpid"
rc=$?
[ "$rc" -eq 1 ] && ok "the copier stops with exit status 1" || not_ok "the copier exit status ($rc)"
ok_if "its message names the source, its size and the room" \
	grep -q "source $src2 grew to $((5 * MIB - 4096 + 65536)) bytes, past the 5242880 bytes" \
	"$SCRATCH/sync.log"
v=$(status_field "$S" stopped)
case $v in *"grew to"*) ok "status says the migration is stopped" ;;
*) not_ok "status says the migration is stopped ($v)" ;; esac
$VOLMIG sync -s "$S" >/dev/null 2>"$SCRATCH/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "migration is stopped" "$SCRATCH/err" &&
	ok "sync refuses a stopped session" || not_ok "sync refuses a stopped session ($rc)"
$VOLMIG commit -s "$S" >/dev/null 2>&1 && not_ok "commit of a stopped session is refused" ||
	ok "commit of a stopped session is refused"
ok_if "abort of the stopped session" $VOLMIG abort -s "$S"
same "the source holds every write of the program" "$SCRATCH/model2" "$src2"

# ---- sendfile and splice into a source (the kernel would write it unseen):
# in the synced state with no copier, the target must get the same bytes
S="$SCRATCH/state4"
src4="$SCRATCH/src4.img" tgt4="$SCRATCH/tgt4.img"
make_random "$src4" 2
make_random "$SCRATCH/data" 1
ok_if "setup --reserve 1M" $VOLMIG setup -s "$S" --source "$src4" --target "$tgt4" \
	--region-size 64k --reserve 1M
ok_if "sync" $VOLMIG sync -s "$S" --progress-interval 0
ok_if "sendfile and splice into the source, the last one past its end" \
	$VOLMIG exec -s "$S" -- python3 - "$src4" "$SCRATCH/data" <<'EOF'
import os, sys
out = os.open(sys.argv[1], os.O_RDWR)
data = os.open(sys.argv[2], os.O_RDONLY)
os.lseek(out, 300000, os.SEEK_SET)
assert os.sendfile(out, data, 1000, 100000) == 100000
r, w = os.pipe()
os.write(w, os.pread(data, 50000, 200000))
assert os.splice(r, out, 50000, offset_dst=700000) == 50000
os.lseek(out, 0, os.SEEK_END)
assert os.sendfile(out, data, 0, 300000) == 300000
EOF
same "the target got the sendfile and splice bytes, and the length" "$src4" "$tgt4"

# ---- a block-device target: it must hold the reserve; zeros past the end
if loops_available; then
	S="$SCRATCH/state3"
	src3="$SCRATCH/src3.img"
	make_random "$src3" 4
	truncate -s 5M "$SCRATCH/small.loop"
	truncate -s 6M "$SCRATCH/big.loop"
	if loop_attach L1 "$SCRATCH/small.loop" && loop_attach L2 "$SCRATCH/big.loop"; then
		$VOLMIG setup -s "$S" --source "$src3" --target "$L1" --reserve 2M >/dev/null \
			2>"$SCRATCH/err"
		rc=$?
		[ "$rc" -eq 1 ] && grep -q "smaller than source .* with its reserve" "$SCRATCH/err" &&
			ok "setup refuses a block target without room for the reserve" ||
			not_ok "setup refuses a block target without room for the reserve ($rc)"
		ok_if "setup with a block target that holds the reserve" \
			$VOLMIG setup -s "$S" --source "$src3" --target "$L2" --region-size 64k \
			--reserve 2M
		start_copier
		start_app "$src3" "$MIB" "$((6 * MIB - 4096))"
		sleep_rand_ms 300 800; kill_copier; start_copier
		sleep_rand_ms 300 800
		stop_app "block target"
		kill -TERM "$cpid" 2>/dev/null
		wait "$cpid" 2>/dev/null
		ok_if "sync drains what is left" $VOLMIG sync -s "$S" --progress-interval 0
		n=$(stat -c %s "$src3")
		ok_if "the block target holds the source's $n bytes" cmp -n "$n" "$src3" "$L2"
		ok_if "and zeros from there to the end of the reserve" \
			cmp -n "$((6 * MIB - n))" -i "$n:0" "$L2" /dev/zero
		ok_if "verify" $VOLMIG verify -s "$S"
	else
		not_ok "attach loop devices although loops_available said yes"
	fi
else
	skip_test "block-device target: no loop devices here (needs root and the loop driver)"
fi
done_testing
