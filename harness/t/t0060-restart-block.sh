#!/usr/bin/env bash
# The control block a restarted copier builds marks DIRTY exactly the
# regions durable state says may differ: those at or past the durable
# cursor (and the durable dirty set), never one below it.  A region below
# the cursor marked DIRTY would let a program's write there go unlogged
# (I2), and after the next kill nothing would copy it again.  The copier is
# killed mid-copy, restarted and stopped right after it built its block
# (crash point state.copying.before), and a program writes under the shim
# just below the cursor (one dirty-log record) and in the last region (none:
# already dirty); the stopped copier is killed, and the next sync must leave
# the target equal to the source.  Needs the crash-point build.
. "$(dirname "$0")/lib-test.sh"
need_crash_build
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
MIB=1048576 size=16
make_random "$src" $size
ok_if "setup" $CV setup -s "$st" --source "$src" --target "$tgt"

cursor() { $CV status -s "$st" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["cursor_regions"])'; }

# a first copier, killed once its durable cursor is past region 2
spawn cpid $CV sync -s "$st" --rate 2M --checkpoint-interval 0.25 --progress-interval 0
for _ in $(seq 200); do [ "$(cursor)" -ge 3 ] && break; sleep 0.05; done
kill -KILL "$cpid"
wait "$cpid" 2>/dev/null
c=$(cursor)
if [ "$c" -lt 3 ] || [ "$c" -ge $((size - 1)) ]; then
	not_ok "the first copier was killed mid-copy (cursor at region $c of $size)"
	done_testing
fi
ok "the first copier was killed mid-copy (cursor at region $c of $size)"

# the restarted copier stops once its block is built, before it copies
VOLMIG_CRASH=state.copying.before:1:stop spawn spid $CV sync -s "$st" --progress-interval 0 \
	2>"$SCRATCH/sync.err"
pid=$(stopped_at state.copying.before "$SCRATCH/sync.err")
ok_if "the restarted copier stopped after building its block" test -n "$pid"

head -c 4096 /dev/urandom >"$SCRATCH/below"
head -c 4096 /dev/urandom >"$SCRATCH/past"
n0=$(dlog_records "$st")
ok_if "a program writes just below the cursor (region $((c - 1)))" \
	shim_pwrite "$CV" "$st" "$src" "$SCRATCH/below" $(((c - 1) * MIB + 8192))
n1=$(dlog_records "$st")
ok_if "  that write is logged: the region is clean in the block ($n0 -> $n1 records)" \
	test "$n1" -eq $((n0 + 1))
ok_if "a program writes in the last region ($((size - 1)))" \
	shim_pwrite "$CV" "$st" "$src" "$SCRATCH/past" $(((size - 1) * MIB))
n2=$(dlog_records "$st")
ok_if "  that write is not: the region is DIRTY already ($n1 -> $n2 records)" \
	test "$n2" -eq "$n1"

[ -n "$pid" ] && kill -KILL "$pid"
wait "$spid" 2>/dev/null
ok_if "the next sync ends synced" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "the target equals the source, both writes included" cmp -s "$src" "$tgt"
ok_if "volmig verify" $VOLMIG verify -s "$st"
done_testing
