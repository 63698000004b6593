#!/usr/bin/env bash
# bench/run.sh: volmig's benchmarks against dd, qemu-img and fio.
#
#   bench/run.sh [--smoke] [--build DIR] [--out DIR] [--data DIR]
#                [--only LIST] [--reps N] [--keep] [--seed N]
#                [--page-reporting off|keep]
#
# Runs each benchmark with its baseline in the same run, alternating with
# volmig, several times; bench/report.py then writes medians and ratios:
#   OUT/raw.jsonl      one line per measurement, written as the runs go
#   OUT/results.jsonl  the same lines, then one summary line per figure
#   OUT/table.txt      the table for people
#   OUT/*.png          plots (gnuplot)
# What each benchmark does is in bench/README.md.  Targets are reported,
# never enforced: the exit status is 0 unless a benchmark could not run.
# --smoke: small sizes, a couple of minutes; the figures are recorded but
# not judged against the targets.
#
#   --build DIR   where volmig, libvolmig.so and bench/ programs are
#                 (default build/default)
#   --out DIR     results (default build/bench; build/bench/smoke with --smoke)
#   --data DIR    scratch volumes (default a new directory under /var/tmp;
#                 needs about 12 GiB free for the full set)
#   --only LIST   comma-separated subset of: copy,threads,shim,firstwrite,
#                 resume,converge,memory,cutover
#   --reps N      repetitions of each alternated measurement
#   --keep        keep the scratch directory
#   --seed N      seed of the kill times (default 1)
#   --page-reporting off|keep
#                 a VM's free page reporting (it hands freed memory back to
#                 its host, and the first copy to touch it again pays host
#                 faults): off for the run, as root, and restored at the
#                 end (default off); keep leaves it as it is
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
. "$HERE/lib.sh"

MODE=full
BUILD=$TOP/build/default
OUT=
DATA=
ONLY=copy,threads,shim,firstwrite,resume,converge,memory,cutover
REPS=
KEEP=0
SEED=1
PAGE_REPORTING=off

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case $1 in
	--smoke) MODE=smoke ;;
	--build) BUILD=$2; shift ;;
	--out) OUT=$2; shift ;;
	--data) DATA=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--keep) KEEP=1 ;;
	--seed) SEED=$2; shift ;;
	--page-reporting)
		case $2 in off | keep) PAGE_REPORTING=$2 ;; *) usage >&2; exit 2 ;; esac
		shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

# ---- sizes -------------------------------------------------------------------
# Each may be set in the environment (sizes take k/M/G/T suffixes).
if [ $MODE = smoke ]; then
	: "${OUT:=$TOP/build/bench/smoke}" "${REPS:=3}"
	: "${COPY_SIZE:=256M}" "${SPARSE_SIZE:=64G}" "${SPARSE_DATA:=64M}"
	: "${THREADS_SWEEP:=}"
	: "${SHIM_SIZE:=128M}" "${SHIM_RUNTIME:=1}" "${SHIM_RAMP:=0.2}" "${SHIM_REPS:=2}" "${SHIM_WARM:=1}"
	: "${SHIM_CASES:=randwrite-psync-1 randwrite-libaio-32 randread-psync-1}"
	: "${SHIM_STATES:=copying}"
	: "${SHIM_INSN_IOS:=1000 3000}" "${SHIM_INSN_CASES:=randwrite-psync-1 randwrite-libaio-32}"
	: "${COPY_REPS:=2}"
	: "${FW_SIZE:=16G}" "${FW_N1:=128}" "${FW_N16:=16}" "${FW_REPS:=2}"
	: "${RESUME_DENSE:=512M}" "${RESUME_SPARSE:=64G}" "${RESUME_SPARSE_DATA:=128M}" "${KILLS:=1}"
	: "${CONV_SIZE:=256M}" "${CONV_TIMEOUT:=8}" "${CONV_CASES:=none random-0.001}"
	: "${MEM_SIZES:=1G 1T}"
	: "${CUT_SIZE:=128M}" "${CUT_REPS:=1}" "${CUT_RUNTIME:=3}"
else
	: "${OUT:=$TOP/build/bench}" "${REPS:=5}"
	: "${COPY_SIZE:=2G}" "${SPARSE_SIZE:=1T}" "${SPARSE_DATA:=1G}"
	: "${THREADS_SWEEP:=1 2 4 8 16}"
	: "${SHIM_SIZE:=256M}" "${SHIM_RUNTIME:=3}" "${SHIM_RAMP:=0.5}" "${SHIM_REPS:=$REPS}" "${SHIM_WARM:=2}"
	: "${SHIM_CASES:=randwrite-psync-1 randwrite-psync-4 randwrite-libaio-32 randread-psync-1 randread-psync-4 randread-libaio-32}"
	: "${SHIM_STATES:=setup copying synced copier-rate copier-full}"
	: "${SHIM_INSN_IOS:=10000 30000}"
	: "${FW_SIZE:=64G}" "${FW_N1:=1024}" "${FW_N16:=128}" "${FW_REPS:=$REPS}"
	: "${RESUME_DENSE:=4G}" "${RESUME_SPARSE:=1T}" "${RESUME_SPARSE_DATA:=1G}" "${KILLS:=3}"
	: "${CONV_SIZE:=1G}" "${CONV_TIMEOUT:=60}"
	: "${CONV_CASES:=none random-0.001 random-0.01 random-0.1 random-0.5 hotspot-0.001 hotspot-0.5}"
	: "${MEM_SIZES:=1G 1T 4T}"
	: "${CUT_SIZE:=256M}" "${CUT_REPS:=3}" "${CUT_RUNTIME:=5}"
fi
: "${SHIM_INSN_CASES:=randwrite-psync-1 randwrite-libaio-32 randread-psync-1}" "${COPY_REPS:=$REPS}"
: "${RESUME_INTERVALS:=0.25 1 5}"

for f in volmig libvolmig.so bench/firstwrite bench/iowatch; do
	[ -f "$BUILD/$f" ] || { log "missing $BUILD/$f: run make bench"; exit 1; }
done
for t in fio qemu-img dd python3; do
	command -v $t >/dev/null || { log "missing $t: run scripts/install-deps.sh"; exit 1; }
done

mkdir -p "$OUT"
RAW=$OUT/raw.jsonl
: >"$RAW"
rm -f "$OUT"/*.png "$OUT"/plot-*.dat
if [ -z "$DATA" ]; then
	DATA=$(mktemp -d /var/tmp/volmig-bench.XXXXXX) || exit 1
else
	mkdir -p "$DATA" || exit 1
fi
trap 'cleanup_all; page_reporting_restore' EXIT
trap 'exit 130' INT TERM
RANDOM=$SEED
[ "$PAGE_REPORTING" = off ] && page_reporting_off

# Run copies of the programs, so that a rebuild during the run (make in the
# same tree) cannot change what is measured half-way.  volmig exec finds the
# shim next to the volmig binary.
mkdir -p "$DATA/bin"
cp "$BUILD/volmig" "$BUILD/libvolmig.so" "$BUILD/bench/firstwrite" "$BUILD/bench/iowatch" \
	"$BUILD/bench/libnoop.so" "$DATA/bin/" || exit 1
VOLMIG=$DATA/bin/volmig
NOOP_PRELOAD=$DATA/bin/libnoop.so
FIRSTWRITE=$DATA/bin/firstwrite
IOWATCH=$DATA/bin/iowatch

want() { [[ ",$ONLY," == *",$1,"* ]]; }

T_START=$(now)
emit bench=env kernel="$(uname -r)" cpus="$(nproc)" \
	mem_kib="$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
	fs="$(df -T "$DATA" | awk 'NR == 2 {print $2}')" data_dir="$DATA" \
	fio="$(fio --version)" qemu_img="$(qemu-img --version | head -1)" \
	dd="$(dd --version | head -1)" \
	readahead_kib="$(readahead_kib "$DATA")" \
	page_reporting_order="$(cat "$PR_PARAM" 2>/dev/null || echo none)" page_reporting_order_was="$PR_SAVED" \
	volmig_rev~="$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)" \
	volmig_sha256~="$(sha256sum "$VOLMIG" | cut -c1-16)" shim_sha256~="$(sha256sum "$DATA/bin/libvolmig.so" | cut -c1-16)" \
	reps="$REPS" seed="$SEED"
avail=$(df -B1 --output=avail "$DATA" | tail -1)
log "mode $MODE, scratch in $DATA ($((avail >> 30)) GiB free), results in $OUT"

# ---- 1. copy throughput ----------------------------------------------------
# copy_once TOOL MODE SRC SIZE TGT [VOLMIG_ARGS...]: one timed copy from a
# cold cache to a fresh sparse target.  Sets SECS (total) and SECS_FLUSH
# (the trailing flush of qemu-img, included in SECS).
copy_once() {
	local tool=$1 io=$2 src=$3 size=$4 tgt=$5 st=$DATA/copy.state t0 t1 t2 rc
	shift 5
	rm -rf "$st"
	fresh_target "$tgt" "$size"
	drop_caches
	SECS_FLUSH=0
	t0=$(now)
	case $tool in
	volmig)
		"$VOLMIG" setup -s "$st" --source "$src" --target "$tgt" 2>>"$DATA/copy.log" &&
			"$VOLMIG" sync -s "$st" --progress-interval 0 ${io/buffered/} "$@" 2>>"$DATA/copy.log"
		rc=$?
		t1=$(now)
		;;
	dd)
		if [ "$io" = --direct ]; then
			dd if="$src" of="$tgt" bs=1M conv=fdatasync,notrunc iflag=direct oflag=direct status=none
		else
			dd if="$src" of="$tgt" bs=1M conv=fdatasync,notrunc status=none
		fi
		rc=$?
		t1=$(now)
		;;
	qemu-img)
		if [ "$io" = --direct ]; then
			qemu-img convert -n -f raw -O raw -t none -T none "$src" "$tgt"
		else
			qemu-img convert -n -f raw -O raw "$src" "$tgt"
		fi
		rc=$?
		t2=$(now)
		# qemu-img's default cache mode for the target never flushes: make
		# its copy durable too, as dd's fdatasync and volmig's checkpoints do
		sync -d "$tgt"
		t1=$(now)
		SECS_FLUSH=$(calc "$t1 - $t2")
		;;
	esac
	SECS=$(calc "$t1 - $t0")
	return $rc
}

bench_copy() {
	local size src sparse tgt rep io tools i tool check k mib
	size=$(bytes $COPY_SIZE)
	src=$DATA/copy.src
	tgt=$DATA/copy.tgt
	log "copy: making a $COPY_SIZE dense source"
	make_dense "$src" "$size"
	# a warm-up copy, not reported: the first copy after the source was
	# made took up to twice as long, whichever tool made it (bench/README)
	copy_once dd buffered "$src" "$size" "$tgt"
	log "copy: warm-up (dd, not reported): $SECS s"
	tools=(volmig dd qemu-img)
	for ((rep = 1; rep <= COPY_REPS; rep++)); do
		for io in buffered --direct; do
			for ((i = 0; i < 3; i++)); do
				# alternate: each repetition starts with the next tool
				tool=${tools[$(((i + rep - 1) % 3))]}
				check=skipped
				if ! copy_once $tool $io "$src" "$size" "$tgt"; then
					log "copy: $tool $io failed"
					check=FAILED
				elif [ $rep = 1 ]; then
					cmp -s "$src" "$tgt" && check=ok || check=DIFFERS
				fi
				mib=$(calc "$size / 1048576 / $SECS")
				emit bench=copy case="dense-${io#--}" tool=$tool rep=$rep bytes=$size \
					seconds=$SECS flush_seconds=$SECS_FLUSH mib_s=$mib check=$check
				log "copy dense-${io#--} $tool rep $rep: $SECS s ($mib MiB/s, $check)"
			done
		done
	done
	# the fixed cost of each tool: a 1 MiB copy (volmig: setup, the state
	# store, the control block, the final checkpoint)
	head -c 1048576 "$src" >"$DATA/tiny.src"
	for ((rep = 1; rep <= COPY_REPS; rep++)); do
		for ((i = 0; i < 3; i++)); do
			tool=${tools[$(((i + rep - 1) % 3))]}
			check=skipped
			if ! copy_once $tool buffered "$DATA/tiny.src" 1048576 "$tgt"; then
				log "copy: $tool tiny failed"
				check=FAILED
			elif [ $rep = 1 ]; then
				cmp -s "$DATA/tiny.src" "$tgt" && check=ok || check=DIFFERS
			fi
			emit bench=copy case=tiny tool=$tool rep=$rep bytes=1048576 \
				seconds=$SECS flush_seconds=$SECS_FLUSH mib_s="$(calc "1 / $SECS")" check=$check
			log "copy tiny $tool rep $rep: $SECS s ($check)"
		done
	done
	rm -f "$DATA/tiny.src"
	if want threads; then
		for ((rep = 1; rep <= (REPS < 3 ? REPS : 3); rep++)); do
			for k in $THREADS_SWEEP; do
				copy_once volmig buffered "$src" "$size" "$tgt" --threads $k
				mib=$(calc "$size / 1048576 / $SECS")
				emit bench=threads case=dense-buffered tool=volmig threads=$k rep=$rep \
					bytes=$size seconds=$SECS mib_s=$mib
				log "copy --threads $k rep $rep: $SECS s ($mib MiB/s)"
			done
		done
	fi
	rm -f "$src" "$tgt"

	log "copy: making a $SPARSE_SIZE sparse source with $SPARSE_DATA of data"
	sparse=$DATA/sparse.src
	make_sparse "$sparse" "$(bytes $SPARSE_SIZE)" "$(bytes $SPARSE_DATA)"
	tools=(volmig qemu-img)
	for ((rep = 1; rep <= COPY_REPS; rep++)); do
		for ((i = 0; i < 2; i++)); do
			tool=${tools[$(((i + rep - 1) % 2))]}
			check=skipped
			if ! copy_once $tool buffered "$sparse" "$(bytes $SPARSE_SIZE)" "$tgt"; then
				log "copy: $tool sparse failed"
				check=FAILED
			elif [ $rep = 1 ]; then
				# the data extents must be there, and the target must stay sparse
				check=ok
				[ "$(du -B1 "$tgt" | cut -f1)" -le $(($(bytes $SPARSE_DATA) * 2)) ] || check=NOT-SPARSE
				for k in 0 $(($(bytes $SPARSE_DATA) / 4194304 - 1)); do
					local step=$(((($(bytes $SPARSE_SIZE) >> 22)) / ($(bytes $SPARSE_DATA) >> 22)))
					cmp -s -i $((k * step * 4194304)):$((k * step * 4194304)) -n 4194304 "$sparse" "$tgt" || check=DIFFERS
				done
			fi
			mib=$(calc "$(bytes $SPARSE_DATA) / 1048576 / $SECS")
			emit bench=copy case=sparse tool=$tool rep=$rep bytes=$(bytes $SPARSE_SIZE) \
				data_bytes=$(bytes $SPARSE_DATA) seconds=$SECS flush_seconds=$SECS_FLUSH \
				mib_s=$mib check=$check
			log "copy sparse $tool rep $rep: $SECS s ($mib MiB/s of data, $check)"
		done
	done
	rm -f "$tgt"
	rm -rf "$DATA/copy.state"
}

# ---- 2. shim overhead --------------------------------------------------------
# fio_args CASE FILE SIZE RUNTIME: a fio command line for a case named
# RW-ENGINE-N (N: numjobs for psync, iodepth for libaio, which runs direct).
fio_args() {
	local c=$1 rw eng n
	IFS=- read -r rw eng n <<<"$c"
	FIO=(fio --name=bench --filename="$2" --size="$3" --bs=4k --rw=$rw --ioengine=$eng
		--group_reporting --time_based --runtime="$4" --ramp_time=$SHIM_RAMP
		--norandommap --fallocate=none --invalidate=0 --output-format=json)
	if [ "$eng" = libaio ]; then
		FIO+=(--iodepth=$n --direct=1 --numjobs=1)
	else
		FIO+=(--numjobs=$n)
	fi
}

# fio_iops JSONFILE: read+write IOPS of a fio run.
fio_iops() {
	jget "$1" 'round(sum(j["read"]["iops"] + j["write"]["iops"] for j in d["jobs"]), 1)'
}

# fio_cpu JSONFILE: CPU time (user + system) of the fio jobs per I/O, in
# microseconds.  Less sensitive than IOPS to other load on the machine.
fio_cpu() {
	jget "$1" 'round(sum((j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] * 1000 for j in d["jobs"]) / max(1, sum(j["read"]["total_ios"] + j["write"]["total_ios"] for j in d["jobs"])), 3)'
}

# Start a process under the shim that writes once and stays attached to the
# session's control block, so the block (and the dirty bits in it) outlives
# each fio run.  Sets HOLDER.
start_holder() {
	local st=$1 src=$2
	rm -f "$DATA/holder.out"
	bg_start HOLDER "$VOLMIG" exec -s "$st" -- "$FIRSTWRITE" --count 1 --hold "$src" >"$DATA/holder.out"
	wait_file "$DATA/holder.out" 10 || { log "shim: holder did not start"; return 1; }
	until grep -q ready "$DATA/holder.out"; do sleep 0.01; done
}

# shim_prepare STATE: a session on $SHIM_SRC in the named benchmark state.
#   setup         set up, no copier run yet (the block setup built)
#   copying       copier killed mid-copy; no copier runs during the runs
#   synced        copy finished; no copier runs (nothing is mirrored yet)
#   copier-rate   copier running with --rate (a quarter of the volume a second)
#   copier-full   copier running at full speed
# Sets COPIER (pid or empty).
shim_prepare() {
	local st=$DATA/shim.state state=$1 pid
	COPIER=
	HOLDER=
	rm -rf "$st" "$SHIM_TGT"
	"$VOLMIG" setup -s "$st" --source "$SHIM_SRC" --target "$SHIM_TGT" 2>>"$DATA/shim.log" || return 1
	case $state in
	setup)
		start_holder "$st" "$SHIM_SRC" || return 1
		;;
	copying)
		bg_start pid "$VOLMIG" sync -s "$st" --rate $(($(bytes $SHIM_SIZE) / 4)) --progress-interval 0 2>>"$DATA/shim.log"
		sleep 1.5
		bg_stop "$pid" KILL
		start_holder "$st" "$SHIM_SRC" || return 1
		;;
	synced)
		"$VOLMIG" sync -s "$st" --progress-interval 0 2>>"$DATA/shim.log" || return 1
		start_holder "$st" "$SHIM_SRC" || return 1
		;;
	copier-rate)
		bg_start COPIER "$VOLMIG" sync -s "$st" --rate $(($(bytes $SHIM_SIZE) / 4)) --progress-interval 0 2>>"$DATA/shim.log"
		wait_file "$st/ctl" 10
		;;
	copier-full)
		bg_start COPIER "$VOLMIG" sync -s "$st" --progress-interval 0 2>>"$DATA/shim.log"
		wait_file "$st/ctl" 10
		;;
	esac
	SHIM_STATE_DESC="$state: $(status_get "$st" 'd["state"]') at $(status_get "$st" '100 * d["pairs"][0]["cursor_regions"] // d["pairs"][0]["regions"]')% of the bulk copy"
}

bench_shim() {
	local st=$DATA/shim.state state c rep side i iops recs0 recs1 out cases sides
	SHIM_SRC=$DATA/shim.src
	SHIM_TGT=$DATA/shim.tgt
	make_dense "$SHIM_SRC" "$(bytes $SHIM_SIZE)"
	for state in $SHIM_STATES; do
		shim_prepare $state || { log "shim: cannot prepare state $state"; continue; }
		log "shim: $SHIM_STATE_DESC"
		# first pass under the shim: every region it will write turns dirty
		fio_args randwrite-psync-1 "$SHIM_SRC" $SHIM_SIZE $SHIM_WARM
		read -r recs0 _ < <(log_records "$st")
		"$VOLMIG" exec -s "$st" -- "${FIO[@]}" >"$DATA/fio.json" 2>>"$DATA/shim.log"
		read -r recs1 _ < <(log_records "$st")
		emit bench=shim kind=warmup state=$state log_records=$((recs1 - recs0)) \
			regions=$(($(bytes $SHIM_SIZE) >> 20)) note="$SHIM_STATE_DESC"
		cases=$SHIM_CASES
		case $state in
		synced) cases='randwrite-psync-1 randwrite-libaio-32 randread-psync-1' ;;
		setup) cases='randwrite-psync-1 randwrite-libaio-32' ;;
		copier-*) cases='randwrite-psync-1 randread-psync-1' ;;
		esac
		[ $MODE = smoke ] && cases=$SHIM_CASES
		# in the copying state a third side, fio under a preload that
		# only passes the calls on (bench/noop.c): the floor any
		# preload costs, measured in the same rotation
		sides=(base shim)
		[ $state = copying ] && sides=(base shim noop)
		for c in $cases; do
			for ((rep = 1; rep <= SHIM_REPS; rep++)); do
				for ((i = 0; i < ${#sides[@]}; i++)); do
					# rotate which side goes first
					side=${sides[(rep + i) % ${#sides[@]}]}
					fio_args $c "$SHIM_SRC" $SHIM_SIZE $SHIM_RUNTIME
					sync
					# buffered cases run from the page cache (direct writes of
					# an earlier case evict it)
					[[ $c == *libaio* ]] || cat "$SHIM_SRC" >/dev/null
					read -r recs0 _ < <(log_records "$st")
					if [ $side = shim ]; then
						"$VOLMIG" exec -s "$st" -- "${FIO[@]}" >"$DATA/fio.json" 2>>"$DATA/shim.log"
					elif [ $side = noop ]; then
						LD_PRELOAD=$NOOP_PRELOAD "${FIO[@]}" >"$DATA/fio.json" 2>>"$DATA/shim.log"
					else
						"${FIO[@]}" >"$DATA/fio.json" 2>>"$DATA/shim.log"
					fi
					read -r recs1 _ < <(log_records "$st")
					iops=$(fio_iops "$DATA/fio.json")
					emit bench=shim state=$state case=$c side=$side rep=$rep iops=$iops \
						cpu_us_per_io="$(fio_cpu "$DATA/fio.json")" \
						p99_us:="$(jget "$DATA/fio.json" 'round(max(j[k]["clat_ns"].get("percentile", {}).get("99.000000", 0) for j in d["jobs"] for k in ("read", "write"))/1000, 1)')" \
						log_records=$((recs1 - recs0))
					log "shim $state $c $side rep $rep: $iops IOPS"
				done
			done
		done
		[ $state = copying ] && shim_insn "$st"
		bg_stop "$COPIER" TERM
		bg_stop "$HOLDER" TERM
	done
	rm -rf "$st" "$SHIM_SRC" "$SHIM_TGT"
}

# shim_insn ST: the shim's own cost in instructions per I/O, counted by
# callgrind: fio (one process, --thread) with and without the shim at two
# I/O counts; the difference of the counts over the difference of the I/Os
# is the cost of one I/O, fio's start-up cancelled out.  User space only
# (the kernel's share is not counted).  It moves by a few percent between
# runs (fio's own work follows I/O timing), where IOPS on a shared virtual
# disk move by ten or more: a change in the shim's write path shows.
shim_insn() {
	local st=$1 c side n count a
	if ! command -v valgrind >/dev/null; then
		log "shim: valgrind missing, no instruction counts"
		return 0
	fi
	for c in $SHIM_INSN_CASES; do
		for side in base shim; do
			for n in $SHIM_INSN_IOS; do
				fio_args $c "$SHIM_SRC" $SHIM_SIZE 1
				local cmd=()
				for a in "${FIO[@]}"; do
					case $a in
					--time_based | --runtime=* | --ramp_time=* | --output-format=*) ;;
					*) cmd+=("$a") ;;
					esac
				done
				cmd=(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${cmd[@]}"
					--thread --number_ios="$n" --output-format=terse)
				[[ $c == *libaio* ]] || cat "$SHIM_SRC" >/dev/null
				if [ $side = shim ]; then
					"$VOLMIG" exec -s "$st" -- "${cmd[@]}" >/dev/null 2>"$DATA/callgrind.err"
				else
					"${cmd[@]}" >/dev/null 2>"$DATA/callgrind.err"
				fi
				count=$(sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$DATA/callgrind.err")
				if [ -z "$count" ]; then
					log "shim insn $c $side $n: no count (see callgrind.err)"
					cat "$DATA/callgrind.err" >>"$DATA/shim.log"
					continue
				fi
				emit bench=shim-insn case=$c side=$side ios=$n instructions=$count
				log "shim insn $c $side: $count instructions for $n I/Os"
			done
		done
	done
}

# ---- 3. first-write latency --------------------------------------------------
bench_firstwrite() {
	local dur src st threads n rep i side out recs0 recs1 regs0 regs1 lat
	for dur in process sync; do
		src=$DATA/fw-$dur.src
		st=$DATA/fw-$dur.state
		rm -rf "$st" "$src.tgt"
		truncate -s "$FW_SIZE" "$src"
		"$VOLMIG" setup -s "$st" --source "$src" --target "$src.tgt" --durability $dur 2>>"$DATA/fw.log" &&
			"$VOLMIG" sync -s "$st" --progress-interval 0 2>>"$DATA/fw.log" || { log "firstwrite: setup failed"; return 1; }
		# allocate the blocks first: every later run overwrites cached pages
		"$FIRSTWRITE" --threads 16 --count $FW_N16 "$src" >/dev/null
		"$FIRSTWRITE" --threads 1 --count $FW_N1 "$src" >/dev/null
	done
	for ((rep = 1; rep <= FW_REPS; rep++)); do
		for dur in process sync; do
			src=$DATA/fw-$dur.src
			st=$DATA/fw-$dur.state
			for threads in 1 16; do
				n=$FW_N1
				[ $threads = 16 ] && n=$FW_N16
				for ((i = 0; i < 2; i++)); do
					if (((rep + i) % 2)); then side=shim; else side=base; fi
					lat=$DATA/lat-$side-$dur-$threads.txt
					sync
					read -r recs0 regs0 < <(log_records "$st")
					# a new process under the shim finds itself alone and
					# resets the control block: every region is clean again
					if [ $side = shim ]; then
						out=$("$VOLMIG" exec -s "$st" -- "$FIRSTWRITE" --threads $threads --count $n --lat "$lat" "$src")
					else
						out=$("$FIRSTWRITE" --threads $threads --count $n --lat "$lat" "$src")
					fi
					read -r recs1 regs1 < <(log_records "$st")
					emit bench=firstwrite durability=$dur threads=$threads side=$side rep=$rep \
						result:="$out" log_records=$((recs1 - recs0)) log_regions=$((regs1 - regs0))
					log "firstwrite $dur x$threads $side rep $rep: $out, $((recs1 - recs0)) records"
					[ $rep = $FW_REPS ] && cp "$lat" "$OUT/plot-lat-$side-$dur-$threads.dat"
				done
			done
		done
	done
	rm -rf "$DATA"/fw-*
}

# ---- 4. crash-resume cost ----------------------------------------------------
# interval_bytes SAMPLES IV: the most bytes written in a stretch of one
# interval, from iowatch's samples (time, rchar, wchar): for each sample, up
# to the first sample IV or more later (so a stretch is at most one sampling
# period longer than IV); everything, if the run lasted less.  I6 bounds a
# kill's loss by one interval of copying, at whatever rate that copier ran.
interval_bytes() {
	awk -v iv="$2" '{ t[NR] = $1; w[NR] = $3 }
		END {
			best = NR >= 2 ? w[NR] - w[1] : 0
			if (NR >= 2 && t[NR] - t[1] >= iv) {
				best = 0
				for (i = 1; i <= NR; i++)
					for (j = i + 1; j <= NR; j++)
						if (t[j] - t[i] >= iv) {
							if (w[j] - w[i] > best) best = w[j] - w[i]
							break
						}
			}
			printf "%.0f\n", best
		}' "$1"
}

# resume_case VOL INTERVAL SRC SIZE DATA_BYTES REF_SECONDS
resume_case() {
	local vol=$1 iv=$2 src=$3 size=$4 data=$5 ref=$6 st=$DATA/resume.state tgt=$DATA/resume.tgt
	local j=0 kills=0 wpid cpid ppid probe t0 tk first code wchar=0 w recopied resumes ev
	ev=$OUT/plot-resume-$vol-$iv.events
	: >"$ev"
	: >"$OUT/plot-resume-$vol-$iv.samples"
	rm -rf "$st" "$DATA"/resume-run.* "$DATA/resume.probe"
	fresh_target "$tgt" "$size"
	"$VOLMIG" setup -s "$st" --source "$src" --target "$tgt" 2>>"$DATA/resume.log" || return 1
	drop_caches
	while :; do
		rm -f "$DATA/resume.pid" "$DATA/resume-probe.json"
		# a restart also starts a 4 KiB durable write (fdatasync) on the
		# target's file system: the time any program waits for its first
		# flush after the kill, the baseline of the restart's time
		[ $j -gt 0 ] && bg_start ppid "$IOWATCH" --out "$DATA/resume-probe.json" -- \
			dd if=/dev/zero of="$DATA/resume.probe" bs=4k count=1 conv=fdatasync status=none
		bg_start wpid "$IOWATCH" --modify "$tgt" --samples "$DATA/resume-run.$j.samples" \
			--interval 0.02 --pidfile "$DATA/resume.pid" --out "$DATA/resume-run.$j.json" -- \
			"$VOLMIG" sync -s "$st" --checkpoint-interval $iv --progress-interval 0
		wait_file "$DATA/resume.pid" 10
		cpid=$(cat "$DATA/resume.pid")
		bg_track "$cpid"
		t0=$(now)
		if [ $kills -lt $KILLS ]; then
			# a random moment: up to two intervals, and within the first
			# half of a whole copy, so that kills land mid-copy
			tk=$(calc "0.05 + ($RANDOM / 32768) * (2 * $iv < 0.5 * $ref ? 2 * $iv : 0.5 * $ref)")
			while alive "$wpid" && [ "$(calc "$(now) - $t0 < $tk")" = 1.000000 ]; do
				sleep 0.01
			done
			if alive "$cpid"; then
				kill -KILL "$cpid"
				echo "$(now) kill" >>"$ev"
				kills=$((kills + 1))
			fi
		fi
		wait "$wpid" 2>/dev/null
		probe=null
		if [ $j -gt 0 ]; then
			wait "$ppid" 2>/dev/null
			probe=$(jget "$DATA/resume-probe.json" 'd["exit_ms"]')
		fi
		echo "$(jget "$DATA/resume-run.$j.json" 'd["start"]') start" >>"$ev"
		code=$(jget "$DATA/resume-run.$j.json" 'd.get("exit_code", -1)')
		first=$(jget "$DATA/resume-run.$j.json" 'd["first_modify_ms"]')
		w=$(awk '{ v = $3 } END { print v == "" ? 0 : v }' "$DATA/resume-run.$j.samples")
		wchar=$((wchar + w))
		emit bench=resume kind=run volume=$vol interval=$iv run=$j restart=$([ $j -gt 0 ] && echo true || echo false) \
			first_write_ms=$first exit_ms="$(jget "$DATA/resume-run.$j.json" 'd["exit_ms"]')" \
			flush_probe_ms=$probe killed=$([ "$code" = -1 ] && echo true || echo false) bytes_written=$w \
			interval_bytes="$(interval_bytes "$DATA/resume-run.$j.samples" "$iv")"
		sed "s/^/$j /" "$DATA/resume-run.$j.samples" >>"$OUT/plot-resume-$vol-$iv.samples"
		[ "$code" = 0 ] && break
		if [ "$code" != -1 ]; then
			log "resume: sync failed (exit $code), see $DATA/resume.log"
			return 1
		fi
		j=$((j + 1))
		[ $j -gt 20 ] && return 1
	done
	[ $kills -gt 0 ] || return 3 # the copy ended before the kill: again
	recopied=$(status_get "$st" 'd["bytes_recopied"]')
	resumes=$(status_get "$st" 'd["resumes"]')
	emit bench=resume kind=case volume=$vol interval=$iv kills=$kills resumes=$resumes \
		bytes_recopied=$recopied bytes_written=$wchar data_bytes=$data \
		size=$size threads=4 region_size=1048576 run_size=4194304 # a buffered run at most (engine.c, run_regions)
	log "resume $vol interval $iv: $kills kills, bytes_recopied $recopied, written $wchar of $data"
}

bench_resume() {
	local vol src size data ref iv t0 attempt rc
	for vol in dense sparse; do
		if [ $vol = dense ]; then
			size=$(bytes $RESUME_DENSE)
			data=$size
			src=$DATA/resume-dense.src
			log "resume: making a $RESUME_DENSE dense source"
			make_dense "$src" "$size"
		else
			size=$(bytes $RESUME_SPARSE)
			data=$(bytes $RESUME_SPARSE_DATA)
			src=$DATA/resume-sparse.src
			log "resume: making a $RESUME_SPARSE sparse source with $RESUME_SPARSE_DATA of data"
			make_sparse "$src" "$size" "$data"
		fi
		# a whole copy without kills: the time to the first byte of a fresh
		# start, and how long a copy takes (to place the kills)
		rm -rf "$DATA/resume.state"
		fresh_target "$DATA/resume.tgt" "$size"
		"$VOLMIG" setup -s "$DATA/resume.state" --source "$src" --target "$DATA/resume.tgt" 2>>"$DATA/resume.log"
		drop_caches
		"$IOWATCH" --modify "$DATA/resume.tgt" --out "$DATA/resume-ref.json" -- \
			"$VOLMIG" sync -s "$DATA/resume.state" --progress-interval 0 2>>"$DATA/resume.log"
		ref=$(calc "$(jget "$DATA/resume-ref.json" 'd["exit_ms"]') / 1000")
		emit bench=resume kind=fresh volume=$vol size=$size data_bytes=$data \
			first_write_ms="$(jget "$DATA/resume-ref.json" 'd["first_modify_ms"]')" seconds=$ref \
			maxrss_kib="$(jget "$DATA/resume-ref.json" 'd["maxrss_kib"]')"
		log "resume $vol: fresh copy $ref s"
		for iv in $RESUME_INTERVALS; do
			for attempt in 1 2 3 4; do
				resume_case $vol $iv "$src" "$size" "$data" "$ref" 2>>"$DATA/resume.log"
				rc=$?
				[ $rc = 3 ] || break
			done
			[ $rc = 0 ] || log "resume $vol $iv failed (status $rc)"
		done
		rm -rf "$src" "$DATA/resume.tgt" "$DATA/resume.state"
	done
}

# ---- 5. convergence ----------------------------------------------------------
bench_converge() {
	local size src tgt st c kind f bw=0 iops spid fpid t0 t1 secs conv dirty
	size=$(bytes $CONV_SIZE)
	src=$DATA/conv.src
	tgt=$DATA/conv.tgt
	st=$DATA/conv.state
	make_dense "$src" "$size"
	for c in $CONV_CASES; do
		IFS=- read -r kind f <<<"$c"
		rm -rf "$st"
		fresh_target "$tgt" "$size"
		"$VOLMIG" setup -s "$st" --source "$src" --target "$tgt" 2>>"$DATA/conv.log" || return 1
		drop_caches
		fpid=
		iops=0
		if [ "$kind" != none ]; then
			# the writer's rate is a fraction of the copy bandwidth measured
			# without a writer (the first case); it runs under the shim
			# from a second before the copy starts, as an application would
			iops=$(calc "$f * $bw / 4096" | cut -d. -f1)
			[ "$iops" -ge 1 ] || iops=1
			FIO=(fio --name=conv --filename="$src" --bs=4k --rw=randwrite --ioengine=psync
				--rate_iops=$iops --time_based --runtime=$((CONV_TIMEOUT + 30))
				--norandommap --fallocate=none --output-format=json)
			if [ "$kind" = hotspot ]; then
				FIO+=(--offset=0 --size=8M) # 8 regions
			else
				FIO+=(--size=$size)
			fi
			bg_start fpid "$VOLMIG" exec -s "$st" -- "${FIO[@]}" >"$DATA/conv-fio.json" 2>>"$DATA/conv.log"
			sleep 1
		fi
		t0=$(now)
		bg_start spid "$VOLMIG" sync -s "$st" --progress-interval 0 2>>"$DATA/conv.log"
		: >"$OUT/plot-conv-$c.dat"
		while alive "$spid" && [ "$(calc "$(now) - $t0 < $CONV_TIMEOUT")" = 1.000000 ]; do
			if [ "$kind" != none ]; then
				"$VOLMIG" status -s "$st" --json 2>/dev/null | python3 -c 'import json,sys
d = json.load(sys.stdin)
print(sys.argv[1], d["pairs"][0]["dirty_regions"], d["bytes_copied"])' "$(calc "$(now) - $t0")" >>"$OUT/plot-conv-$c.dat"
			fi
			sleep 0.25
		done
		conv=true
		dirty=null
		if alive "$spid"; then
			conv=false
			bg_stop "$spid" TERM # the copier checkpoints and stops
			t1=$(now)
			dirty=$(status_get "$st" 'd["pairs"][0]["dirty_regions"]')
		else
			wait "$spid"
			t1=$(now)
		fi
		secs=$(calc "$t1 - $t0")
		[ $kind = none ] && bw=$(calc "$size / $secs")
		bg_stop "$fpid" TERM
		emit bench=converge case=$c writer=$kind fraction=${f:-0} write_iops_target=$iops \
			write_iops:="$([ -n "$fpid" ] && fio_iops "$DATA/conv-fio.json" || echo 0)" \
			converged=$conv seconds=$secs timeout=$CONV_TIMEOUT dirty_regions_at_end=$dirty \
			state="$(status_get "$st" 'd["state"]')" size=$size
		log "converge $c: converged=$conv after $secs s, dirty $dirty"
	done
	rm -rf "$st" "$src" "$tgt"
}

# ---- 7. cutover stall ---------------------------------------------------------
# A writer under the shim (fio, 4 KiB random writes at a fixed rate) on a
# synced session with `sync --follow` running; in the cutover runs
# `volmig switch` then `volmig commit` are issued mid-way, in the base runs
# nothing is.  The stall is the writer's worst write latency.
bench_cutover() {
	local size src tgt st rep i side cpid fpid t0 t1 t2 t3 sw cm state
	if ! "$VOLMIG" commit --help >/dev/null 2>&1; then
		emit bench=cutover measured=false note="no switch or commit yet: the cutover stall cannot be measured"
		return 0
	fi
	size=$(bytes $CUT_SIZE)
	src=$DATA/cut.src
	tgt=$DATA/cut.tgt
	st=$DATA/cut.state
	make_dense "$src" "$size"
	for ((rep = 1; rep <= CUT_REPS; rep++)); do
		for ((i = 0; i < 2; i++)); do
			if (((rep + i) % 2)); then side=cutover; else side=base; fi
			rm -rf "$st"
			fresh_target "$tgt" "$size"
			"$VOLMIG" setup -s "$st" --source "$src" --target "$tgt" 2>>"$DATA/cut.log" &&
				"$VOLMIG" sync -s "$st" --progress-interval 0 2>>"$DATA/cut.log" || return 1
			bg_start cpid "$VOLMIG" sync -s "$st" --follow --progress-interval 0 2>>"$DATA/cut.log"
			FIO=(fio --name=cut --filename="$src" --size="$size" --bs=4k --rw=randwrite --ioengine=psync
				--rate_iops=2000 --time_based --runtime=$CUT_RUNTIME --norandommap --fallocate=none
				--output-format=json)
			bg_start fpid "$VOLMIG" exec -s "$st" -- "${FIO[@]}" >"$DATA/cut-fio.json" 2>>"$DATA/cut.log"
			sleep $(calc "$CUT_RUNTIME / 3")
			sw=null cm=null
			if [ $side = cutover ]; then
				t0=$(now)
				timeout 60 "$VOLMIG" switch -s "$st" 2>>"$DATA/cut.log" || log "cutover: switch failed"
				t1=$(now)
				sleep 0.5
				t2=$(now)
				timeout 60 "$VOLMIG" commit -s "$st" 2>>"$DATA/cut.log" || log "cutover: commit failed"
				t3=$(now)
				sw=$(calc "$t1 - $t0")
				cm=$(calc "$t3 - $t2")
			fi
			wait "$fpid"
			state=$(status_get "$st" 'd["state"]')
			bg_stop "$cpid" TERM
			emit bench=cutover side=$side rep=$rep switch_s=$sw commit_s=$cm state="$state" \
				iops="$(fio_iops "$DATA/cut-fio.json")" \
				max_ms="$(jget "$DATA/cut-fio.json" 'round(d["jobs"][0]["write"]["clat_ns"]["max"] / 1e6, 3)')" \
				p99_us="$(jget "$DATA/cut-fio.json" 'round(d["jobs"][0]["write"]["clat_ns"]["percentile"]["99.000000"] / 1e3, 1)')"
			log "cutover $side rep $rep: switch $sw s, commit $cm s, state $state"
		done
	done
	rm -rf "$st" "$src" "$tgt"
}

# ---- 6. memory -----------------------------------------------------------------
bench_memory() {
	local s size src st
	for s in $MEM_SIZES; do
		size=$(bytes $s)
		src=$DATA/mem.src
		st=$DATA/mem.state
		rm -rf "$st" "$src.tgt"
		truncate -s "$size" "$src"
		"$VOLMIG" setup -s "$st" --source "$src" --target "$src.tgt" 2>>"$DATA/mem.log" || return 1
		"$IOWATCH" --out "$DATA/mem.json" -- "$VOLMIG" sync -s "$st" --progress-interval 0 2>>"$DATA/mem.log"
		emit bench=memory size=$size regions=$((size >> 20)) \
			maxrss_kib="$(jget "$DATA/mem.json" 'd["maxrss_kib"]')" \
			seconds="$(calc "$(jget "$DATA/mem.json" 'd["exit_ms"]') / 1000")" \
			ctl_bytes="$(stat -c %s "$st/ctl")" state_dir_bytes="$(du -sb "$st" | cut -f1)"
		log "memory $s: $(jget "$DATA/mem.json" 'd["maxrss_kib"]') KiB peak RSS, ctl $(stat -c %s "$st/ctl") bytes"
		rm -rf "$st" "$src" "$src.tgt"
	done
}

want copy && bench_copy
want shim && bench_shim
want firstwrite && bench_firstwrite
want resume && bench_resume
want converge && bench_converge
want memory && bench_memory
want cutover && bench_cutover
emit bench=done seconds="$(calc "$(now) - $T_START")" page_cache_dropped=$DROP_OK

python3 "$HERE/report.py" "$OUT"
