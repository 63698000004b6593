#!/usr/bin/env bash
# A write the program made synchronous (O_DSYNC or O_SYNC at open, RWF_DSYNC
# or RWF_SYNC on pwritev2) is synchronous on the target too: the mirrored
# copy of a write after a commit's barrier, and every write once committed,
# must not sit acknowledged in the target's page cache only.  The target fd
# the shim opens for such a source fd carries the same flag, and a mirrored
# pwritev2 keeps its RWF flag: both read from system-call traces.
. "$(dirname "$0")/lib-test.sh"

command -v strace >/dev/null || { skip_test "strace is not installed"; done_testing; }
st="$SCRATCH/state" src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img"
make_random "$src" 4
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
ok_if "sync (the copier exits once synced)" $VOLMIG sync -s "$st" --progress-interval 0

# traced STEP COMMAND...: COMMAND under the shim, traced into $SCRATCH/STEP.tr
traced() {
	local step=$1
	shift
	strace -f -qq -e trace=openat,pwrite64,pwritev2 -o "$SCRATCH/$step.tr" \
		"$VOLMIG_BIN" exec -s "$st" -- "$@"
}
# target_opened STEP FLAG: the shim opened the target with FLAG
target_opened() { grep -E "openat\(.*\"$tgt\", [A-Z_|]*\\b$2\\b" "$SCRATCH/$1.tr" >/dev/null; }
same_block() { cmp -s -i "$1:$1" -n 4096 "$src" "$tgt"; } # offset

for flag in dsync sync; do
	FLAG=O_$(echo $flag | tr a-z A-Z)
	off=4096
	[ $flag = sync ] && off=8192
	ok_if "dd oflag=$flag under the shim (synced)" traced $flag dd if=/dev/urandom of="$src" \
		bs=4096 count=1 seek=$((off / 4096)) oflag=$flag conv=notrunc status=none
	ok_if "its mirrored copy goes through a target fd opened $FLAG" target_opened $flag $FLAG
	ok_if "the target has the block" same_block $off
done

ok_if "pwritev2 with RWF_DSYNC, then a plain pwrite (synced)" traced rwf python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwritev(fd, [os.urandom(4096)], 16384, os.RWF_DSYNC)
os.pwrite(fd, os.urandom(4096), 20480)' "$src"
ok_if "the mirrored pwritev2 keeps RWF_DSYNC (source and target writes)" \
	test "$(grep -cE "pwritev2\([0-9]+, .*, 1, 16384, RWF_DSYNC\) = 4096" "$SCRATCH/rwf.tr")" -eq 2
ok_if "the plain pwrite is mirrored as a plain pwrite (source and target writes)" \
	test "$(grep -cE "pwrite64\([0-9]+, .*, 4096, 20480\) = 4096" "$SCRATCH/rwf.tr")" -eq 2
ok_if "the target has both blocks" eval "same_block 16384 && same_block 20480"

ok_if "commit" $VOLMIG commit -s "$st"
dd if="$src" of="$SCRATCH/old" bs=4096 skip=8 count=1 status=none
ok_if "dd oflag=dsync under the shim (committed)" traced committed dd if=/dev/urandom of="$src" \
	bs=4096 count=1 seek=8 oflag=dsync conv=notrunc status=none
ok_if "the write goes through a target fd opened O_DSYNC" target_opened committed O_DSYNC
ok_if "the source keeps its old bytes (committed: the target alone)" \
	cmp -s -i 0:32768 -n 4096 "$SCRATCH/old" "$src"
ok_if "the target has new ones" eval "! cmp -s -i 0:32768 -n 4096 '$SCRATCH/old' '$tgt'"
done_testing
