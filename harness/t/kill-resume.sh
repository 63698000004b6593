# kill-resume.sh: the body of the resume-not-restart scenarios (I6), shared
# by t0010 (files) and t0011 (loop block devices).  Source it after
# lib-test.sh, then call:
#
#   kill_resume SOURCE TARGET SIZE_MIB KILLS
#
# It sets up a session, runs `volmig sync` rate-limited and SIGKILLs it at
# KILLS random moments drawn from the printed seed, restarting it each time,
# then lets it finish and checks: the durable cursor never moved back,
# target == source (cmp and volmig verify), bytes_copied == size, every
# restart counted as a resume, and bytes_recopied within the bound of
# kills x (one checkpoint interval's data + one batch of I/Os in flight).

KR_RATE_MIB=${KR_RATE_MIB:-32}
KR_INTERVAL=${KR_INTERVAL:-0.25}
KR_THREADS=${KR_THREADS:-4}
KR_REGION_MIB=1

kill_resume() {
	local src=$1 tgt=$2 size_mib=$3 want_kills=$4
	local st="$SCRATCH/state" kills=0 runs=0 rc pid delay prev=0 cur moved_back=0
	local log="$SCRATCH/sync.log"

	test_seed
	ok_if "setup of $src -> $tgt" $VOLMIG setup -s "$st" --source "$src" --target "$tgt"
	while :; do
		runs=$((runs + 1))
		spawn pid $VOLMIG sync -s "$st" --rate "${KR_RATE_MIB}M" \
			--checkpoint-interval "$KR_INTERVAL" --threads "$KR_THREADS" \
			--progress-interval 0 2>>"$log"
		if [ "$kills" -lt "$want_kills" ]; then
			rand_between 100 350
			delay=$RAND
			sleep_ms "$delay"
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid"
		rc=$?
		if [ "$rc" -eq 137 ]; then
			kills=$((kills + 1))
			cur=$(status_field "$st" synced_bytes)
			[ "$cur" -lt "$prev" ] && moved_back=$((moved_back + 1))
			prev=$cur
			continue
		fi
		break
	done
	note "runs $runs, kills $kills, last exit status $rc"
	[ "$rc" -eq 0 ] && ok "the last sync exits 0" || not_ok "the last sync exits 0 (got $rc)"
	[ "$kills" -ge "$want_kills" ] && ok "killed $kills times mid-copy" ||
		not_ok "killed $kills times mid-copy, want $want_kills (copy finished too soon)"
	[ "$moved_back" -eq 0 ] && ok "durable cursor never moved back across kills" ||
		not_ok "durable cursor moved back $moved_back times"
	ok_if "target byte-identical to source (cmp)" cmp -s "$src" "$tgt"
	ok_if "volmig verify agrees" $VOLMIG verify -s "$st"
	local state copied recopied resumes bound
	state=$(status_field "$st" state)
	copied=$(status_field "$st" bytes_copied)
	recopied=$(status_field "$st" bytes_recopied)
	resumes=$(status_field "$st" resumes)
	bound=$(awk -v k="$kills" -v r="$KR_RATE_MIB" -v i="$KR_INTERVAL" -v t="$KR_THREADS" \
		-v g="$(copy_run_bytes $((KR_REGION_MIB * 1048576)) $((KR_RATE_MIB * 1048576)))" \
		'BEGIN { printf "%.0f", k * (r * i * 1048576 + (t + 1) * g) }')
	note "bytes_copied $copied, bytes_recopied $recopied ($((recopied / (kills > 0 ? kills : 1))) per kill), bound $bound, resumes $resumes"
	[ "$state" = synced ] && ok "state is synced" || not_ok "state is synced (got $state)"
	[ "$copied" -eq $((size_mib * 1048576)) ] && ok "bytes_copied equals the volume size" ||
		not_ok "bytes_copied $copied, want $((size_mib * 1048576))"
	# No "> 0" here: a kill that came when every item begun was recorded
	# redoes nothing (bytes_recopied counts items whose copying began);
	# t0058 checks that a kill after unrecorded copying counts it.
	[ "$recopied" -le "$bound" ] && ok "bytes_recopied $recopied <= $bound" ||
		not_ok "bytes_recopied $recopied exceeds kills x (interval data + batch) = $bound"
	# a restart killed before it recorded its start is not a resume; a
	# recorded one says "resuming at" right after its transaction (unless
	# killed in between)
	local started
	started=$(grep -c "resuming at" "$log")
	[ "$resumes" -ge "$started" ] && [ "$resumes" -le "$kills" ] &&
		[ "$resumes" -ge $((kills / 2)) ] &&
		ok "every restart that got going counted as a resume ($resumes of $kills)" ||
		not_ok "resumes $resumes, want the $started restarts that got going (of $kills)"
}
