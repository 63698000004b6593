#!/usr/bin/env bash
# The fuzz targets, built by the normal compiler as replay drivers, replay
# their seeds and regressions (fuzz/replay.sh prints the TAP: one check per
# target; fuzz/README.md describes the targets and their contracts).
top=$(cd "$(dirname "$0")/../.." && pwd)
exec bash "$top/fuzz/replay.sh" "${VOLMIG_BUILD:-$top/build/default}"
