#!/usr/bin/env bash
# Fuzz every cargo-fuzz target in fuzz/ for SECONDS each (default 20).
#
#   tests/fuzz/run.sh           # 20 s per target: what CI runs
#   tests/fuzz/run.sh 1800      # 30 minutes per target
#
# What it proves: within the time given, libFuzzer finds no input that
# makes the header parser, the whole decrypt-and-parse path (from raw
# blobs, and from plaintexts sealed with a fixed key so the entry-stream
# parser is in reach), the entry-stream parser or the manifest parser
# panic, overflow, leak, exceed 2 GiB of memory or run for more than 30 s,
# nor break one of the properties the targets assert (fuzz/README.md).
#
# Each target starts from the checked-in seeds (fuzz/seeds/<target>) and
# grows its corpus in fuzz/corpus/<target> (ignored by git); a crash is
# written to fuzz/artifacts/<target>/ and fails the run, after the other
# targets have run. The last line per target is `fuzz: <target>: ...` with
# libFuzzer's final coverage (cov), features (ft), corpus size and runs.
#
# Needs a nightly toolchain (libFuzzer's sanitizer flags); installs
# cargo-fuzz with `cargo +nightly install --locked cargo-fuzz` when it is
# missing. Without nightly it prints `SKIPPED: <reason>` and exits 77
# (tests/README.md).
#
# FUZZ_JOBS (default 1) runs that many libFuzzer workers per target;
# FUZZ_TARGETS (space-separated) limits the run to those targets.
set -euo pipefail

seconds=${1:-20}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]  (a positive number of seconds per target)" >&2
    exit 2
fi
jobs=${FUZZ_JOBS:-1}
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
    echo "FUZZ_JOBS must be a positive number, not $jobs" >&2
    exit 2
fi

repo=${ZETA_CREDS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo/fuzz"

if ! nightly=$(cargo +nightly --version 2>/dev/null); then
    echo "SKIPPED: no nightly Rust toolchain (cargo +nightly fails; rustup toolchain install nightly)"
    exit 77
fi
echo "fuzz: $nightly"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing; installing it"
    cargo +nightly install --locked cargo-fuzz
fi
echo "fuzz: $(cargo +nightly fuzz --version)"

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz: no targets found in fuzz/" >&2
    exit 1
fi

cargo +nightly fuzz build

logs=$(mktemp -d "${TMPDIR:-/tmp}/zeta-creds-fuzz.XXXXXX")
trap 'rm -rf "$logs"' EXIT

failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    seeds=()
    if [ -d "seeds/$target" ]; then
        seeds=("seeds/$target")
    fi
    log="$logs/$target.log"
    echo "=== fuzz $target for ${seconds}s (jobs $jobs)"
    rc=0
    # -print_final_stats prints stat::number_of_executed_units at the end;
    # -timeout makes one slow input a failure, -rss_limit_mb one greedy one.
    # (-jobs=1 would still fork a worker that logs to a file: leave it out.)
    parallel=()
    if [ "$jobs" -gt 1 ]; then
        parallel=(-jobs="$jobs" -workers="$jobs")
    fi
    cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 "${parallel[@]}" >"$log" 2>&1 || rc=$?
    # With -jobs > 1 the workers log to fuzz-N.log in the working directory.
    if [ "$jobs" -gt 1 ]; then
        cat fuzz-*.log >>"$log" 2>/dev/null || true
        rm -f fuzz-*.log
    fi
    tail -n 30 "$log"
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$done_line")
    runs=$(awk '/stat::number_of_executed_units/ { s += $2 } END { print s + 0 }' "$log")
    files=$(find "corpus/$target" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $target: ok, ${seconds}s, runs $runs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} ($files files in fuzz/corpus/$target)"
    else
        echo "fuzz: $target: FAILED (exit $rc) after runs $runs; crash input in fuzz/artifacts/$target/" >&2
        grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" >&2 || true
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a crash"
