#!/usr/bin/env bash
# volmig pause, resume and throttle take effect in a running copier within a
# second, and outlive it (a copier started later honours them).
. "$(dirname "$0")/lib-test.sh"

st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
make_random "$src" 64
truncate -s 64M "$tgt"
$VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 256k >/dev/null 2>&1 ||
	{ not_ok "setup"; done_testing; }
copied() { status_field "$st" synced_bytes; }
MIB=1048576
spawn cpid $VOLMIG sync -s "$st" --rate 8M --threads 2 --checkpoint-interval 0.2 --progress-interval 0
for _ in $(seq 100); do [ "$(copied)" -gt 0 ] && break; sleep 0.05; done

ok_if "pause" $VOLMIG pause -s "$st"
[ "$(status_field "$st" paused)" = True ] && ok "status says paused" || ok_if "status says paused" false
sleep 1 # the pause takes effect within a second
a=$(copied); sleep 1; b=$(copied)
[ "$a" = "$b" ] && ok "paused: no progress in a second ($a bytes copied)" ||
	not_ok "paused, yet $((b - a)) bytes were copied in a second"

# the pause outlives the copier
kill -KILL "$cpid"; wait "$cpid" 2>/dev/null
spawn cpid $VOLMIG sync -s "$st" --rate 8M --threads 2 --checkpoint-interval 0.2 --progress-interval 0
sleep 1
a=$(copied); sleep 1; b=$(copied)
[ "$a" = "$b" ] && ok "a new copier stays paused" || not_ok "a new copier copied $((b - a)) bytes while paused"

ok_if "resume" $VOLMIG resume -s "$st"
moved=no
for _ in $(seq 100); do [ "$(copied)" -gt "$b" ] && { moved=yes; break; }; sleep 0.05; done
[ $moved = yes ] && ok "resumed: copying goes on" || not_ok "no progress within 5 s of resume"

ok_if "throttle 1M" $VOLMIG throttle -s "$st" 1M
sleep 1
a=$(copied); sleep 2; b=$(copied)
note "with throttle 1M: $(((b - a) / 1024)) KiB in 2 s (8M/s before)"
[ $((b - a)) -le $((5 * MIB)) ] && ok "throttled: at most 5 MiB in 2 s at 1 MiB/s (got $((b - a)))" ||
	not_ok "throttle 1M: $((b - a)) bytes in 2 s"
[ $((b - a)) -gt 0 ] && ok "throttled, still copying" || not_ok "throttled to a stop"
ok_if "throttle 0 (no limit)" $VOLMIG throttle -s "$st" 0
for _ in $(seq 600); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$cpid" 2>/dev/null; then
	not_ok "the copier did not finish within 30 s of lifting the limit"
else
	wait "$cpid"
	ok_if "without a limit the copier finishes (exit 0)" test $? -eq 0
fi
ok_if "target equals source" cmp -s "$src" "$tgt"
done_testing
