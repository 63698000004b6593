#!/usr/bin/env bash
# t0020-bad-input.sh: DESIGN.md "Bad input and faults", the rows that concern
# setup and sync, plus usage errors and --help.
#
# Each fault must give exit status 1 (2 for a usage error), a message on
# stderr that names the thing at fault (the volume's path as the user gave
# it, or the state directory, or the other copier's pid) and says what is
# wrong, and no change to source or target: sha256, size and allocated
# blocks of every volume are the same before and after the command.
#
# Needs: python3; for the crafted state stores db5.3_dump/db5.3_load
# (db5.3-util) and xxhsum (xxhash), both in scripts/install-deps.sh; loop
# devices (root) for the block-device case, skipped otherwise.
#
# $VOLMIG is left unquoted on purpose (it may carry $TEST_PREFIX), and some
# helpers are only called through ok_if and wait_for:
# shellcheck disable=SC2086,SC2317
# shellcheck source=harness/t/lib-test.sh
. "$(dirname "$0")/lib-test.sh"

# Canonical scratch directory: paths under it are the same before and after
# realpath, so a message can be matched against the path given.
D=$(cd "$SCRATCH" && pwd -P)
OUT="$D/out"
ERR="$D/err"

# ---------------------------------------------------------------- helpers

# A file of N MiB of random data, flushed so that its allocated block count
# no longer moves under writeback.
make_volume() { # file mib
	make_random "$1" "$2"
	sync "$1"
}

# One line per volume: path, sha256, size, allocated 512-byte blocks.
fingerprint() { # volume...
	local v
	for v in "$@"; do
		printf '%s %s %s\n' "$v" "$(sha "$v")" "$(stat -L -c '%s %b' "$v")"
	done
}

# Show the captured stderr of the last command as TAP comments.
show_err() {
	sed 's/^/#   stderr: /' "$ERR"
}

# check_msg WHAT NEEDLE...: stderr of the last command contains every NEEDLE
# (fixed strings; case-insensitive).
check_msg() {
	local what=$1 n missing=()
	shift
	for n in "$@"; do
		grep -qiF -- "$n" "$ERR" || missing+=("$n")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		ok "$what: message names $(printf "'%s' " "$@")"
	else
		not_ok "$what: message names $(printf "'%s' " "$@")(missing: $(printf "'%s' " "${missing[@]}"))"
		show_err
	fi
}

# expect_fail WHAT VOLUMES... -- NEEDLES... -- COMMAND...
#
# The pattern of this test: run COMMAND (stdout and stderr kept in $OUT and
# $ERR), then check that it exited with status 1, that its message names
# every NEEDLE, and that no VOLUME changed.
expect_fail() {
	local what=$1 rc before after
	local -a vols=() needles=()
	shift
	while [ "$1" != -- ]; do vols+=("$1"); shift; done
	shift
	while [ "$1" != -- ]; do needles+=("$1"); shift; done
	shift
	before=$(fingerprint "${vols[@]}")
	"$@" >"$OUT" 2>"$ERR"
	rc=$?
	after=$(fingerprint "${vols[@]}")
	if [ "$rc" -eq 1 ]; then
		ok "$what: exit status 1"
	else
		not_ok "$what: exit status 1 (got $rc)"
		show_err
	fi
	check_msg "$what" "${needles[@]}"
	if [ "$before" = "$after" ]; then
		ok "$what: $(printf '%s ' "${vols[@]##*/}")unchanged"
	else
		not_ok "$what: $(printf '%s ' "${vols[@]##*/}")unchanged"
		diff <(echo "$before") <(echo "$after") | sed 's/^/#   /'
	fi
}

# expect_usage WHAT NEEDLE COMMAND...: exit status 2 and NEEDLE on stderr.
expect_usage() {
	local what=$1 needle=$2 rc
	shift 2
	"$@" >"$OUT" 2>"$ERR"
	rc=$?
	if [ "$rc" -eq 2 ]; then
		ok "usage error, $what: exit status 2"
	else
		not_ok "usage error, $what: exit status 2 (got $rc)"
		show_err
	fi
	check_msg "usage error, $what" "$needle"
}

# A session in DIR over fresh volumes NAME.src (MIB MiB) and NAME.tgt
# (created by setup); prints nothing, fails the test run if setup fails.
new_session() { # dir name mib
	make_volume "$D/$2.src" "$3"
	if ! $VOLMIG setup -s "$1" --source "$D/$2.src" --target "$D/$2.tgt" >"$OUT" 2>"$ERR"; then
		not_ok "setup of session $1"
		show_err
		return 1
	fi
}

# Bounded wait for a condition (not a pass condition): up to SECONDS.
wait_for() { # seconds command...
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# ---------------------------------------------------------------- --help

# The last command exited RC and printed a line starting with PREFIX to stdout.
help_shown() { # rc prefix
	[ "$1" -eq 0 ] && grep -q "^$2" "$OUT"
}

help_checks() {
	local cmd cmds rc
	$VOLMIG --help >"$OUT" 2>"$ERR"
	rc=$?
	ok_if "volmig --help exits 0 (got $rc) and prints usage: to stdout" \
		help_shown "$rc" "usage:"
	# every command that volmig --help lists
	cmds=$(awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }' "$OUT")
	ok_if "volmig --help lists commands" test -n "$cmds"
	for cmd in $cmds; do
		$VOLMIG "$cmd" --help >"$OUT" 2>"$ERR"
		rc=$?
		ok_if "volmig $cmd --help exits 0 (got $rc) and prints usage: to stdout" \
			help_shown "$rc" "usage: volmig $cmd"
	done
}

# ---------------------------------------------------------------- usage errors

usage_checks() {
	local s="$D/usage.state"
	make_volume "$D/usage.src" 1
	expect_usage "unknown command" "frobnicate" $VOLMIG frobnicate -s "$s"
	expect_usage "unknown option" "--no-such-option" $VOLMIG sync -s "$s" --no-such-option
	expect_usage "--source without --target" "--target" \
		$VOLMIG setup -s "$s" --source "$D/usage.src"
	expect_usage "--region-size 3000" "--region-size 3000" \
		$VOLMIG setup -s "$s" --source "$D/usage.src" --target "$D/usage.tgt" --region-size 3000
	expect_usage "--threads 0" "--threads 0" $VOLMIG sync -s "$s" --threads 0
	expect_usage "no -s and no VOLMIG_STATE" "VOLMIG_STATE" \
		env -u VOLMIG_STATE $VOLMIG status
	ok_if "usage errors created no state directory" test ! -e "$s"
	ok_if "usage errors created no target" test ! -e "$D/usage.tgt"
}

# ---------------------------------------------------------------- setup

setup_checks() {
	local s="$D/setup.state" src="$D/setup.src" small="$D/setup.small" L
	make_volume "$src" 4
	make_volume "$small" 3

	expect_fail "setup, target smaller than source" "$src" "$small" \
		-- "$small" "smaller than" -- \
		$VOLMIG setup -s "$s" --source "$src" --target "$small"
	ok_if "setup, target smaller: no session recorded" test ! -e "$s"

	expect_fail "setup, target is the source (same path)" "$src" \
		-- "$src" "same volume" -- \
		$VOLMIG setup -s "$s" --source "$src" --target "$src"

	ln -s "$src" "$D/setup.symlink"
	expect_fail "setup, target is the source through a symlink" "$src" \
		-- "$D/setup.symlink" "same volume" -- \
		$VOLMIG setup -s "$s" --source "$src" --target "$D/setup.symlink"

	mkdir "$D/sub"
	expect_fail "setup, target is the source through /dir/../dir/file" "$src" \
		-- "$D/sub/../setup.src" "same volume" -- \
		$VOLMIG setup -s "$s" --source "$src" --target "$D/sub/../setup.src"

	ln "$src" "$D/setup.hardlink"
	expect_fail "setup, target is the source through a hard link" "$src" \
		-- "$D/setup.hardlink" "same volume" -- \
		$VOLMIG setup -s "$s" --source "$src" --target "$D/setup.hardlink"
	ok_if "setup, target is the source: no session recorded" test ! -e "$s"

	if loops_available; then
		make_volume "$D/setup.loopfile" 4
		if loop_attach L "$D/setup.loopfile"; then
			ln -s "$L" "$D/setup.looplink"
			expect_fail "setup, block target is the source through a symlink" "$L" \
				-- "$D/setup.looplink" "same volume" -- \
				$VOLMIG setup -s "$s" --source "$L" --target "$D/setup.looplink"
			expect_fail "setup, block target is the source (same path)" "$L" \
				-- "$L" "same volume" -- \
				$VOLMIG setup -s "$s" --source "$L" --target "$L"
		else
			not_ok "attach a loop device although loops_available said yes"
		fi
	else
		skip_test "setup, block target is the source: no loop devices here (needs root and the loop driver)"
	fi
}

# ---------------------------------------------------------------- sync: pair changed since setup

bytes_copied_is_zero() { # dir what
	local v
	v=$(status_field "$1" bytes_copied)
	if [ "$v" = 0 ]; then
		ok "$2: progress did not move (bytes_copied 0)"
	else
		not_ok "$2: progress did not move (bytes_copied $v)"
	fi
}

changed_checks() {
	local s src tgt role how what
	for role in source target; do
		s="$D/ident-$role.state"
		new_session "$s" "ident-$role" 3 || continue
		src="$D/ident-$role.src" tgt="$D/ident-$role.tgt"
		# a new file of the same size in its place
		make_volume "$D/ident-$role.new" 3
		if [ "$role" = source ]; then mv "$D/ident-$role.new" "$src"; else mv "$D/ident-$role.new" "$tgt"; fi
		what="sync, $role replaced by another file"
		if [ "$role" = source ]; then
			expect_fail "$what" "$src" "$tgt" -- "$role $src" "no longer the volume" -- \
				$VOLMIG sync -s "$s"
		else
			expect_fail "$what" "$src" "$tgt" -- "$role $tgt" "no longer the volume" -- \
				$VOLMIG sync -s "$s"
		fi
		bytes_copied_is_zero "$s" "$what"
	done

	# A file pair may change length since setup (the target follows its
	# source), but a source may not grow past its reserve (0 here): that
	# stops the migration for good.
	s="$D/size-source-bigger.state"
	if new_session "$s" size-source-bigger 3; then
		src="$D/size-source-bigger.src" tgt="$D/size-source-bigger.tgt"
		truncate -s 4M "$src"
		sync "$src"
		what="sync, source grown past its reserve since setup"
		expect_fail "$what" "$src" "$tgt" -- "source $src" "grew to 4194304 bytes" \
			"0 reserved" "volmig abort" -- $VOLMIG sync -s "$s"
		bytes_copied_is_zero "$s" "$what"
		truncate -s 3M "$src"
		expect_fail "sync again after the source shrank back: the migration stays stopped" \
			"$src" "$tgt" -- "source $src" "stopped" -- $VOLMIG sync -s "$s"
		$VOLMIG status -s "$s" --json >"$OUT" 2>"$ERR"
		ok_if "status --json names the stop" grep -q '"stopped": *"source .*grew to 4194304' "$OUT"
		ok_if "abort of the stopped session" $VOLMIG abort -s "$s"
	fi
	for role in source target; do
		for how in bigger smaller; do
			[ "$role$how" = sourcebigger ] && continue
			s="$D/follow-$role-$how.state"
			make_volume "$D/follow-$role-$how.src" 3
			src="$D/follow-$role-$how.src" tgt="$D/follow-$role-$how.tgt"
			if ! $VOLMIG setup -s "$s" --source "$src" --target "$tgt" --reserve 2M \
				>"$OUT" 2>"$ERR"; then
				not_ok "setup of session $s"
				show_err
				continue
			fi
			local vol=$src
			[ "$role" = target ] && vol=$tgt
			if [ "$how" = bigger ]; then truncate -s 5M "$vol"; else truncate -s 2M "$vol"; fi
			sync "$vol"
			what="sync, file $role made $how since setup"
			if $VOLMIG sync -s "$s" >"$OUT" 2>"$ERR"; then ok "$what: exit status 0"; else
				not_ok "$what: exit status 0"
				show_err
			fi
			ok_if "$what: the target is the source, length too ($(stat -c %s "$src") bytes)" \
				cmp "$src" "$tgt"
		done
	done
}

# ---------------------------------------------------------------- state directory faults

# Rewrite the session record of the state store in DIR with python code
# that changes the bytearray `rec`; FIX_SUM=1 recomputes the XXH3-64 at its
# end (xxhsum -H3 prints it big-endian; the record stores it little-endian).
patch_record() { # dir fix_sum python-statements
	local dir=$1 fix=$2 code=$3
	db5.3_dump -h "$dir" -s meta volmig.db >"$D/meta.dump" || return 1
	python3 - "$D/meta.dump" "$fix" "$code" >"$D/meta.load" <<'EOF' || return 1
import subprocess, sys, tempfile
lines = open(sys.argv[1]).read().split('\n')
end = lines.index('HEADER=END') + 1
head, body = lines[:end], lines[end:]
i = body.index(' ' + b'session'.hex())
rec = bytearray(bytes.fromhex(body[i + 1].strip()))
exec(sys.argv[3])
if sys.argv[2] == '1':
    with tempfile.NamedTemporaryFile() as t:
        t.write(rec[:-8])
        t.flush()
        out = subprocess.run(['xxhsum', '-H3', t.name], capture_output=True,
                             text=True, check=True).stdout
    rec[-8:] = bytes.fromhex(out.rsplit('=', 1)[1].strip())[::-1]
print('\n'.join(head + [body[i], ' ' + rec.hex(), 'DATA=END']))
EOF
	db5.3_load -h "$dir" -c database=meta volmig.db <"$D/meta.load"
}

# Every command that reads the session refuses DIR (over volumes NAME.src
# and NAME.tgt) with a message that names DIR and every NEEDLE.
refuse_state() { # dir name label needles...
	local dir=$1 name=$2 label=$3 cmd
	shift 3
	for cmd in sync status verify abort; do
		expect_fail "$cmd, $label" "$D/$name.src" "$D/$name.tgt" -- "$dir" "$@" -- \
			$VOLMIG "$cmd" -s "$dir"
	done
}

state_checks() {
	local s
	if ! command -v db5.3_dump >/dev/null || ! command -v db5.3_load >/dev/null ||
		! command -v xxhsum >/dev/null; then
		skip_test "state store of another format version: needs db5.3_dump, db5.3_load (db5.3-util) and xxhsum (xxhash); see scripts/install-deps.sh"
		skip_test "session record with a flipped byte: needs db5.3-util and xxhash"
	else
		s="$D/version.state"
		if new_session "$s" version 2; then
			if patch_record "$s" 1 'rec[4:8] = (2).to_bytes(4, "little")' >"$OUT" 2>"$ERR"; then
				refuse_state "$s" version "state store of format version 2" "format version"
			else
				not_ok "craft a session record of format version 2"
				show_err
			fi
		fi
		s="$D/flip.state"
		if new_session "$s" flip 2; then
			# a byte of the target path, checksum left as it was
			if patch_record "$s" 0 'rec[len(rec) - 12] ^= 0x01' >"$OUT" 2>"$ERR"; then
				refuse_state "$s" flip "session record with a flipped byte" "corrupted"
			else
				not_ok "flip a byte of the session record"
				show_err
			fi
		fi
	fi

	s="$D/garbage.state"
	if new_session "$s" garbage 2; then
		head -c "$(stat -c %s "$s/volmig.db")" /dev/urandom >"$s/volmig.db.new"
		mv "$s/volmig.db.new" "$s/volmig.db"
		refuse_state "$s" garbage "volmig.db overwritten with random bytes" "corrupted"
	fi
}

# ------------------------------------------------- a second copier; unknown transitions

copier_is() { # dir pid
	[ "$(status_field "$1" copier_pid 2>/dev/null)" = "$2" ]
}

copier_checks() {
	local s="$D/busy.state" src="$D/busy.src" tgt="$D/busy.tgt" first state
	new_session "$s" busy 256 || return
	spawn first $VOLMIG sync -s "$s" --rate 8M --progress-interval 0 2>"$D/first.err"
	if ! wait_for 30 copier_is "$s" "$first"; then
		not_ok "first copier (pid $first) shows in status --json"
		sed 's/^/#   first copier: /' "$D/first.err"
		kill -KILL "$first" 2>/dev/null
		wait "$first" 2>/dev/null
		return
	fi
	expect_fail "sync, a second copier on the session" "$src" \
		-- "pid $first" "$s" -- \
		$VOLMIG sync -s "$s"
	ok_if "sync, a second copier: the first one (pid $first) still runs" kill -0 "$first"
	kill -KILL "$first"
	wait "$first" 2>/dev/null

	# the session is left copying: a transition it cannot make
	state=$(status_field "$s" state)
	ok_if "session left copying by the killed copier (state $state)" test "$state" = copying
	expect_fail "cleanup of a copying session" "$src" "$tgt" \
		-- "$s" "commit or abort it" -- \
		$VOLMIG cleanup -s "$s"
	ok_if "cleanup of a copying session: state store kept" test -e "$s/volmig.db"

	if $VOLMIG abort -s "$s" >"$OUT" 2>"$ERR"; then
		expect_fail "sync of an aborted session" "$src" "$tgt" \
			-- "$s" "aborted" -- \
			$VOLMIG sync -s "$s"
	else
		not_ok "abort a copying session"
		show_err
	fi
}

transition_checks() {
	local s="$D/fresh.state"
	new_session "$s" fresh 2 || return
	expect_fail "cleanup of a session in setup" "$D/fresh.src" "$D/fresh.tgt" \
		-- "$s" "commit or abort it" -- \
		$VOLMIG cleanup -s "$s"
	ok_if "cleanup of a session in setup: state store kept" test -e "$s/volmig.db"
	expect_fail "commit before synced (a session in setup)" "$D/fresh.src" "$D/fresh.tgt" \
		-- "$s" "commit needs a synced or switched session" -- \
		$VOLMIG commit -s "$s"
	expect_fail "switch before synced" "$D/fresh.src" "$D/fresh.tgt" \
		-- "$s" "needs a synced session" -- \
		$VOLMIG switch -s "$s"
	ok_if "the session is still in setup" test "$(status_field "$s" state)" = setup
	if $VOLMIG sync -s "$s" >"$OUT" 2>"$ERR" && $VOLMIG commit -s "$s" >"$OUT" 2>"$ERR"; then
		expect_fail "abort after commit" "$D/fresh.src" "$D/fresh.tgt" \
			-- "$s" "committed: it cannot be aborted" -- \
			$VOLMIG abort -s "$s"
		expect_fail "switch --source after commit" "$D/fresh.src" "$D/fresh.tgt" \
			-- "$s" "needs a switched session" -- \
			$VOLMIG switch -s "$s" --source
	else
		not_ok "sync and commit a fresh session"
		show_err
	fi
}

help_checks
usage_checks
setup_checks
changed_checks
state_checks
transition_checks
copier_checks
done_testing
