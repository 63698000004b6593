#!/usr/bin/env bash
# A `volmig sync --follow` copier stays up through the mirrored phase, for
# days if the operator waits that long before commit.  Two things it must
# not do there:
# - commit a checkpoint at every wake of its main loop.  It did: once
#   nothing was left to copy, each wake (tens a second) committed one, each a
#   flush of the state log, and scanned every region word (on 1 TiB of 1 MiB
#   regions, 58 % of a core and 62 log flushes a second).  With an interval
#   of 600 s it must commit none while nothing happens: the state log must
#   not move while it idles.  An absence is seen over a window (1 s here); a
#   slow machine can only make fewer wrong commits show, never more.
# - keep its whole log.  Berkeley DB removes log files, and a restart after a
#   kill replays the log only from its last checkpoint (about 22 ms a MiB),
#   so the copier takes one each STATE_LOG_TRIM_KBYTES (128 KiB) of log.
#   Before, it never did: the log grew by every commit of the run.
. "$(dirname "$0")/lib-test.sh"

if ! command -v db5.3_stat >/dev/null; then
	skip_test "db5.3_stat (package db5.3-util) is not installed"
	done_testing
	exit 0
fi

# "number offset" of the end of the state log, and the log's byte counts:
# written in all, and since the last Berkeley DB checkpoint
log_end() { db5.3_stat -h "$1" -l | awk '/Current log file number/ { n = $1 } /Current log file offset/ { o = $1 } END { print n, o }'; }
log_bytes() { # dir "written" | "since"
	db5.3_stat -h "$1" -l | python3 -c '
import re, sys
want = "Log bytes written since last checkpoint" if sys.argv[1] == "since" else "Log bytes written"
for line in sys.stdin:
    v, _, name = line.rstrip("\n").partition("\t")
    if name == want:
        # "5MB 71KB 524B", "12KB 3B", "0"
        n = 0
        for num, unit in re.findall(r"(\d+)(MB|KB|B)?", v):
            n += int(num) * {"MB": 1 << 20, "KB": 1 << 10}.get(unit, 1)
        print(n)
        break' "$2"
}
log_count() { find "$1" -maxdepth 1 -name 'log.*' | wc -l; }

wait_synced() { # st
	for _ in $(seq 400); do
		[ "$(status_field "$1" state)" = synced ] && [ "$(status_field "$1" copier_pid)" != null ] &&
			return 0
		sleep 0.05
	done
	return 1
}

src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/state"
make_random "$src" 8

# 1. idle: no checkpoint before the interval
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 64k
spawn cpid $VOLMIG sync -s "$st" --follow --checkpoint-interval 600 --progress-interval 0 \
	2>"$SCRATCH/follow1.err"
ok_if "the --follow copier reaches synced" wait_synced "$st"
before=$(log_end "$st")
sleep_ms 1000
after=$(log_end "$st")
[ -n "$before" ] && [ "$before" = "$after" ] &&
	ok "idle and synced, with a 600 s interval, it commits nothing: the log end stays at $after" ||
	not_ok "idle and synced, with a 600 s interval, it commits nothing (log end $before, 1 s later $after)"
ok_if "  and it is still running" kill -0 "$cpid"
kill -TERM "$cpid"
wait "$cpid"
rc=$?
ok_if "  SIGTERM ends it with the progress saved (exit $rc)" test "$rc" -eq 1
ok_if "  the target is the source" cmp "$src" "$tgt"

# 2. a long run's log: checkpoints every 2 ms, so one commit after another,
# each recording the progress of 16 pairs (more log per commit, so the log
# runs over several files within seconds)
st2="$SCRATCH/state2" pairs=()
for i in $(seq 16); do
	head -c 65536 "$src" >"$SCRATCH/s$i.img"
	pairs+=(--source "$SCRATCH/s$i.img" --target "$SCRATCH/t$i.img")
done
ok_if "setup of a second session, 16 pairs" $VOLMIG setup -s "$st2" "${pairs[@]}" \
	--region-size 64k
spawn cpid2 $VOLMIG sync -s "$st2" --follow --checkpoint-interval 0.002 --progress-interval 0 \
	2>"$SCRATCH/follow2.err"
ok_if "the --follow copier reaches synced" wait_synced "$st2"
# 3 MiB of log is three log files' worth: bounded at 120 s, a few seconds here
written=0
for _ in $(seq 1200); do
	written=$(log_bytes "$st2" written)
	[ "${written:-0}" -gt 3145728 ] && break
	kill -0 "$cpid2" 2>/dev/null || break
	sleep 0.1
done
since=$(log_bytes "$st2" since) nlogs=$(log_count "$st2")
ok_if "it logged more than 3 MiB ($written bytes)" test "${written:-0}" -gt 3145728
# the trim runs after each commit: at most one commit's log past the threshold
ok_if "  of which at most 129 KiB since the last Berkeley DB checkpoint ($since bytes)" \
	test "${since:-999999999}" -le 132096
ok_if "  and at most 2 log files are left ($nlogs)" test "$nlogs" -le 2
kill -KILL "$cpid2"
wait "$cpid2" 2>/dev/null
ok_if "after a kill, a sync recovers the store and ends synced" \
	$VOLMIG sync -s "$st2" --progress-interval 0
ok_if "  the state is synced" test "$(status_field "$st2" state)" = synced
same=0
for i in $(seq 16); do cmp -s "$SCRATCH/s$i.img" "$SCRATCH/t$i.img" && same=$((same + 1)); done
ok_if "  every target is its source ($same of 16)" test "$same" -eq 16
ok_if "  volmig verify passes" $VOLMIG verify -s "$st2"
done_testing
