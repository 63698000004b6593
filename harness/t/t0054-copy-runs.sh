#!/usr/bin/env bash
# sync copies runs of neighbouring full-size regions per I/O, up to 16 MiB
# with --direct and 4 MiB buffered near a hole (copier/engine.c, copy_run;
# t0057), each region keeping its own claim, hole check and result.  Here:
# a file source whose runs mix data, allocated zeros and holes, over a stale
# target (one read per run, one write per stretch of data, zeros punched),
# direct and buffered; I4 for a run, direct and buffered; and with --direct:
# loop block devices, a source that shrinks while it is copied (runs read
# short and are copied region by region), and the harness writer under the
# shim while the copier is killed.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/online.sh"
cd "$SCRATCH" || exit 1
MIB=1048576 R=65536

# Regions of 64 KiB: D data, Z allocated zeros, - hole; then 12345 bytes
# of data in a last, partial region.  Region 20 holds 32 KiB of data.
layout="DDDZ ZDZD DD-- ---- ---- D--- ---- --DD"
python3 - "$layout" a.src <<'PY'
import os, sys
layout, path = sys.argv[1].replace(" ", ""), sys.argv[2]
R = 65536
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i, k in enumerate(layout):
    if k == "D":
        os.pwrite(fd, os.urandom(R if i != 20 else R // 2), i * R)
    elif k == "Z":
        os.pwrite(fd, bytes(R), i * R)
os.pwrite(fd, os.urandom(12345), len(layout) * R)
os.close(fd)
PY
# layout_copy MODE: sync a.src over a stale target, MODE --direct or
# buffered (runs of up to 4 MiB within 16 MiB of a hole: the same runs
# here, at 64 KiB regions, but at the file's end)
layout_copy() {
	local mode=$1 opt= t=a.tgt.$1 st=st.$1 tr=trace.$1 rc
	[ "$mode" = --direct ] && opt=--direct
	head -c "$(stat -c %s a.src)" /dev/urandom >$t # stale data everywhere
	ok_if "$mode: setup (64 KiB regions)" $VOLMIG setup -s $st --source a.src --target $t --region-size 64k
	if command -v strace >/dev/null; then
		strace -f -qq -e trace=pread64,pwrite64,fallocate -o $tr \
			$VOLMIG_BIN sync -s $st $opt --threads 1 --progress-interval 0 2>sync.err
		rc=$?
	else
		$VOLMIG sync -s $st $opt --threads 1 --progress-interval 0 2>sync.err
		rc=$?
	fi
	ok_if "$mode: sync exits 0 (exit $rc)" test "$rc" -eq 0
	ok_if "$mode: the target is identical, length included" cmp -s a.src $t
	ok_if "$mode: verify exits 0" $VOLMIG verify -s $st
	# the allocated zeros (regions 3, 4, 6) and the holes became holes
	ok_if "$mode: zeros and holes of the source are holes of the target" python3 - "$layout" $t <<'PY'
import os, sys
layout, R = sys.argv[1].replace(" ", ""), 65536
fd = os.open(sys.argv[2], os.O_RDONLY)
for i, k in enumerate(layout):
    if k in "Z-":
        try:
            d = os.lseek(fd, i * R, os.SEEK_DATA)
        except OSError:
            continue
        assert d >= (i + 1) * R, f"region {i} ({k}) has data at {d}"
PY
	if [ ! -f $tr ]; then
		skip_test "$mode: no strace: the I/O sizes of the runs are not checked"
		return
	fi
	# regions 0-9 (DDDZ ZDZD DD) are one run: one read; a write per
	# stretch of data, and the zeros punched
	ok_if "$mode: one read of the 10 regions of data at offset 0" \
		grep -qE "pread64\([0-9]+, .*, $((10 * R)), 0\) = $((10 * R))" $tr
	for w in 0:3 5:1 7:3; do
		ok_if "$mode: one write of ${w#*:} region(s) at region ${w%:*}" grep -qE \
			"pwrite64\([0-9]+, .*, $((${w#*:} * R)), $((${w%:*} * R))\) = $((${w#*:} * R))" $tr
	done
	for z in 3:2 6:1; do
		ok_if "$mode: ${z#*:} region(s) of zeros punched at region ${z%:*}" grep -qE \
			"fallocate\([0-9]+, FALLOC_FL_KEEP_SIZE\|FALLOC_FL_PUNCH_HOLE, $((${z%:*} * R)), $((${z#*:} * R))\)" $tr
	done
	ok_if "$mode: no read of the hole after region 9" \
		eval "! grep -qE 'pread64\([0-9]+, .*, [0-9]+, $((10 * R))\)' $tr"
	# the data ends inside region 20, and inside region 32 (the end)
	ok_if "$mode: region 20 read alone" grep -qE "pread64\([0-9]+, .*, $R, $((20 * R))\)" $tr
	if [ "$mode" = --direct ]; then
		ok_if "$mode: regions 30-31 read in one I/O, apart from the partial region 32" \
			grep -qE "pread64\([0-9]+, .*, $((2 * R)), $((30 * R))\) = $((2 * R))" $tr
	else
		# no hole follows them (the file's end): readahead serves them
		ok_if "$mode: regions 30 and 31 read one by one, and the partial region 32" eval \
			"grep -qE 'pread64\([0-9]+, .*, $R, $((30 * R))\) = $R' $tr &&
			 grep -qE 'pread64\([0-9]+, .*, $R, $((31 * R))\) = $R' $tr"
	fi
}
layout_copy --direct
layout_copy buffered

# A source that shrinks while it is copied: the runs past its new end read
# short, and are copied region by region (the target is cut back).
# At 4 MiB/s a run is a tenth of a second's worth: 6 regions.
make_random b.src 8
short=$((5 * MIB + 555555))
ok_if "setup of an 8 MiB pair" $VOLMIG setup -s st2 --source b.src --target b.tgt --region-size 64k
spawn cpid $VOLMIG sync -s st2 --direct --rate 4M --checkpoint-interval 0.1 --progress-interval 0 2>sync2.err
wait_copier st2 || not_ok "the copier did not start"
copied=$(status_field st2 synced_bytes)
ok_if "a program under the shim shrinks the source to $short bytes (copied so far: $copied)" \
	$VOLMIG exec -s st2 -- truncate -s "$short" b.src
wait "$cpid"
rc=$?
ok_if "sync --direct of the shrinking source exits 0 (exit $rc)" test "$rc" -eq 0
ok_if "the shrink came before the copy's end" test "$copied" -lt "$short"
ok_if "the target equals the shrunk source, length included" cmp -s b.src b.tgt
ok_if "verify exits 0" $VOLMIG verify -s st2

# Loop block devices: the runs and the last, partial region.
if loops_available; then
	make_random c.src 9
	head -c 12288 /dev/urandom >>c.src
	head -c "$(stat -c %s c.src)" /dev/urandom >c.tgt
	if loop_attach csrc c.src && loop_attach ctgt c.tgt; then
		ok_if "setup of $csrc -> $ctgt" $VOLMIG setup -s st3 --source "$csrc" --target "$ctgt"
		ok_if "sync --direct of loop devices exits 0" $VOLMIG sync -s st3 --direct --progress-interval 0
		ok_if "the target device is identical" cmp -s "$csrc" "$ctgt"
		ok_if "verify exits 0" $VOLMIG verify -s st3
	else
		not_ok "attach the loop devices"
	fi
else
	skip_test "loop block devices cannot be made here (need root and the loop driver)"
fi

# I4 for a run: the copier is stopped after its read of the first run
# (crash point copier.source-read.after, stop), holding the claims of its
# 64 regions; a program's write into region 5 waits its 100 ms (I7), then
# goes ahead.  The run's copy must not count region 5 clean: the target
# must end with the program's bytes.  Direct and buffered runs alike.
# Needs the crash-point build.
cb=${VOLMIG_CRASH_BUILD:-$TOP/build/crash}
if [ -x "$cb/volmig" ] && [ -f "$cb/libvolmig.so" ]; then
	make_random e.src 8
	truncate -s 24M e.src # a hole after the data: buffered runs too
	head -c 4096 /dev/urandom >blk
	for mode in --direct buffered; do
		opt=
		[ "$mode" = --direct ] && opt=--direct
		ok_if "$mode: setup of an 8 MiB pair (64 KiB regions)" \
			"$cb/volmig" setup -s st4$mode --source e.src --target e.tgt$mode --region-size 64k
		VOLMIG_CRASH=copier.source-read.after:1:stop spawn spid "$cb/volmig" sync -s st4$mode $opt \
			--threads 1 --progress-interval 0 2>sync4.err
		pid=$(stopped_at copier.source-read.after sync4.err)
		ok_if "$mode: the copier stopped between its read of the run and its writes" test -n "$pid"
		ok_if "$mode: a program writes into region 5 of the run meanwhile" \
			shim_pwrite "$cb/volmig" st4$mode e.src blk $((5 * R + 100))
		[ -n "$pid" ] && kill -CONT "$pid"
		wait "$spid"
		rc=$?
		ok_if "$mode: sync exits 0 (exit $rc)" test "$rc" -eq 0
		ok_if "$mode: the target holds the program's write" cmp -s e.src e.tgt$mode
		ok_if "$mode: verify exits 0" "$cb/volmig" verify -s st4$mode
	done
else
	skip_test "no crash-point build in $cb (make crash-build): the run's claims are not checked"
fi

# The harness writer under the shim while direct runs are copied and the
# copier is killed: every acknowledged write must be on the target.
mkdir -p online
SCRATCH="$SCRATCH/online"
ON_SYNC_ARGS=--direct ON_KILLS=4 ON_WRITER_KILLS=1
make_random "$SCRATCH/src.img" 32
truncate -s 32M "$SCRATCH/tgt.img"
online_writer "$SCRATCH/src.img" "$SCRATCH/tgt.img" 32
done_testing
