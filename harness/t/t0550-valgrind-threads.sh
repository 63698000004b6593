#!/usr/bin/env bash
# Memory and threads under valgrind, with an error exit code:
#   helgrind over the copier's threads (workers, checkpoints, the control
#   block protocol) while a program writes under the shim;
#   memcheck over the shim inside a real program (the harness writer:
#   pwrite, pwritev2, libaio, threads, fork) during a migration, and over a
#   commit with the program running.
. "$(dirname "$0")/lib-test.sh"

command -v valgrind >/dev/null || { skip_test "valgrind is not installed"; done_testing; }
if ldd "$VOLMIG_BIN" 2>/dev/null | grep -q 'lib[at]san'; then
	skip_test "a sanitizer build: valgrind cannot run sanitized programs (make check-valgrind runs this)"
	done_testing
fi
W="$VOLMIG_BUILD/harness/writer"
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
make_random "$src" 8
truncate -s 8M "$tgt"
$VOLMIG_BIN setup -s "$st" --source "$src" --target "$tgt" --region-size 64k >/dev/null 2>&1 ||
	{ not_ok "setup"; done_testing; }

# the program under the shim, under memcheck: valgrind is the program volmig
# exec runs (valgrind in front of volmig exec would drop LD_PRELOAD when it
# follows the exec); the writer's forked children stay under it
spawn wpid $VOLMIG_BIN exec -s "$st" -- valgrind -q --error-exitcode=99 --leak-check=no \
	--log-file="$SCRATCH/memcheck.%p.log" "$W" write --dev "$src" --size 8M --procs 2 --threads 2 \
	--engine mix --ack "$SCRATCH/ack" --count 3000
# the copier under helgrind, while the program writes
valgrind -q --tool=helgrind --error-exitcode=98 --suppressions="$TOP/harness/helgrind.supp" \
	--log-file="$SCRATCH/helgrind.log" \
	$VOLMIG_BIN sync -s "$st" --threads 4 --rate 16M --checkpoint-interval 0.1 --progress-interval 0 \
	2>/dev/null
rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$SCRATCH/helgrind.log" ] && ok "helgrind: the copier's threads are clean" ||
	{ not_ok "helgrind: exit $rc"; head -40 "$SCRATCH/helgrind.log" | sed 's/^/# /'; }
wait "$wpid"
rc=$?
errs=$(cat "$SCRATCH"/memcheck.*.log 2>/dev/null | grep -c "^==[0-9]*== [A-Z]")
[ "$rc" -eq 0 ] && [ "$errs" -eq 0 ] && ok "memcheck: the shim inside the writer (fork, threads, aio) is clean" ||
	{ not_ok "memcheck: exit $rc, $errs error lines"; cat "$SCRATCH"/memcheck.*.log | head -40 | sed 's/^/# /'; }

# commit with the program running, both under valgrind
$VOLMIG_BIN sync -s "$st" --progress-interval 0 >/dev/null 2>&1
spawn wpid $VOLMIG_BIN exec -s "$st" -- valgrind -q --error-exitcode=99 --leak-check=no \
	--log-file="$SCRATCH/memcheck2.%p.log" "$W" write --dev "$src" --size 8M --procs 1 --threads 2 \
	--engine mix --ack "$SCRATCH/ack" --gen 2 --count 3000
sleep 1
valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite \
	$VOLMIG_BIN commit -s "$st" 2>"$SCRATCH/commit.err"
rc=$?
[ "$rc" -eq 0 ] && ok "memcheck: commit with a program writing is clean" ||
	{ not_ok "commit under memcheck: exit $rc"; head -20 "$SCRATCH/commit.err" | sed 's/^/# /'; }
wait "$wpid"
rc=$?
errs=$(cat "$SCRATCH"/memcheck2.*.log 2>/dev/null | grep -c "^==[0-9]*== [A-Z]")
[ "$rc" -eq 0 ] && [ "$errs" -eq 0 ] && ok "memcheck: the shim across the commit (mirroring, then target only) is clean" ||
	{ not_ok "memcheck across commit: exit $rc, $errs error lines"; cat "$SCRATCH"/memcheck2.*.log | head -40 | sed 's/^/# /'; }
if "$W" verify --dev "$tgt" --size 8M --ack "$SCRATCH/ack" >"$SCRATCH/verify.out" 2>&1; then
	ok "every acknowledged write is on the target ($(tail -1 "$SCRATCH/verify.out"))"
else
	not_ok "acknowledged writes missing on the target"
	head -10 "$SCRATCH/verify.out" | sed "s/^/# /"
fi
done_testing
