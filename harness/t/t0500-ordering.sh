#!/usr/bin/env bash
# The persistence order, read from system-call traces (strace -f):
#   I2  every dirty-log record is durable (fdatasync of its segment) before
#       the application write it announces is issued -- pwrite, pwritev2 and
#       io_submit, group commit (--durability process) and sync;
#   I3  every target write is flushed (fdatasync) before the checkpoint
#       commit that may record it clean.
# Each check is also run on the same trace with the flushes deleted, and
# must then fail: the checker can see a violation.
. "$(dirname "$0")/lib-test.sh"

command -v strace >/dev/null || { skip_test "strace is not installed"; done_testing; }
CHECK="$TOP/harness/trace-check.py"
W="$VOLMIG_BUILD/harness/writer"
S="strace -f -qq -ttt -T -y -s 32"

for dur in process sync; do
	d="$SCRATCH/$dur"
	mkdir -p "$d"
	make_random "$d/src" 16
	truncate -s 16M "$d/tgt"
	$VOLMIG setup -s "$d/st" --source "$d/src" --target "$d/tgt" --region-size 64k \
		--durability "$dur" >/dev/null 2>&1 || { not_ok "setup ($dur)"; continue; }
	# I3 on the copier
	$S -e trace=pwrite64,pwritev,fallocate,fdatasync,fsync -o "$d/sync.tr" \
		$VOLMIG_BIN sync -s "$d/st" --rate 32M --checkpoint-interval 0.25 --progress-interval 0 \
		2>/dev/null
	if python3 "$CHECK" i3 "$d/sync.tr" "$d/tgt" "$d/st" >"$d/i3.out" 2>&1; then
		ok "I3 ($dur): $(head -1 "$d/i3.out"); every target write flushed before the commit after it"
	else
		not_ok "I3 ($dur): $(tail -3 "$d/i3.out" | tr '\n' ' ')"
	fi
	grep -v "fdatasync(.*$d/tgt>" "$d/sync.tr" | grep -v "$d/tgt>) = 0" >"$d/sync-noflush.tr"
	python3 "$CHECK" i3 "$d/sync-noflush.tr" "$d/tgt" "$d/st" >/dev/null 2>&1
	[ $? -eq 1 ] && ok "I3 ($dur): the same trace without the target flushes is caught" ||
		not_ok "I3 ($dur): the checker missed the removed target flushes"

	# I2 on an application under the shim (synced session: every first
	# write to a region turns it dirty and must be logged first)
	$S -e trace=pwrite64,pwritev,pwritev2,fdatasync,io_submit,clone,clone3 -o "$d/app.tr" \
		$VOLMIG_BIN exec -s "$d/st" -- "$W" write --dev "$d/src" --size 16M --procs 2 --threads 2 \
		--engine mix --ack "$d/ack" --count 2000 >/dev/null 2>&1
	if python3 "$CHECK" i2 "$d/app.tr" "$d/st" "$d/src" 65536 >"$d/i2.out" 2>&1; then
		ok "I2 ($dur): $(head -1 "$d/i2.out"); each intent durable before its write"
	else
		not_ok "I2 ($dur): $(tail -3 "$d/i2.out" | tr '\n' ' ')"
	fi
	grep -v "fdatasync(.*\.seg>" "$d/app.tr" | grep -v "seg>) = 0" >"$d/app-noflush.tr"
	python3 "$CHECK" i2 "$d/app-noflush.tr" "$d/st" "$d/src" 65536 >/dev/null 2>&1
	[ $? -eq 1 ] && ok "I2 ($dur): the same trace without the segment flushes is caught" ||
		not_ok "I2 ($dur): the checker missed the removed segment flushes"
	$VOLMIG sync -s "$d/st" --progress-interval 0 >/dev/null 2>&1
	ok_if "($dur) after the traced writes, a sync makes the target equal the source" cmp -s "$d/src" "$d/tgt"
done
done_testing
