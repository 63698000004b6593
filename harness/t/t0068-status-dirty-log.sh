#!/usr/bin/env bash
# volmig status shows the writes that wait in the dirty log for a copier.
# A copier reads the log at its checkpoints; with none running, status
# counted the durable dirty set alone, and showed "0 dirty regions" for a
# copy that programs had since written over.  It now also counts the
# regions below the cursor that unread records name (dirty_log_regions in
# --json), and says when a pair's tracking was lost (tracking_lost): a
# program could not write a record, so the next copier copies it all again.
# A log that cannot be read (a corrupted record) is said to be so; status
# names no fault itself (a copier punching records out under it can make a
# segment look corrupted for a moment), verify and sync do.
. "$(dirname "$0")/lib-test.sh"

partial_copy_files

partial_copy_session
ok_if "no copier runs; nothing waits in the dirty log ($(pair_field "$st" dirty_log_regions))" \
	test "$(pair_field "$st" dirty_log_regions)" = 0
for off in $((1 * mib)) $((1 * mib + 8192)) $((2 * mib)) $((15 * mib)); do
	shim_pwrite "$VOLMIG" "$st" "$src" "$SCRATCH/blk" "$off"
done
ok_if "4 writes: to regions 1 (twice) and 2, copied, and 15, not yet" \
	test "$(dlog_records "$st")" -ge 3
ok_if "  status counts the 2 copied regions written since ($(pair_field "$st" dirty_log_regions))" \
	test "$(pair_field "$st" dirty_log_regions)" = 2
ok_if "  the durable dirty set is still empty" test "$(pair_field "$st" dirty_regions)" = 0
ok_if "  and says so for people" \
	sh -c "$VOLMIG status -s '$st' | grep -q '2 more written since their copy, in the dirty log'"
ok_if "  tracking is not lost" test "$(pair_field "$st" tracking_lost)" = false
ok_if "sync finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  then nothing waits in the dirty log" test "$(pair_field "$st" dirty_log_regions)" = 0
ok_if "  the target is the source" cmp "$src" "$tgt"

# a record that cannot be written (ENOSPC): tracking of the pair is lost
rm -rf "$st" "$tgt"
partial_copy_session
ok_if "a write whose record gets ENOSPC goes on" lost_tracking_write $((2 * mib))
ok_if "status says tracking is lost ($(pair_field "$st" tracking_lost))" \
	test "$(pair_field "$st" tracking_lost)" = true
ok_if "  and so for people" \
	sh -c "$VOLMIG status -s '$st' | grep -q 'tracking lost (a program could not log a write)'"
ok_if "sync copies it all again" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  the target is the source" cmp "$src" "$tgt"
ok_if "  tracking is no longer lost" test "$(pair_field "$st" tracking_lost)" = false

# a corrupted record (a bad one with a good one after it, its writer gone):
# status says the log cannot be read and names nothing itself; verify and
# sync name the segment and offset, and fail
rm -rf "$st" "$tgt"
partial_copy_session
ok_if "one program writes to regions 0 and 1" $VOLMIG exec -s "$st" -- python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
for off in (0, 1048576):
    os.pwrite(fd, open(sys.argv[2], "rb").read(), off)' "$src" "$SCRATCH/blk"
seg=$(ls "$st"/log/*.seg)
ok_if "  2 records in its segment" test "$(dlog_records "$st")" -eq 2
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(4096 + 20); b = f.read(1)
f.seek(4096 + 20); f.write(bytes([b[0] ^ 0xff]))' "$seg"
$VOLMIG status -s "$st" >"$SCRATCH/status.out" 2>"$SCRATCH/status.err"
ok_if "status with the first record corrupted exits 0" test $? -eq 0
ok_if "  says the dirty log cannot be read" grep -q 'dirty log   cannot be read' "$SCRATCH/status.out"
ok_if "  and prints no error" test ! -s "$SCRATCH/status.err"
ok_if "  --json: dirty_log_regions null" test "$(pair_field "$st" dirty_log_regions)" = null
out=$($VOLMIG verify -s "$st" 2>&1)
ok_if "verify fails, naming the segment and offset" \
	grep -q "dirty log .*/log/${seg##*/} is corrupted at offset 4096" <<<"$out"
ok_if "  once" test "$(grep -c 'is corrupted' <<<"$out")" -eq 1
ok_if "sync fails too" sh -c "! $VOLMIG sync -s '$st' --progress-interval 0 2>'$SCRATCH/sync.err'"
ok_if "  naming them" grep -q "${seg##*/} is corrupted at offset 4096" "$SCRATCH/sync.err"
done_testing
