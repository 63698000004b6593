#!/usr/bin/env bash
# I6 on files: SIGKILL `volmig sync` at 20 random moments while it copies a
# 256 MiB source of random data; it resumes each time and ends identical.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/kill-resume.sh"

size=256 kills=20
if [ -n "${VOLMIG_TEST_QUICK:-}" ]; then size=32 kills=3 KR_RATE_MIB=4; fi
make_random "$SCRATCH/src.img" "$size"
kill_resume "$SCRATCH/src.img" "$SCRATCH/tgt.img" "$size" "$kills"
done_testing
