#!/usr/bin/env bash
# A buffered sync copies runs of neighbouring regions, up to 4 MiB, per I/O
# (copier/engine.c, run_regions), and reads the regions near a hole of a
# file source without readahead (NORA_SPAN): the page cache then holds the
# source's data and nothing of its holes, which the kernel would otherwise
# zero-fill page by page, evicting other programs' cache to hold them.
# (t0054 checks what each region of a run keeps: claim, hole check, result.)
. "$(dirname "$0")/lib-test.sh"
cd "$SCRATCH" || exit 1
MIB=1048576

# A dense 16 MiB source, 1 MiB regions, one thread: four runs of 4 MiB.
make_random d.src 16
ok_if "setup of a dense source" $VOLMIG setup -s st --source d.src --target d.tgt
if command -v strace >/dev/null; then
	strace -f -qq -e trace=pread64,pwrite64 -o trace.out \
		$VOLMIG_BIN sync -s st --threads 1 --progress-interval 0 2>sync.err
	ok_if "sync exits 0" test $? -eq 0
	for o in 0 4 8 12; do
		ok_if "one read and one write of 4 MiB at $o MiB" eval \
			"grep -qE 'pread64\([0-9]+, .*, $((4 * MIB)), $((o * MIB))\) = $((4 * MIB))' trace.out &&
			 grep -qE 'pwrite64\([0-9]+, .*, $((4 * MIB)), $((o * MIB))\) = $((4 * MIB))' trace.out"
	done
	ok_if "no read of a single region" \
		eval "! grep -qE 'pread64\([0-9]+, .*, $MIB, [0-9]+\)' trace.out"
else
	$VOLMIG sync -s st --threads 1 --progress-interval 0 2>sync.err
	ok_if "sync exits 0" test $? -eq 0
	skip_test "no strace: the I/O sizes of the runs are not checked"
fi
ok_if "the dense target is identical" cmp -s d.src d.tgt
ok_if "verify exits 0" $VOLMIG verify -s st

# A sparse 1 GiB source: 8 extents of 4 MiB of data, one every 128 MiB.
truncate -s 1G s.src
python3 - s.src <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(8):
    os.pwrite(fd, os.urandom(4 << 20), i * (128 << 20))
os.fsync(fd)
os.close(fd)
PY
data=$((32 * MIB))
ok_if "setup of a sparse source" $VOLMIG setup -s st2 --source s.src --target s.tgt
dd if=s.src iflag=nocache count=0 status=none # POSIX_FADV_DONTNEED: drop its page cache
ok_if "sync of the sparse source exits 0" $VOLMIG sync -s st2 --progress-interval 0
# (before anything else reads the source: cmp reads its holes too)
fs=$(stat -f -c %T .)
if ! command -v fincore >/dev/null; then
	skip_test "no fincore (util-linux-extra): the source's page cache is not checked"
elif [ "$fs" = tmpfs ]; then
	skip_test "$SCRATCH is on tmpfs, whose holes take no page cache: not checked"
else
	cached=$(fincore -b -n -o RES s.src)
	note "the source's page cache after the copy: $cached bytes"
	# old copiers: each extent's readahead ran on into the hole (on a
	# disk with 8 MiB windows, 1.6 to 3.7 times the data over all)
	ok_if "the source's page cache holds its data and no more ($cached <= $data + 256 KiB)" \
		test "$cached" -le $((data + 262144))
fi
ok_if "the sparse target is identical" cmp -s s.src s.tgt
ok_if "the target stays sparse" test "$(du -B1 s.tgt | cut -f1)" -le $((2 * data))
done_testing
