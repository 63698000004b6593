#!/usr/bin/env bash
# A failed fdatasync of a program's dirty-log segment is not forgotten.
# After fdatasync reports EIO the kernel may have dropped the pages it could
# not write, and it reports the error to one caller only: a later fdatasync
# that succeeds says nothing about the records written before the failure.
# So the write whose intent was in the failed sync fails, and so does every
# later write that needs a new record (regions not yet dirty), while writes
# to regions already dirty go on.  The failure is injected by libfaultio.so
# stacked after the shim, in each durability mode (group commit, sync).
. "$(dirname "$0")/lib-test.sh"

FAULTIO="$VOLMIG_BUILD/libfaultio.so"
if [ ! -f "$FAULTIO" ]; then
	not_ok "build $FAULTIO first (make check builds it)"
	done_testing
fi
FAULTIO=$(realpath "$FAULTIO")
SHIM=$(realpath "$VOLMIG_BUILD/libvolmig.so")
MiB=1048576

for dur in process sync; do
	st="$SCRATCH/$dur.state" src="$SCRATCH/$dur.src" tgt="$SCRATCH/$dur.tgt"
	make_random "$src" 8
	cp "$src" "$SCRATCH/$dur.before"
	ok_if "$dur: setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" --durability $dur
	ok_if "$dur: sync (every region clean)" $VOLMIG sync -s "$st" --progress-interval 0
	# fdatasync calls on the segment: 1 when it is made, 1 for region 0's
	# record; the 3rd (region 1's record) fails
	$VOLMIG exec -s "$st" -- env LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$SHIM $FAULTIO" \
		VOLMIG_FAULT="path=$st/log/,op=sync,err=EIO,after=2,count=1" VOLMIG_FAULT_LOG=1 \
		python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
MiB = 1 << 20
for name, off in (("r0", 0), ("r1", MiB), ("r2", 2 * MiB), ("r0-again", 4096), ("r3", 3 * MiB)):
    try:
        os.pwrite(fd, b"w" * 4096, off)
        print(name, "ok")
    except OSError as e:
        print(name, e.strerror)
' "$src" >"$SCRATCH/$dur.out" 2>"$SCRATCH/$dur.err"
	grep -q "faultio: EIO on sync of .*\.seg (fdatasync)" "$SCRATCH/$dur.err" ||
		not_ok "$dur: the fault was not injected: $(head -3 "$SCRATCH/$dur.err")"
	want="r0 ok
r1 Input/output error
r2 Input/output error
r0-again ok
r3 Input/output error"
	if [ "$(cat "$SCRATCH/$dur.out")" = "$want" ]; then
		ok "$dur: the write in the failed sync and later first writes fail; a dirty region's write goes on"
	else
		not_ok "$dur: writes after the failed fdatasync"
		sed 's/^/#   got: /' "$SCRATCH/$dur.out"
	fi
	ok_if "$dur: the shim says why, once" test "$(grep -c 'dirty log .* cannot be written or flushed' "$SCRATCH/$dur.err")" = 1
	# the failed writes never reached the source
	ok_if "$dur: regions 1 to 3 of the source unchanged" \
		cmp -s -i $MiB:$MiB -n $((3 * MiB)) "$src" "$SCRATCH/$dur.before"
	ok_if "$dur: a sync after the program ends" $VOLMIG sync -s "$st" --progress-interval 0
	ok_if "$dur: the target is the source" cmp "$src" "$tgt"
done
done_testing
