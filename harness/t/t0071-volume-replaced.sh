#!/usr/bin/env bash
# A source or target replaced or removed, or a block device resized, while
# a copier runs.  Programs
# that open the path then get a volume the session neither tracks nor
# copies (fio, extending a file, lays it out again as a new file), and a
# commit refuses the session.  Before, the copier went on copying the old
# volume through its open descriptors, `status` called the session synced
# and showed the new file's size as copied, and a `sync --follow` copier
# never ended.  Now the copier stops with exit 1 at its next checkpoint,
# saying which volume and what is left to do, and `status` names it; a
# target moved away and back lets the next sync finish.  Once
# a session is committed its old sources may go: a copier ending with the
# commit and `status` say nothing of them.
. "$(dirname "$0")/lib-test.sh"

src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/st"

new_session() {
	rm -rf "$st" "$tgt"
	make_random "$src" 8
	ok_if "setup of an 8 MiB pair" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
}

# a sync --follow copier (pid), once it has the session synced; its
# checkpoints INTERVAL s apart
follow_synced() { # interval
	spawn pid $VOLMIG sync -s "$st" --follow --checkpoint-interval "$1" --progress-interval 0 \
		2>"$SCRATCH/sync.err"
	for _ in $(seq 200); do
		[ "$(status_field "$st" state)" = synced ] && break
		sleep 0.05
	done
	ok_if "a sync --follow copier gets the session synced" test "$(status_field "$st" state)" = synced
}

# a synced sync --follow copier; the source replaced by a copy renamed over it
new_session
follow_synced 0.1
cp "$src" "$SCRATCH/new.img" && head -c 1048576 /dev/urandom >>"$SCRATCH/new.img"
ok_if "the source replaced: a longer copy renamed over it" mv "$SCRATCH/new.img" "$src"
wait_exit "$pid" 10
ok_if "  the copier stops (exit $exit_rc, want 1 within 10 s)" test "$exit_rc" = 1
ok_if "  it names the source and says what is left to do" grep -q \
	"source $src is no longer the volume it was at setup (replaced or removed): the copier stops; the migration goes on only once the path names that volume again (else volmig abort -s $st)" \
	"$SCRATCH/sync.err"
ok_if "status runs" eval '$VOLMIG status -s "$st" >"$SCRATCH/status.out"'
ok_if "  and says the source path names another volume" \
	grep -q 'CHANGED: the source path no longer names the volume it did at setup' \
	"$SCRATCH/status.out"
ok_if "  the size is the one at setup, not the new file's" \
	test "$(pair_field "$st" size)" -eq $((8 * 1048576))
ok_if "  source_changed is true" test "$(pair_field "$st" source_changed)" = true
ok_if "  target_changed is false" test "$(pair_field "$st" target_changed)" = false
$VOLMIG sync -s "$st" --progress-interval 0 2>"$SCRATCH/sync2.err"
rc=$?
ok_if "a new sync is refused (exit $rc)" test "$rc" = 1
ok_if "  it says the source changed" grep -q 'no longer the volume it was at setup' \
	"$SCRATCH/sync2.err"
$VOLMIG commit -s "$st" 2>/dev/null
rc=$?
ok_if "commit is refused (exit $rc)" test "$rc" = 1
$VOLMIG verify -s "$st" --progress-interval 0 2>"$SCRATCH/verify.err"
rc=$?
ok_if "verify is refused (exit $rc)" test "$rc" = 1
ok_if "  it says the source changed, not where the bytes differ" \
	grep -q "source $src is no longer the volume it was at setup" "$SCRATCH/verify.err"
ok_if "abort" $VOLMIG abort -s "$st"
ok_if "  status of the aborted session names no change" \
	test "$(pair_field "$st" source_changed)" = false

# a copying copier (under a limit) whose target is moved away, and back
new_session
spawn pid $VOLMIG sync -s "$st" --rate 1M --checkpoint-interval 0.1 --progress-interval 0 \
	2>"$SCRATCH/sync.err"
for _ in $(seq 200); do
	[ "$(status_field "$st" synced_bytes)" -gt 0 ] && break
	sleep 0.05
done
ok_if "a copier copies (rate-limited)" test "$(status_field "$st" synced_bytes)" -gt 0
ok_if "the target moved away (its path removed)" mv "$tgt" "$SCRATCH/away.img"
wait_exit "$pid" 10
ok_if "  the copier stops (exit $exit_rc, want 1 within 10 s)" test "$exit_rc" = 1
ok_if "  it names the target" grep -q "target $tgt is no longer the volume it was at setup" \
	"$SCRATCH/sync.err"
ok_if "  target_changed is true" test "$(pair_field "$st" target_changed)" = true
ok_if "  source_changed is false" test "$(pair_field "$st" source_changed)" = false
ok_if "the target moved back" mv "$SCRATCH/away.img" "$tgt"
ok_if "  status names no change" test "$(pair_field "$st" target_changed)" = false
ok_if "  a new sync resumes and finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  the target is the source" cmp "$src" "$tgt"

# committed: the old source removed at once; the copier ends with the
# commit, seen at its next checkpoint (5 s apart: the removal comes first)
new_session
follow_synced 5
ok_if "commit, then the old source removed" eval '$VOLMIG commit -s "$st" 2>/dev/null && rm "$src"'
wait_exit "$pid" 10
ok_if "  the copier ends with the commit (exit $exit_rc, want 0 within 10 s)" test "$exit_rc" = 0
ok_if "  it says the session is committed" \
	test "$(tail -n 1 "$SCRATCH/sync.err")" = "volmig: session $st is committed"
ok_if "  status of the committed session names no change" \
	test "$(pair_field "$st" source_changed)" = false
ok_if "  and prints no CHANGED line" eval '! $VOLMIG status -s "$st" | grep -q CHANGED'

# a block-device source resized under a synced sync --follow copier (a
# block device keeps its size)
if ! loops_available; then
	skip_test "block devices: cannot make loop devices here (needs root and the loop driver)"
	done_testing
fi
rm -rf "$st"
make_random "$SCRATCH/sf" 8
truncate -s 8M "$SCRATCH/tf"
loop_attach src "$SCRATCH/sf" && loop_attach tgt "$SCRATCH/tf" ||
	{ not_ok "attach two loop devices"; done_testing; }
ok_if "setup of an 8 MiB pair of loop devices" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
follow_synced 0.1
ok_if "the source device grown to 12 MiB" eval 'truncate -s 12M "$SCRATCH/sf" && losetup -c "$src"'
wait_exit "$pid" 10
ok_if "  the copier stops (exit $exit_rc, want 1 within 10 s)" test "$exit_rc" = 1
ok_if "  it names the source and both sizes" grep -q \
	"source $src changed size since setup: 12582912 bytes, was 8388608: the copier stops" \
	"$SCRATCH/sync.err"
ok_if "  status says so" eval '$VOLMIG status -s "$st" |
	grep -q "CHANGED: the source is 12.0 MiB, 8.0 MiB at setup"'
ok_if "  source_changed is true" test "$(pair_field "$st" source_changed)" = true
ok_if "the source device back to 8 MiB" eval 'truncate -s 8M "$SCRATCH/sf" && losetup -c "$src"'
ok_if "  source_changed is false" test "$(pair_field "$st" source_changed)" = false
ok_if "  a new sync finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  the target is the source" cmp "$src" "$tgt"
done_testing
