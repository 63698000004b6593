#!/usr/bin/env bash
# volmig setup builds the control block, marked pristine (lib/ctl.h): until
# the first copier run every region is dirty, so a program under the shim
# writes with no system call beyond its own -- no lock taken around each
# write, no dirty-log record -- and a program alone keeps the block's DIRTY
# bits.  A copier clears the mark, durably, before it copies (also in a
# block it replaces): a program alone after a copier run logs its writes to
# clean regions again, and the next copier copies them.
. "$(dirname "$0")/lib-test.sh"
need_crash_build
cd "$SCRATCH" || exit 1
command -v strace >/dev/null || { skip_test "strace is not installed: cannot count system calls"; done_testing; }

make_random a.src 8
ok_if "setup" $CV setup -s st --source a.src --target a.tgt --region-size 64k
ok_if "setup leaves a control block" test -f st/ctl

# 1. Writes in the setup state: 100 pwrites spread over 100 regions.
writes='import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"y" * 4096, 0)        # the first: the shim maps the block
os.write(2, b"W-BEGIN\n")
for i in range(1, 101):
    os.pwrite(fd, bytes([i]) * 4096, i * 65536 + 512)
os.write(2, b"W-END\n")'
strace -f -qq -o trace1 $CV exec -s st -- python3 -c "$writes" a.src 2>/dev/null
ok_if "the program ran" test -s trace1
awk '/W-BEGIN/ { on = 1; next } /W-END/ { on = 0 } on' trace1 |
	sed -E 's/^[0-9]+ +//; s/\(.*//' | sort | uniq -c >trace1.sum
pw=$(awk '$2 == "pwrite64" { print $1 }' trace1.sum)
other=$(awk '$2 != "pwrite64" && $2 != "brk" && $2 != "mmap" && $2 != "munmap" { printf "%s %s; ", $2, $1 }' \
	trace1.sum)
[ "${pw:-0}" -eq 100 ] && [ -z "$other" ] &&
	ok "100 writes to 100 regions before the first sync: 100 pwrite64 and no other system call" ||
	not_ok "writes before the first sync: ${pw:-0} pwrite64, others: ${other:-none}"
recs=$(cat st/log/*.seg 2>/dev/null | wc -c)
segs=$(ls st/log/*.seg 2>/dev/null | wc -l)
[ "$segs" -eq 0 ] && ok "no dirty-log segment was written" ||
	not_ok "$segs dirty-log segments ($recs bytes) after writes in the setup state"
ok_if "sync" $CV sync -s st --progress-interval 0
ok_if "the writes reached the target" cmp -s a.src a.tgt

# killed_at_first_checkpoint ST WHO: a sync of ST, SIGKILLed at its first
# checkpoint (crash point copier.checkpoint-commit.after)
killed_at_first_checkpoint() {
	local rc
	VOLMIG_CRASH=copier.checkpoint-commit.after:1 $CV sync -s "$1" --rate 2M \
		--checkpoint-interval 0.2 --progress-interval 0 2>/dev/null
	rc=$?
	[ $rc -eq 137 ] && ok "$2 was killed after its first checkpoint" ||
		not_ok "$2: exit $rc, want 137 (SIGKILL at copier.checkpoint-commit.after)"
}

# write_logged ST SRC WHAT: a program alone writes 4 KiB into region 0 of
# SRC (clean by now); its intent must be in a dirty-log segment (I1/I2)
write_logged() {
	local segs
	shim_pwrite $CV "$1" "$2" w2 100
	segs=$(ls "$1"/log/*.seg 2>/dev/null | wc -l)
	[ "$segs" -ge 1 ] && ok "$3 ($segs segment)" ||
		not_ok "$3: no dirty-log segment after a write to clean region 0 (a pristine block?)"
}

# 2. The mark goes with the first copier run.  A fresh session; a program
# holds the pristine block, so the copier joins it; the copier is killed at
# its first checkpoint, with regions recorded clean, and the program ends.
# Then a program alone writes to region 0, which is clean: its intent must
# be in the dirty log, and the next copier must copy it.
make_random b.src 8
ok_if "setup (second session)" $CV setup -s st2 --source b.src --target b.tgt --region-size 64k
hold=$'import os, signal, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\nos.pwrite(fd, b"z" * 4096, int(sys.argv[2]))\nprint("ready", flush=True)\nsignal.pause()'
$CV exec -s st2 -- python3 -c "$hold" b.src $((8 * 1048576 - 4096)) >hold2.out 2>/dev/null &
hpid=$!
_t_pids+=("$hpid")
ok_if "a program holds the block" wait_line ready hold2.out
killed_at_first_checkpoint st2 "the copier"
cursor=$($VOLMIG_BIN status -s st2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["cursor_regions"])')
[ "$cursor" -ge 1 ] && ok "regions recorded clean (cursor $cursor)" || not_ok "cursor $cursor, want 1 or more"
kill "$hpid"
wait "$hpid" 2>/dev/null
head -c 4096 /dev/urandom >w2
write_logged st2 b.src "a write to a clean region by a program alone is logged"
ok_if "sync" $CV sync -s st2 --progress-interval 0
ok_if "the write reached the target" cmp -s b.src b.tgt
ok_if "volmig verify agrees" $CV verify -s st2

# 3. A copier alone replaces setup's block with its own, by a rename that
# may not reach the disk before it copies.  The old block is kept here
# through a hard link and put back after the copier was killed at its first
# checkpoint, as a power loss that lost the rename would: it must no longer
# be pristine, or a program alone writing a clean region logs nothing.
make_random d.src 8
ok_if "setup (fourth session)" $CV setup -s st4 --source d.src --target d.tgt --region-size 64k
ln st4/ctl st4/ctl.setup
killed_at_first_checkpoint st4 "the copier (alone)"
[ "$(stat -c %i st4/ctl)" != "$(stat -c %i st4/ctl.setup)" ] && ok "the copier built its own block" ||
	not_ok "the copier kept setup's block"
mv st4/ctl.setup st4/ctl
write_logged st4 d.src "setup's block, found again, is not pristine: the write is logged"
ok_if "sync" $CV sync -s st4 --progress-interval 0
ok_if "the write reached the target" cmp -s d.src d.tgt

# 4. Processes attached to the block when setup runs: setup leaves it to them
# (and to the copier), and says nothing is wrong.
make_random c.src 4
ok_if "setup (third session)" $CV setup -s st3 --source c.src --target c.tgt
$CV exec -s st3 -- python3 -c "$hold" c.src 0 >hold.out 2>/dev/null &
hpid=$!
_t_pids+=("$hpid")
wait_line ready hold.out
ino=$(stat -c %i st3/ctl)
ok_if "abort the third session" $CV abort -s st3
ok_if "setup --force while a process holds the old block" $CV setup -s st3 --force --source c.src --target c.tgt
[ "$(stat -c %i st3/ctl)" = "$ino" ] && ok "the block in use was left in place" ||
	not_ok "setup replaced a block a process had mapped"
kill "$hpid"
wait "$hpid" 2>/dev/null
ok_if "sync of the new session" $CV sync -s st3 --progress-interval 0
ok_if "target equals source" cmp -s c.src c.tgt
done_testing
