#!/usr/bin/env bash
# A buffered sync reads the regions near a hole of a file source (within
# 16 MiB of it: copier/engine.c, NORA_SPAN) without readahead, in runs of up
# to 4 MiB: the page cache then holds the source's data and nothing of its
# holes, which the kernel's readahead would zero-fill page by page, evicting
# other programs' cache to hold them.  Away from holes, readahead keeps the
# disk busy and a region is copied per I/O.  (t0054 checks what each region
# of a run keeps: claim, hole check, result.)
. "$(dirname "$0")/lib-test.sh"
cd "$SCRATCH" || exit 1
MIB=1048576

# sync_traced ST LOG: sync (one thread) under strace if there is one
sync_traced() {
	if command -v strace >/dev/null; then
		strace -f -qq -e trace=pread64,pwrite64 -o "$2" \
			$VOLMIG_BIN sync -s "$1" --threads 1 --progress-interval 0 2>sync.err
	else
		$VOLMIG sync -s "$1" --threads 1 --progress-interval 0 2>sync.err
	fi
}

# A dense 16 MiB source, 1 MiB regions: a region per I/O.
make_random d.src 16
ok_if "setup of a dense source" $VOLMIG setup -s st --source d.src --target d.tgt
sync_traced st dense.trace
ok_if "sync of the dense source exits 0" test $? -eq 0
if [ -f dense.trace ]; then
	ok_if "16 reads of one region (1 MiB)" \
		test "$(grep -cE "pread64\([0-9]+, .*, $MIB, [0-9]+\) = $MIB" dense.trace)" -eq 16
else
	skip_test "no strace: the I/O sizes are not checked"
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
sync_traced st2 sparse.trace
ok_if "sync of the sparse source exits 0" test $? -eq 0
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
if [ -f sparse.trace ]; then
	n=0
	for i in 0 1 2 3 4 5 6 7; do
		grep -qE "pread64\([0-9]+, .*, $((4 * MIB)), $((i * 128 * MIB))\) = $((4 * MIB))" sparse.trace &&
			grep -qE "pwrite64\([0-9]+, .*, $((4 * MIB)), $((i * 128 * MIB))\) = $((4 * MIB))" sparse.trace &&
			n=$((n + 1))
	done
	ok_if "each extent is read and written with one I/O of 4 MiB ($n of 8)" test "$n" -eq 8
else
	skip_test "no strace: the I/O sizes are not checked"
fi
ok_if "the sparse target is identical" cmp -s s.src s.tgt
ok_if "the target stays sparse" test "$(du -B1 s.tgt | cut -f1)" -le $((2 * data))
done_testing
