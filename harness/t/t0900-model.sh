#!/usr/bin/env bash
# t0900-model.sh: the spin model of the shim/copier protocol (model/).
#
# Runs model/check.sh and passes its TAP through: the correct model must
# keep I1 under an exhaustive search in every crash configuration, and each
# deliberately broken variant must make spin report a violation of I1.
# Skipped, with the reason, only when spin is not installed
# (scripts/install-deps.sh installs it).
# shellcheck source=harness/t/lib-test.sh
. "$(dirname "$0")/lib-test.sh"

if ! command -v spin >/dev/null 2>&1; then
	skip_test "spin not installed"
	done_testing
fi
TMPDIR=$SCRATCH "$TOP/model/check.sh"
exit $?
