#!/usr/bin/env bash
# Install the Debian packages volmig needs to build, test and demo, when they
# are missing.  Quiet and quick when everything is there.  Needs root (or
# sudo) only when something is missing.
#
#   scripts/install-deps.sh [--list]
set -u

# package: what needs it
PACKAGES=(
	gcc            # build
	make           # build
	libc6-dev      # build
	libdb5.3-dev   # the copier's state store (Berkeley DB 5.3)
	db5.3-util     # tests: inspect and craft state stores
	libxxhash-dev  # checksums of the session record
	xxhash         # tests: xxhsum
	libaio-dev     # libaio (the shim's io_submit and fio's libaio engine)
	fio            # tests: an unmodified client application
	valgrind       # make check-valgrind
	python3        # tests: reading status --json
	util-linux     # losetup for block-device tests
	util-linux-extra # tests: fincore (page cache of a file)
	strace         # tests: system-call traces (ordering, open flags)
	qemu-utils     # benchmarks: qemu-img convert baseline
	afl++          # make fuzz: AFL++
	gnuplot-nox    # make bench: plots
	spin           # make check-model: the Promela model checker
)

if [ "${1:-}" = "--list" ]; then
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "volmig: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	echo "volmig: need root to install: apt-get install ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# An old or empty package list finds nothing: refresh it first.
"${sudo[@]}" apt-get update -qq >&2 || { echo "volmig: apt-get update failed" >&2; exit 1; }
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
	echo "volmig: apt-get install ${missing[*]} failed" >&2
	exit 1
fi
