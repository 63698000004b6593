#!/usr/bin/env bash
# A state directory removed, and set up again for a new session, under a
# running `sync --follow`: that copier holds the old session's lock file,
# control block and store, all gone with the directory, so a new copier can
# start on the new session beside it.  Before, the old one copied on for a
# session that no longer exists, onto targets the new session may use,
# outside the new control block's region protocol (I4), and read the new
# session's dirty log.  Now each checkpoint first checks that STATE/lock
# still names the file it holds; if not, the copier stops with an error.
. "$(dirname "$0")/lib-test.sh"
cd "$SCRATCH" || exit 1

make_random a.src 16
ok_if "setup of the first session" $VOLMIG setup -s st --source a.src --target a.tgt
spawn cpid $VOLMIG sync -s st --follow --checkpoint-interval 0.1 --progress-interval 0 \
	2>follow.err
synced=no
for _ in $(seq 300); do
	[ "$(status_field st state 2>/dev/null)" = synced ] && { synced=yes; break; }
	sleep 0.05
done
ok_if "the --follow copier reaches synced" test "$synced" = yes

rm -rf st
make_random b.src 16
ok_if "setup of a new session in the same directory" \
	$VOLMIG setup -s st --source b.src --target b.tgt
# the old copier notices at its next checkpoint (0.1 s); bounded at 30 s
wait_exit "$cpid" 30
ok_if "the old copier stops, exit 1 ($exit_rc)" test "$exit_rc" = 1
ok_if "  saying why" grep -q "state directory .*st was removed or set up again" follow.err
ok_if "a sync of the new session exits 0" $VOLMIG sync -s st --progress-interval 0
ok_if "  its target is its source" cmp b.src b.tgt
ok_if "  volmig verify passes" $VOLMIG verify -s st
ok_if "the first session's target is its source (copied before the removal)" cmp a.src a.tgt
done_testing
