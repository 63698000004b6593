#!/usr/bin/env bash
# volmig exec and the shim's rules: programs exec'd from the program (even
# with LD_PRELOAD removed) stay tracked; static programs are refused and
# setuid ones warned about; writable shared mappings of a source are refused
# (I8); a corrupted control block fails writes closed and the next copier
# rebuilds it; a stopped copier holding a region under copy delays a write
# only for a bounded time (I7).
. "$(dirname "$0")/lib-test.sh"

size=8
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
make_random "$src" "$size"
truncate -s "${size}M" "$tgt"
$VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 64k >/dev/null 2>&1 ||
	{ not_ok "setup"; done_testing; }
ok_if "a first sync builds the control block and syncs" $VOLMIG sync -s "$st" --progress-interval 0
[ -f "$st/ctl" ] && ok "control block at STATE/ctl" || not_ok "no STATE/ctl after sync"

# exec'd programs stay under the shim: sh execs dd, and dd is started with
# LD_PRELOAD removed from its environment; both writes must be tracked
$VOLMIG exec -s "$st" -- sh -c "head -c 65536 /dev/urandom | dd of='$src' bs=64k seek=3 conv=notrunc status=none &&
	head -c 65536 /dev/urandom | env -u LD_PRELOAD dd of='$src' bs=64k seek=100 conv=notrunc status=none"
ok_if "writes from exec'd programs succeed" test $? -eq 0
ok_if "the next sync copies them" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "target equals source: exec'd writes were tracked" cmp -s "$src" "$tgt"

# static programs are refused, setuid ones get a warning
if printf 'int main(void){return 0;}\n' | cc -static -x c -o "$SCRATCH/static" - 2>/dev/null; then
	out=$($VOLMIG exec -s "$st" -- "$SCRATCH/static" 2>&1)
	rc=$?
	[ "$rc" -eq 1 ] && [[ $out == *"statically linked"* ]] &&
		ok "a static program is refused (exit 1: $out)" ||
		not_ok "static program: exit $rc, message '$out'"
else
	skip_test "no static libc here to build a static test program"
fi
cp "$(type -P true)" "$SCRATCH/suid-true" && chmod u+s "$SCRATCH/suid-true"
out=$($VOLMIG exec -s "$st" -- "$SCRATCH/suid-true" 2>&1)
rc=$?
[ "$rc" -eq 0 ] && [[ $out == *"setuid"* ]] && ok "a setuid program runs with a warning" ||
	not_ok "setuid program: exit $rc, message '$out'"
out=$($VOLMIG exec -s "$st" -- "$SCRATCH/no-such-program" 2>&1)
rc=$?
[ "$rc" -eq 127 ] && ok "a missing program: exit 127" || not_ok "missing program: exit $rc ($out)"
$VOLMIG exec -s "$st" >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ] && ok "no program: usage error, exit 2" || not_ok "no program: exit $rc"

# a writable shared mapping of a source is refused, a private one is not
mm='import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    mmap.mmap(fd, 65536, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
except PermissionError:
    sys.exit(13)
sys.exit(0)'
$VOLMIG exec -s "$st" -- python3 -c "$mm" "$src" 2>"$SCRATCH/mmap.err"
rc=$?
[ "$rc" -eq 13 ] && grep -q "$src" "$SCRATCH/mmap.err" &&
	ok "writable shared mapping of the source: EACCES, message names it" ||
	not_ok "writable shared mapping: exit $rc, stderr '$(cat "$SCRATCH/mmap.err")'"
cp "$tgt" "$SCRATCH/other.img"
$VOLMIG exec -s "$st" -- python3 -c "$mm" "$SCRATCH/other.img" 2>/dev/null
ok_if "writable shared mapping of another file is allowed" test $? -eq 0

# --allow-shared-mmap: the mapping is made, its regions stay dirty while
# mapped (the copier cannot count them clean), and are copied once unmapped
mapw='import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 65536, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=9 * 65536)
m[0:4096] = os.urandom(4096)
sys.stdout.write("mapped\n"); sys.stdout.flush()
sys.stdin.readline()
m.close()'
mkfifo "$SCRATCH/mapctl"
$VOLMIG exec -s "$st" --allow-shared-mmap -- python3 -c "$mapw" "$src" <"$SCRATCH/mapctl" >"$SCRATCH/map.out" 2>&1 &
mpid=$!
_t_pids+=("$mpid")
exec 7>"$SCRATCH/mapctl"
for _ in $(seq 100); do grep -q mapped "$SCRATCH/map.out" 2>/dev/null && break; sleep 0.05; done
ok_if "with --allow-shared-mmap a writable shared mapping of the source is made" grep -q mapped "$SCRATCH/map.out"
$VOLMIG sync -s "$st" --progress-interval 0 2>/dev/null
dirty=$($VOLMIG_BIN status -s "$st" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["dirty_regions"])')
[ "$dirty" -ge 1 ] && ok "while mapped, the mapped region stays dirty ($dirty dirty)" ||
	not_ok "the mapped region was counted clean while mapped"
echo >&7
exec 7>&-
wait "$mpid"
$VOLMIG sync -s "$st" --progress-interval 0 2>/dev/null
ok_if "once unmapped it is copied: target equals source" cmp -s "$src" "$tgt"

# a corrupted control block: writes to files fail (never go untracked), the
# source is unchanged, and the next copier rebuilds the block
before=$(sha "$src")
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.write(b"\xff"); f.close()' "$st/ctl"
head -c 65536 /dev/urandom >"$SCRATCH/blk"
$VOLMIG exec -s "$st" -- dd if="$SCRATCH/blk" of="$src" bs=64k seek=5 conv=notrunc status=none \
	2>"$SCRATCH/corrupt.err"
rc=$?
[ "$rc" -ne 0 ] && [ "$(sha "$src")" = "$before" ] &&
	ok "corrupted control block: the write fails, the source is unchanged" ||
	not_ok "corrupted control block: dd exit $rc, source changed: $([ "$(sha "$src")" = "$before" ] && echo no || echo yes)"
grep -q "control block" "$SCRATCH/corrupt.err" && ok "the shim says why: $(head -1 "$SCRATCH/corrupt.err")" ||
	not_ok "no message about the control block: '$(cat "$SCRATCH/corrupt.err")'"
ok_if "the next sync rebuilds the block" $VOLMIG sync -s "$st" --progress-interval 0
$VOLMIG exec -s "$st" -- dd if="$SCRATCH/blk" of="$src" bs=64k seek=5 conv=notrunc status=none
ok_if "writes work again" test $? -eq 0
$VOLMIG sync -s "$st" --progress-interval 0
ok_if "and are tracked: target equals source" cmp -s "$src" "$tgt"

# The cheap path: in the copying state, a write to a region that is already
# dirty makes no system call beyond the write itself (no log append, flush,
# fstat or lseek).  (Synced sessions mirror: one more write, to the target.)
if command -v strace >/dev/null; then
	cst="$SCRATCH/state-cheap" csrc="$SCRATCH/cheap-src.img" ctgt="$SCRATCH/cheap-tgt.img"
	make_random "$csrc" 4
	truncate -s 4M "$ctgt"
	$VOLMIG setup -s "$cst" --source "$csrc" --target "$ctgt" --region-size 64k >/dev/null 2>&1
	spawn cpid $VOLMIG sync -s "$cst" --rate 512k --checkpoint-interval 0.1 --progress-interval 0
	for _ in $(seq 200); do
		[ "$($VOLMIG_BIN status -s "$cst" --json 2>/dev/null |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["cursor_regions"])' \
			2>/dev/null || echo 0)" -ge 9 ] && break
		sleep 0.05
	done
	kill -KILL "$cpid"
	wait "$cpid" 2>/dev/null
	ok_if "a session left copying (cursor past region 7)" test "$(status_field "$cst" state)" = copying
	st_saved=$st src_saved=$src tgt_saved=$tgt
	st=$cst src=$csrc tgt=$ctgt
	cheap='import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
buf = b"x" * 4096
os.pwrite(fd, buf, 7 * 65536)          # clean -> dirty: the intent is logged
os.write(2, b"CHEAP-BEGIN\n")
for i in range(200):
    os.pwrite(fd, buf, 7 * 65536 + (i % 16) * 4096)
os.write(2, b"CHEAP-END\n")'
	strace -f -qq -o "$SCRATCH/strace.out" $VOLMIG_BIN exec -s "$st" -- python3 -c "$cheap" "$src" 2>/dev/null
	awk '/CHEAP-BEGIN/ { on = 1; next } /CHEAP-END/ { on = 0 } on' "$SCRATCH/strace.out" |
		sed -E 's/^[0-9]+ +//; s/\(.*//' | sort | uniq -c >"$SCRATCH/strace.sum"
	pw=$(awk '$2 == "pwrite64" { print $1 }' "$SCRATCH/strace.sum")
	other=$(awk '$2 != "pwrite64" && $2 != "brk" && $2 != "mmap" && $2 != "munmap" { printf "%s %s; ", $2, $1 }' \
		"$SCRATCH/strace.sum")
	[ "${pw:-0}" -eq 200 ] && [ -z "$other" ] &&
		ok "200 writes to a dirty region: 200 pwrite64 and no other system call" ||
		not_ok "writes to a dirty region: ${pw:-0} pwrite64, others: ${other:-none}"
	$VOLMIG sync -s "$st" --progress-interval 0 2>/dev/null
	ok_if "and the region is copied: target equals source" cmp -s "$src" "$tgt"
	st=$st_saved src=$src_saved tgt=$tgt_saved
else
	skip_test "strace is not installed: cannot count the write path's system calls"
fi

# I7: a stopped copier never holds a write for long.  Start a slow copy of
# a fresh session (one thread, so one region under copy at a time), stop
# the copier mid-copy, and write over the regions around its cursor.
st2="$SCRATCH/state2" src2="$SCRATCH/src2.img" tgt2="$SCRATCH/tgt2.img"
make_random "$src2" 4
truncate -s 4M "$tgt2"
$VOLMIG setup -s "$st2" --source "$src2" --target "$tgt2" --region-size 64k >/dev/null 2>&1
spawn cpid $VOLMIG sync -s "$st2" --threads 1 --rate 256k --checkpoint-interval 0.1 --progress-interval 0
cursor=0
for _ in $(seq 200); do
	cursor=$($VOLMIG_BIN status -s "$st2" --json 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["cursor_regions"])' 2>/dev/null)
	[ "${cursor:-0}" -ge 2 ] && break
	sleep 0.05
done
kill -STOP "$cpid"
first=$((cursor > 2 ? cursor - 2 : 0))
head -c $((8 * 65536)) /dev/urandom >"$SCRATCH/blk8"
t0=$(date +%s%N)
timeout 20 $VOLMIG exec -s "$st2" -- dd if="$SCRATCH/blk8" of="$src2" bs=64k seek="$first" \
	conv=notrunc status=none
rc=$?
t1=$(date +%s%N)
note "write of regions $first..$((first + 7)) with the copier stopped at cursor $cursor took $(((t1 - t0) / 1000000)) ms"
[ "$rc" -eq 0 ] && ok "a write over the region under copy completes while the copier is stopped" ||
	not_ok "the write did not complete (exit $rc; 124 is the 20 s timeout)"
kill -CONT "$cpid"
kill -KILL "$cpid"
wait "$cpid" 2>/dev/null
ok_if "a sync after the stopped copier finishes" $VOLMIG sync -s "$st2" --progress-interval 0
ok_if "target equals source (the raced regions were copied again)" cmp -s "$src2" "$tgt2"
done_testing
