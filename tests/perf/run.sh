#!/usr/bin/env bash
# System test: a smoke run of the side-by-side comparison with age and tar
# (tests/perf/compare.sh --quick: work factor 10, 2 rounds, a smaller large
# set). It checks that the script, the data sets, the pty helper and both
# restores work, and that each restore gives back the source tree; the
# numbers it prints mean nothing at this work factor. The real comparison
# (log_n 18, at least 7 rounds) is too slow for CI: see docs/PERFORMANCE.md.
#
# Exit 77 (skipped) when age, /usr/bin/time, python3 or tar is missing and
# cannot be installed here.
set -euo pipefail

cd "${ZETA_CREDS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
exec tests/perf/compare.sh --quick
