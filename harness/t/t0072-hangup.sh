#!/usr/bin/env bash
# A hangup (SIGHUP: the terminal or the ssh session running `volmig sync`
# gone) stops the copier as a SIGTERM does: the copying done so far is
# recorded, it says so and exits 1, and the next sync copies nothing twice.
# Before, SIGHUP's default action killed it, and up to a checkpoint
# interval of copying was done again.  Under nohup, which ignores SIGHUP,
# the copier goes on.
. "$(dirname "$0")/lib-test.sh"

partial_copy_files
ok_if "setup of a 16 MiB pair" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
spawn pid $VOLMIG sync -s "$st" --rate 4M --checkpoint-interval 0.25 --progress-interval 0 \
	2>"$SCRATCH/sync.err"
for _ in $(seq 200); do
	[ "$(status_field "$st" synced_bytes)" -ge $((4 * mib)) ] && break
	sleep 0.05
done
ok_if "a copier copies (4 MiB/s)" test "$(status_field "$st" synced_bytes)" -ge $((4 * mib))
ok_if "SIGHUP" kill -HUP "$pid"
wait_exit "$pid" 10
ok_if "  the copier stops (exit $exit_rc, want 1 within 10 s)" test "$exit_rc" = 1
ok_if "  it says the progress is saved" \
	grep -q 'interrupted by signal 1; progress is saved, run volmig sync to resume' \
	"$SCRATCH/sync.err"
done_b=$(status_field "$st" synced_bytes)
ok_if "  with $((done_b / mib)) of 16 MiB recorded" test "$done_b" -lt $((16 * mib))
ok_if "the next sync finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "  it copied nothing twice (bytes_recopied $(status_field "$st" bytes_recopied))" \
	test "$(status_field "$st" bytes_recopied)" -eq 0
ok_if "  the target is the source" cmp "$src" "$tgt"

# under nohup the hangup is ignored: the copier goes on to the end once
# its limit is lifted
rm -rf "$st" "$tgt"
ok_if "setup again" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
spawn pid nohup $VOLMIG sync -s "$st" --rate 1M --checkpoint-interval 0.25 \
	--progress-interval 0 2>"$SCRATCH/sync.err" </dev/null
ok_if "a copier runs under nohup" wait_copier "$st"
ok_if "SIGHUP" kill -HUP "$pid"
ok_if "throttle 0 (no limit)" $VOLMIG throttle -s "$st" 0
wait_exit "$pid" 30
ok_if "  the copier finishes (exit $exit_rc, want 0 within 30 s)" test "$exit_rc" = 0
ok_if "  the target is the source" cmp "$src" "$tgt"
done_testing
