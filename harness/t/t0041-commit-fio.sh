#!/usr/bin/env bash
# Unmodified fio (psync and libaio direct=1, random writes with verify
# headers) runs across the whole lifecycle under volmig exec -- copying
# (copier killed), synced, switched, committed -- and fio's verify-only
# pass over the target succeeds.  A program using io_uring fails cleanly
# (ENOSYS) instead of writing behind the shim's back.
. "$(dirname "$0")/lib-test.sh"

command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; }
size=48
[ -n "${VOLMIG_TEST_QUICK:-}" ] && size=24
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" job="$SCRATCH/fio.job"
test_seed
make_random "$src" "$size"
truncate -s "${size}M" "$tgt"
half=$((size / 2))
rate=$((size / 2 / 10)) # each job writes its half once in about 10 s
[ "$rate" -lt 1 ] && rate=1
fio_job() { # file [rate]
	cat <<J
[global]
filename=$1
rw=randwrite
bs=4k
verify=crc32c
verify_state_save=0
do_verify=0
size=${half}m
${2:+rate=${2}m}
[psync]
ioengine=psync
offset=0
[libaio]
ioengine=libaio
iodepth=16
direct=1
offset=${half}m
J
}
fio_job "$src" "$rate" >"$job"
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 64k
spawn fpid $VOLMIG exec -s "$st" -- fio --output="$SCRATCH/fio.out" "$job"
spawn cpid $VOLMIG sync -s "$st" --rate 16M --checkpoint-interval 0.25 --progress-interval 0
sleep_rand_ms 200 800
kill -KILL "$cpid"
wait "$cpid" 2>/dev/null
spawn cpid $VOLMIG sync -s "$st" --follow --checkpoint-interval 0.25 --progress-interval 0
for _ in $(seq 600); do [ "$(status_field "$st" state)" = synced ] && break; sleep 0.05; done
state=$(status_field "$st" state)
[ "$state" = synced ] && ok "synced while fio writes" || not_ok "not synced (state $state)"
ok_if "switch while fio writes" $VOLMIG switch -s "$st"
ok_if "commit while fio writes" $VOLMIG commit -s "$st"
kill -0 "$fpid" 2>/dev/null && ok "fio still writing after the commit" ||
	not_ok "fio ended before the commit: make its run longer"
wait "$fpid"
rc=$?
[ "$rc" -eq 0 ] && ok "fio ran to the end under the shim across the commit" ||
	{ not_ok "fio exited $rc"; sed 's/^/# /' "$SCRATCH/fio.out" | head -20; }
wait "$cpid"
ok_if "sync --follow ended with the commit" test $? -eq 0
if fio --output="$SCRATCH/fio-verify.out" --verify_only <(fio_job "$tgt") >/dev/null 2>&1; then
	ok "fio's verify-only pass over the target succeeds"
else
	not_ok "fio's verify-only pass over the target fails"
	grep -iE 'verify|bad|error' "$SCRATCH/fio-verify.out" | head -10 | sed 's/^/# /'
fi

# io_uring: refused (ENOSYS), so the program fails or falls back; it never
# writes past the shim
if fio --enghelp 2>/dev/null | grep -qw io_uring; then
	before=$(sha "$tgt")
	$VOLMIG exec -s "$st" -- fio --name=uring --filename="$src" --rw=randwrite --bs=4k \
		--size=1m --ioengine=io_uring --output="$SCRATCH/uring.out" >/dev/null 2>&1
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$(sha "$tgt")" = "$before" ]; then
		ok "fio with io_uring fails cleanly (exit $rc: $(grep -oiE 'function not implemented|ENOSYS|io_uring[^,]*' "$SCRATCH/uring.out" | head -1)) and writes nothing"
	else
		not_ok "fio with io_uring: exit $rc, target $([ "$(sha "$tgt")" = "$before" ] && echo unchanged || echo changed)"
	fi
else
	skip_test "this fio has no io_uring engine"
fi
done_testing
