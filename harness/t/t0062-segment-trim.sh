#!/usr/bin/env bash
# A program that runs for the whole migration keeps one dirty-log segment
# (STATE/log/<pid>-<start>.seg) open, and the copier removes a segment only
# once its writer has exited.  While mirrored, the copier confirms a dirty
# region no write began on for a pass, and the next write to it logs it
# again: fio writing 4 KiB blocks at random over 16,384 regions here appends
# about 10,000 records a second.  Before, every one stayed on disk until
# the program exited.  Now the copier punches out the records every checkpoint
# has recorded once 1 MiB more of them is (ingest_trim): the file grows, its
# allocated blocks do not.  Then the copier and fio are killed (SIGKILL,
# both), and a new sync reads the trimmed segment from its durable offset,
# ends synced, removes the segment, and leaves the target equal to the
# source.  u-ingest checks that no record past the durable offset is lost
# to a trim.
. "$(dirname "$0")/lib-test.sh"

command -v fio >/dev/null || { skip_test "fio is not installed"; done_testing; exit 0; }

src="$SCRATCH/src.img" tgt="$SCRATCH/tgt.img" st="$SCRATCH/state"
make_random "$src" 64
# 4 KiB regions, 16,384 of them: random writes keep turning clean ones dirty
ok_if "setup" $VOLMIG setup -s "$st" --source "$src" --target "$tgt" --region-size 4k
spawn cpid $VOLMIG sync -s "$st" --follow --checkpoint-interval 0.05 --progress-interval 0 \
	2>"$SCRATCH/follow.err"
synced=no
for _ in $(seq 400); do
	[ "$(status_field "$st" state)" = synced ] && { synced=yes; break; }
	sleep 0.05
done
ok_if "the --follow copier reaches synced" test "$synced" = yes

# fio, unmodified, under the shim: 8 threads of one process, one segment
spawn fpid $VOLMIG exec -s "$st" -- fio --name=trim --filename="$src" --rw=randwrite --bs=4k \
	--size=64m --ioengine=psync --thread --numjobs=8 --time_based --runtime=300 \
	--output="$SCRATCH/fio.out"
seg="" size=0 alloc=0
# 4 MiB of records: 131,072; bounded at 120 s, about 12 s here
for _ in $(seq 1200); do
	seg=$(find "$st/log" -name '*.seg' 2>/dev/null | head -1)
	if [ -n "$seg" ]; then
		read -r size alloc < <(stat -c '%s %b' "$seg")
		alloc=$((alloc * 512))
		[ "$size" -gt 4194304 ] && break
	fi
	kill -0 "$fpid" 2>/dev/null || break
	sleep 0.1
done
ok_if "fio's segment grew past 4 MiB ($size bytes)" test "$size" -gt 4194304
# kept: the header, under 1 MiB recorded but not yet punched, what was
# appended since the last checkpoint, and the 1 MiB preallocated ahead
ok_if "  of which at most 2.5 MiB is allocated ($alloc bytes)" test "$alloc" -le 2621440
first=$(python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.lseek(fd, 4096, os.SEEK_DATA))' "$seg")
ok_if "  its first records are punched out (data again at $first)" test "$first" -ge 1048576
ok_if "  and fio is still writing" kill -0 "$fpid"

kill -KILL "$cpid"
wait "$cpid" 2>/dev/null
kill -KILL "$fpid"
wait "$fpid" 2>/dev/null
ok_if "a sync after the copier and fio were killed ends synced" \
	$VOLMIG sync -s "$st" --progress-interval 0
ok_if "  the state is synced" test "$(status_field "$st" state)" = synced
left=$(find "$st/log" -name '*.seg' | wc -l)
ok_if "  it read the dead writer's trimmed segment to its end and removed it ($left left)" \
	test "$left" -eq 0
ok_if "  the target is the source" cmp "$src" "$tgt"
ok_if "  volmig verify passes" $VOLMIG verify -s "$st"
done_testing
