#!/usr/bin/env bash
# io_submit writes in the mirrored states go to the target as twins: the
# same write submitted to the target through the shim's own context, its
# completion held from the program until the twin completed.  With no
# copier running after sync, every write the program saw complete must be
# on the target: the harness writer (4 threads, libaio, O_DIRECT, 16 in
# flight each; their twins share one context, so a thread reaps others'
# twins) is verified on the target.  Traced, the target gets no pwrite
# (twins, not writes at reap); with the twins' submission failing now and
# then (libfaultio.so), the writes go to the target synchronously instead.
. "$(dirname "$0")/lib-test.sh"

WRITER_BIN="$VOLMIG_BUILD/harness/writer"
SHIM="$VOLMIG_BUILD/libvolmig.so"
FAULTIO="$VOLMIG_BUILD/libfaultio.so"
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
make_random "$src" 16
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
ok_if "sync (the copier exits once synced)" $VOLMIG sync -s "$st" --progress-interval 0

# writes GEN COUNT [PREFIX...]: the writer under the shim, then it ends
writes() {
	local gen=$1 count=$2
	shift 2
	"$VOLMIG_BIN" exec -s "$st" -- "$@" "$WRITER_BIN" write --dev "$src" --size $((16 << 20)) \
		--bs 4096 --procs 1 --threads 4 --engine libaio --iodepth 16 --direct \
		--gen "$gen" --ack "$SCRATCH/ack" --count "$count" --seed "$gen" \
		>>"$SCRATCH/writer.log" 2>&1
}
on_target() {
	"$WRITER_BIN" verify --dev "$tgt" --size $((16 << 20)) --bs 4096 --ack "$SCRATCH/ack" \
		>>"$SCRATCH/verify.log" 2>&1
}

ok_if "writer: 4000 libaio writes from 4 threads (synced, no copier)" writes 1 4000
ok_if "every acknowledged write is on the target" on_target
ok_if "the target equals the source" cmp -s "$src" "$tgt"
mirror_errors() {
	$VOLMIG_BIN status -s "$st" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["mirror_errors"])'
}
ok_if "no mirror errors" test "$(mirror_errors)" = 0

if command -v strace >/dev/null; then
	ok_if "writer traced: 300 libaio writes from 4 threads" \
		writes 2 300 strace -f -qq -y -s 8 -e trace=pwrite64,pwritev,io_submit -o "$SCRATCH/tr"
	iocbs() { grep -o "aio_fildes=[0-9]*<$1>" "$SCRATCH/tr" | wc -l; }
	ok_if "one twin per write: $(iocbs "$src") iocbs to the source, $(iocbs "$tgt") to the target" \
		test "$(iocbs "$src")" -gt 0 -a "$(iocbs "$src")" -eq "$(iocbs "$tgt")"
	ok_if "no synchronous write to the target" eval "! grep -E 'pwrite(64|v)\([0-9]+<$tgt>' '$SCRATCH/tr' >/dev/null"
	ok_if "every acknowledged write is on the target" on_target
else
	skip_test "strace is not installed"
fi

ok_if "writer with twins' submission failing (io_submit to the target, 1 in 4)" \
	writes 3 2000 env VOLMIG_FAULT="path=tgt.img,call=io_submit,op=write,prob=0.25,seed=7" \
	VOLMIG_FAULT_LOG=1 LD_PRELOAD="$SHIM $FAULTIO"
ok_if "faults were injected" grep -q "faultio: EIO on write to .*tgt.img.*(io_submit)" "$SCRATCH/writer.log"
ok_if "every acknowledged write is on the target" on_target
ok_if "the target equals the source" cmp -s "$src" "$tgt"
done_testing
