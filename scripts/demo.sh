#!/usr/bin/env bash
# A real migration, start to finish: make a source volume (a 1 GiB file with
# 384 MiB of random data and holes) and a target, start copying, SIGKILL the
# copier half-way, show the durable progress, resume (it goes on from its
# last checkpoint, not from the start), verify, and compare byte for byte.
#
#   scripts/demo.sh [BUILD_DIR]      (make demo runs it)
#
# KEEP=1 keeps the demo directory; VOLMIG_DEMO_DIR chooses where it goes.
set -eu
B=${1:-build/default}
top=$(cd "$(dirname "$0")/.." && pwd)
volmig="$top/$B/volmig"
dir=$(mktemp -d "${VOLMIG_DEMO_DIR:-/var/tmp}/volmig-demo.XXXXXX")
copier=
finish() {
	if [ -n "$copier" ] && kill -0 "$copier" 2>/dev/null; then kill -KILL "$copier"; fi
	if [ -n "${KEEP:-}" ]; then echo "demo files kept in $dir"; else rm -rf "$dir"; fi
}
trap finish EXIT
say() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
field() { "$volmig" status -s "$dir/state" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

say "Making a 1 GiB source volume with 384 MiB of random data (and holes)"
truncate -s 1G "$dir/source.img"
for at in 0 256 640; do
	head -c 128M /dev/urandom | dd of="$dir/source.img" bs=1M seek="$at" conv=notrunc status=none
done
ls -ls "$dir/source.img"

say "volmig setup"
"$volmig" setup -s "$dir/state" --source "$dir/source.img" --target "$dir/target.img"

say "volmig sync, limited to 96 MiB/s so you can watch it; killed half-way through the data"
"$volmig" sync -s "$dir/state" --rate 96M --progress-interval 1 &
copier=$!
t0=$(date +%s%N)
while [ "$(field synced_bytes)" -lt $((512 * 1048576)) ]; do
	kill -0 "$copier" 2>/dev/null || break
	# each status waits for the disk: on a busy one it can lag the copy,
	# whose 384 MiB of data take 4 s at this rate, so 2 s is half-way too
	[ $((($(date +%s%N) - t0) / 1000000)) -lt 2000 ] || break
	sleep 0.2
done
kill -KILL "$copier" 2>/dev/null || true
rc=0
wait "$copier" 2>/dev/null || rc=$?
copier=
echo
if [ "$rc" -eq 137 ]; then
	echo "copier killed with SIGKILL at $(($(field synced_bytes) / 1048576)) MiB of 1024"
else
	echo "the copier ended by itself before the kill (exit $rc): there is nothing to resume"
fi

say "volmig status: the progress survived the kill (it is in Berkeley DB)"
"$volmig" status -s "$dir/state"

say "volmig sync again: it resumes from its last checkpoint"
"$volmig" sync -s "$dir/state" --progress-interval 1

say "volmig verify, then cmp"
"$volmig" verify -s "$dir/state"
cmp "$dir/source.img" "$dir/target.img" && echo "cmp: target is byte-identical to source"
ls -ls "$dir/target.img"
echo "(the target stayed sparse: holes were punched, not written)"

say "volmig status --json"
"$volmig" status -s "$dir/state" --json
echo
echo "bytes copied again because of the kill: $(($(field bytes_recopied) / 1048576)) MiB; resumes: $(field resumes)"
