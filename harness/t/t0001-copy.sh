#!/usr/bin/env bash
# The copier end to end: several pairs, sparse sources over stale targets,
# odd sizes, --direct, a SIGTERM mid-copy, status --json keys, abort and
# cleanup.
. "$(dirname "$0")/lib-test.sh"
cd "$SCRATCH" || exit 1

# Pair 1: dense random data, size not a multiple of the region size.
head -c $((5 * 1048576 + 12345)) /dev/urandom >a.src
# Pair 2: sparse: 64 MiB with data at 0, 20 MiB and the last byte; its
# target already holds random data everywhere, which must not survive.
truncate -s 64M b.src
head -c 3000000 /dev/urandom | dd of=b.src conv=notrunc status=none
head -c 1048576 /dev/urandom | dd of=b.src bs=1M seek=20 conv=notrunc status=none
printf 'z' | dd of=b.src bs=1 seek=$((64 * 1048576 - 1)) conv=notrunc status=none
head -c $((64 * 1048576)) /dev/urandom >b.tgt

ok_if "setup with two pairs and 64k regions" \
	$VOLMIG setup -s st --source a.src --target a.tgt --source b.src --target b.tgt --region-size 64k
ok_if "a missing target is created with the source's size" \
	test "$(stat -c %s a.tgt)" -eq "$(stat -c %s a.src)"
ok_if "status before sync says setup" test "$(status_field st state)" = setup
ok_if "sync exits 0" $VOLMIG sync -s st --progress-interval 0
ok_if "pair 1 identical" cmp -s a.src a.tgt
ok_if "pair 2 identical (stale target data gone from the holes)" cmp -s b.src b.tgt
alloc=$(stat -c %b b.tgt)
ok_if "the sparse target stays sparse ($((alloc / 2)) KiB allocated of 64 MiB)" test "$alloc" -lt $((16 * 2048))
ok_if "verify exits 0" $VOLMIG verify -s st
json=$($VOLMIG status -s st --json)
ok_if "status --json has every key of DESIGN.md" python3 - "$json" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
for k in ("state", "region_size", "pairs", "bytes_copied", "bytes_recopied", "resumes"):
    assert k in j, k
assert j["state"] == "synced" and j["region_size"] == 65536
assert len(j["pairs"]) == 2
for p in j["pairs"]:
    for k in ("source", "target", "size", "bytes_copied", "dirty_regions"):
        assert k in p, k
    assert p["dirty_regions"] == 0
assert j["pairs"][0]["size"] == 5 * 1048576 + 12345
assert j["bytes_copied"] == sum(p["bytes_copied"] for p in j["pairs"])
PY
ok_if "a second sync of a synced session exits 0 and copies nothing" \
	sh -c "$VOLMIG sync -s st 2>&1 | grep -q 'already synced'"

# A target with a wrong byte in a region recorded clean: verify names it.
printf 'X' | dd of=a.tgt bs=1 seek=777777 conv=notrunc status=none
out=$($VOLMIG verify -s st 2>&1); rc=$?
[ "$rc" -eq 1 ] && ok "verify exits 1 on a difference" || not_ok "verify exits 1 on a difference (got $rc)"
case "$out" in *"a.tgt differs"*"offset 777777"*) ok "verify names the target and offset" ;;
*) not_ok "verify names the target and offset: $out" ;; esac

# --direct, and SIGTERM mid-copy: a checkpoint is made and sync resumes.
make_random c.src 64
ok_if "setup of a 64 MiB pair" $VOLMIG setup -s st2 --source c.src --target c.tgt
spawn pid $VOLMIG sync -s st2 --direct --rate 16M --progress-interval 0
for _ in $(seq 200); do
	[ "$(status_field st2 synced_bytes)" -gt 0 ] && break
	sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 1 ] && ok "sync stopped by SIGTERM exits 1" || not_ok "SIGTERM exit status $rc, want 1"
mid=$(status_field st2 synced_bytes)
[ "$mid" -gt 0 ] && [ "$mid" -lt $((64 * 1048576)) ] && ok "SIGTERM left a checkpoint mid-copy ($mid bytes)" ||
	not_ok "checkpoint after SIGTERM: synced_bytes $mid"
ok_if "--direct sync resumes and finishes" $VOLMIG sync -s st2 --direct --progress-interval 0
ok_if "direct copy identical" cmp -s c.src c.tgt
ok_if "the resume was counted" test "$(status_field st2 resumes)" -eq 1

# Progress lines off a terminal.
make_random d.src 16
$VOLMIG setup -s st3 --source d.src --target d.tgt 2>/dev/null
$VOLMIG sync -s st3 --rate 8M --progress-interval 0.5 2>progress.txt
ok_if "periodic progress lines when stderr is not a terminal" \
	test "$(grep -c 'progress [0-9.]*%' progress.txt)" -ge 2

# The ETA of a sparse source counts its holes as the little they take: 16
# GiB holding 8 MiB in 1 MiB extents every 2 GiB, copied at 4 MiB/s (about
# 2 s), must not be shown as minutes (16 GiB at the byte rate: over an hour).
truncate -s 16G e.src
for i in $(seq 0 7); do
	dd if=/dev/urandom of=e.src bs=1M count=1 seek=$((i * 2048)) conv=notrunc status=none
done
$VOLMIG setup -s st4 --source e.src --target e.tgt 2>/dev/null
$VOLMIG sync -s st4 --rate 4M --progress-interval 0.4 2>progress4.txt
etas=$(sed -n 's/.*progress [0-9.]*% .* ETA \([0-9]*\):\([0-9]*\)$/\1 \2/p' progress4.txt)
note "ETAs (minutes seconds): $(echo $etas)"
ok_if "a sparse source's ETA is seconds, not the byte rate's hours" \
	test -n "$etas" -a "$(echo "$etas" | awk '$1 > 0 || $2 > 30' | wc -l)" -eq 0
rm -rf st4 e.src e.tgt

# abort, cleanup.
ok_if "cleanup refuses a session that is not finished" sh -c "! $VOLMIG cleanup -s st3 2>/dev/null"
ok_if "abort exits 0" $VOLMIG abort -s st3
ok_if "state is aborted" test "$(status_field st3 state)" = aborted
ok_if "sync refuses an aborted session" sh -c "! $VOLMIG sync -s st3 2>/dev/null"
ok_if "cleanup removes the state directory" sh -c "$VOLMIG cleanup -s st3 && ! test -e st3"
ok_if "cleanup leaves source and target" cmp -s d.src d.tgt
done_testing
