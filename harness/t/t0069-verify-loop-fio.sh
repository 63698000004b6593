#!/usr/bin/env bash
# volmig verify on loop block devices while fio, unmodified under
# `volmig exec`, writes to the source with libaio and O_DIRECT: first with
# the copy half done and no copier running (fio's regions wait in the dirty
# log), then mirrored.  Every verify passes and compares exactly the regions
# no write named; a changed byte of the target is still found, at its
# offset.  (t0067 does the same on files with the harness writer.)  Skipped,
# saying why, where loop devices cannot be made or fio is missing.
. "$(dirname "$0")/lib-test.sh"

command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; }
if ! loops_available; then
	skip_test "loop block devices cannot be made here (need root and the loop driver)"
	done_testing
fi
mib=1048576 st="$SCRATCH/st"
make_random "$SCRATCH/src.img" 64
truncate -s 64M "$SCRATCH/tgt.img"
loop_attach src "$SCRATCH/src.img" || { not_ok "attach source loop"; done_testing; }
loop_attach tgt "$SCRATCH/tgt.img" || { not_ok "attach target loop"; done_testing; }
note "source $src, target $tgt"
ok_if "setup of a 64 MiB pair of loop devices" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"

# half of the copy, then the copier stops
spawn pid $VOLMIG sync -s "$st" --rate 16M --checkpoint-interval 0.25 --progress-interval 0
for _ in $(seq 400); do
	[ "$(status_field "$st" synced_bytes)" -ge $((24 * mib)) ] && break
	sleep 0.05
done
kill -TERM "$pid"
wait_exit "$pid" 10
cursor=$(($(status_field "$st" synced_bytes) / mib))
ok_if "a partial copy: $cursor of 64 regions recorded" test "$cursor" -ge 24 -a "$cursor" -lt 64

# fio writes regions span/mib regions from off/mib on for secs seconds
fio_start() { # off span secs
	spawn fpid $VOLMIG exec -s "$st" -- fio --name=verify-load --filename="$src" \
		--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1 --time_based \
		--runtime="$3" --offset="$1" --size="$2" --output="$SCRATCH/fio.out"
}
# until status counts n regions named by records in the dirty log: each of
# fio's regions has had its first write
log_names() { # n
	for _ in $(seq 400); do
		[ "$(pair_field "$st" dirty_log_regions)" -ge "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
verifies() { # want what
	local fails=0 counts
	: >"$SCRATCH/verify.err"
	for _ in 1 2 3 4 5; do
		$VOLMIG verify -s "$st" 2>>"$SCRATCH/verify.err" || fails=$((fails + 1))
	done
	counts=$(grep -o 'verified [0-9]* regions' "$SCRATCH/verify.err" | sort -u | paste -sd,)
	ok_if "  5 verifies while fio writes $2 all pass" test "$fails" -eq 0
	ok_if "  each compared the $1 regions no write named ($counts)" \
		test "$counts" = "verified $1 regions"
}
fio_done() {
	local rc
	wait "$fpid"
	rc=$?
	ok_if "  fio ends well (exit $rc)" test "$rc" -eq 0
	note "fio: $(grep -o 'IOPS=[^,]*' "$SCRATCH/fio.out" | head -1)"
}

# a copied region with a changed target byte is found, at its offset
printf 'X' | dd of="$tgt" bs=1 seek=$((2 * mib + 100)) conv=notrunc status=none
out=$($VOLMIG verify -s "$st" 2>&1)
rc=$?
ok_if "a changed target byte in region 2: verify fails (exit $rc)" test "$rc" -eq 1
ok_if "  and names its offset" grep -q "offset $((2 * mib + 100))" <<<"$out"
dd if="$src" of="$tgt" bs=1 skip=$((2 * mib + 100)) seek=$((2 * mib + 100)) count=1 \
	conv=notrunc status=none
ok_if "the byte put back: verify passes" $VOLMIG verify -s "$st"

# copying, no copier: fio writes 4 copied regions (16 to 19)
fio_start $((16 * mib)) $((4 * mib)) 8
ok_if "fio writes 4 copied regions; the dirty log names them" log_names 4
verifies $((cursor - 4)) "copied regions (no copier running)"
fio_done

# mirrored: fio writes 8 regions (40 to 47) of the synced volume
ok_if "sync finishes" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "verify of the synced session compares all 64 regions" \
	grep -q 'verified 64 regions' <<<"$($VOLMIG verify -s "$st" 2>&1)"
fio_start $((40 * mib)) $((8 * mib)) 8
ok_if "fio writes 8 regions, mirrored; the dirty log names them" log_names 8
verifies 56 "the synced volume"
fio_done
ok_if "sync after fio" $VOLMIG sync -s "$st" --progress-interval 0
ok_if "the target device is the source device" cmp "$src" "$tgt"
ok_if "verify passes" $VOLMIG verify -s "$st"
done_testing
