#!/usr/bin/env bash
# Side by side: zeta-creds against what an operator would otherwise use,
# `age -d | tar -x` and `tar -c | age -e -p`, at age's own passphrase work
# factor (scrypt log_n 18). See docs/PERFORMANCE.md.
#
#   tests/perf/compare.sh                 # the full run: log_n 18, 9 rounds
#   tests/perf/compare.sh --rounds 15     # more rounds
#   tests/perf/compare.sh --quick         # smoke test: log_n 10, 2 rounds
#   tests/perf/compare.sh --out FILE      # also write the report to FILE
#   tests/perf/compare.sh --dir /var/tmp  # data, blobs and targets on that
#                                         # filesystem instead of tmpfs, so the
#                                         # restore's flushes to disk count
#
# It builds the release binary, generates the data sets on tmpfs (a typical
# credential set of 30 files / 1 MiB, a large one of 1000 files / 128 MiB,
# and a one-file set that measures the floor: process start, KDF, commit),
# then times, interleaved round by round (the order alternates), each
# zeta-creds command and its age/tar counterpart. It reports min and median
# wall time, the per-round ratio zeta-creds/age (paired: both ran in the
# same round, under the same load) and the peak RSS of every process
# (`/usr/bin/time -f %M`).
#
# age reads a passphrase only from a terminal, so it runs under a pty that
# a small Python helper answers; zeta-creds reads it from an inherited file
# descriptor. No passphrase is ever on a command line. The clock of an age
# round starts when the helper writes the passphrase (its first answer),
# not when it forks: what comes before (the pty, bash, age's start, the
# prompt reaching the helper, the helper noticing it) is the helper's cost,
# not age's work, and the report states it separately. zeta-creds' clock
# starts at the fork, so its own start-up is counted: the comparison leans
# towards age, never away from it.
#
# Needs: cargo, python3, tar, age, /usr/bin/time. Missing age or time are
# installed with apt-get when running as root (idempotent); otherwise it
# stops with exit 77 and says what is missing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

log_n=18
rounds=9
quick=0
out_file=""
scratch=""
while [ "$#" -gt 0 ]; do
    case $1 in
        --quick)
            quick=1
            log_n=10
            rounds=2
            ;;
        --rounds)
            rounds=$2
            shift
            ;;
        --log-n)
            log_n=$2
            shift
            ;;
        --out)
            out_file=$2
            shift
            ;;
        --dir)
            scratch=$2
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "compare.sh: unknown argument $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

# --- tools -----------------------------------------------------------------

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "compare.sh: installing ${need_apt[*]} with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null ||
            { apt-get update -qq >/dev/null &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; } ||
            true
    fi
fi
for tool in age python3 tar cargo; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "compare.sh: $tool is not installed (apt-get install $tool)"
        exit 77
    fi
done
if [ ! -x /usr/bin/time ]; then
    echo "compare.sh: /usr/bin/time is not installed (apt-get install time)"
    exit 77
fi

echo "compare.sh: building the release binary"
cargo build --release --locked -p zeta-creds --quiet
zc=$repo/target/release/zeta-creds

# --- scratch space on tmpfs ------------------------------------------------

if [ -n "$scratch" ]; then
    shm=$scratch
else
    shm=/dev/shm
    [ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$shm/zeta-creds-perf.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

helper=$work/helper.py
cat >"$helper" <<'PY'
"""Helpers for compare.sh: make data sets, time commands, summarise."""
import os, pty, select, signal, statistics, sys, time

def gen(root, files, total, uid, gid):
    """A source root: accounts, and `files` random files totalling `total`
    bytes under home/zeta/.config/bench/dNN/, 100 per directory."""
    os.makedirs(f"{root}/etc", exist_ok=True)
    zu, zg = (1000, 1000) if uid == 0 else (uid, gid)
    with open(f"{root}/etc/passwd", "w") as f:
        f.write(f"root:x:0:0::/root:/bin/sh\nzeta:x:{zu}:{zg}::/home/zeta:/bin/sh\n")
    with open(f"{root}/etc/group", "w") as f:
        f.write(f"root:x:0:\nzeta:x:{zg}:\n")
    size = total // files
    for i in range(files):
        d = f"{root}/home/zeta/.config/bench/d{i // 100:02d}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/f{i:04d}", "wb") as f:
            f.write(os.urandom(size))

def run(argv):
    """run [--pty PASSFILE] -- CMD: run CMD through bash; print its wall
    time in seconds, then the seconds before the clock started. Without
    --pty the clock starts at the fork (nothing before it). With --pty, CMD
    gets a pty as its controlling terminal, every passphrase prompt on it
    is answered from PASSFILE, and the clock starts when the first answer
    is written: the time from the fork to then (the pty, bash, the
    program's start and prompt, this helper's reaction) is printed second,
    and is not the program's work."""
    passfile = None
    if argv[0] == "--pty":
        passfile, argv = argv[1], argv[2:]
    assert argv[0] == "--"
    cmd = argv[1]
    before = 0.0
    if passfile is None:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.execvp("bash", ["bash", "-c", cmd])
        _, status = os.waitpid(pid, 0)
        elapsed = time.monotonic() - start
    else:
        with open(passfile, "rb") as f:
            secret = f.read().rstrip(b"\n")
        forked = time.monotonic()
        answered = None
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp("bash", ["bash", "-c", cmd])
        seen = b""
        while True:
            try:
                r, _, _ = select.select([fd], [], [], 60)
            except InterruptedError:
                continue
            if not r:
                os.kill(pid, signal.SIGKILL)
                break
            try:
                data = os.read(fd, 4096)
            except OSError:
                break  # EIO: the child closed the terminal
            if not data:
                break
            seen += data
            # "Enter passphrase", "Confirm passphrase": answer each once.
            while b"passphrase" in seen.lower():
                tail = seen[seen.lower().index(b"passphrase") + 10:]
                if b":" not in tail:
                    break
                seen = tail[tail.index(b":") + 1:]
                if answered is None:
                    answered = time.monotonic()
                os.write(fd, secret + b"\r")
        _, status = os.waitpid(pid, 0)
        end = time.monotonic()
        os.close(fd)
        if answered is None:
            print(f"no passphrase prompt seen: {cmd}", file=sys.stderr)
            sys.exit(1)
        elapsed, before = end - answered, answered - forked
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"command failed (exit {code}): {cmd}", file=sys.stderr)
        sys.exit(1)
    print(f"{elapsed:.4f} {before:.4f}")

def report(tsv, log_n, rounds):
    """Summarise results.tsv: scenario, round, tool, seconds, seconds
    before the clock started, rss-kib..."""
    rows = [l.rstrip("\n").split("\t") for l in open(tsv)]
    scen = {}
    before = {}
    for s, r, tool, secs, pre, rss in rows:
        scen.setdefault(s, {}).setdefault(tool, {})[int(r)] = (float(secs), rss)
        if tool == "age":
            before.setdefault(s, []).append(float(pre))
    ms = lambda x: f"{x * 1000:.0f}"
    print(f"work factor (log_n) {log_n}, {rounds} interleaved rounds; times in ms, RSS in MiB; "
          "age timed from the moment its passphrase is written, zeta-creds from its fork\n")
    print("| scenario | zeta-creds min / median | age+tar min / median | ratio per round (zeta-creds / age) | median ratio | peak RSS zeta-creds | peak RSS age, tar |")
    print("|---|---|---|---|---|---|---|")
    for s in scen:
        zc, other = scen[s]["zeta-creds"], scen[s]["age"]
        zt = [zc[r][0] for r in sorted(zc)]
        at = [other[r][0] for r in sorted(other)]
        ratios = [zc[r][0] / other[r][0] for r in sorted(zc) if r in other]
        def rss(d):
            peak = {}
            for _, field in d.values():
                for kv in field.split(","):
                    k, v = kv.split("=")
                    peak[k] = max(peak.get(k, 0), int(v))
            return " / ".join(f"{k} {peak[k] / 1024:.0f}" for k in sorted(peak))
        print(f"| {s} | {ms(min(zt))} / {ms(statistics.median(zt))} | "
              f"{ms(min(at))} / {ms(statistics.median(at))} | "
              f"{' '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}** | "
              f"{rss(zc)} | {rss(other)} |")
    print("\nage rounds, the pty helper's cost before the passphrase was written (not counted above), "
          "median per scenario: "
          + ", ".join(f"{s} {ms(statistics.median(v))} ms" for s, v in before.items()))
    if "restore-floor" in scen and "restore-typical" in scen:
        f, t = scen["restore-floor"]["zeta-creds"], scen["restore-typical"]["zeta-creds"]
        d = [t[r][0] - f[r][0] for r in sorted(t) if r in f]
        print(f"\nrestore-typical minus restore-floor (1 file: process, KDF, commit), per round: "
              f"{' '.join(ms(x) for x in d)} ms; median {ms(statistics.median(d))} ms")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "run":
        run(args)
    elif cmd == "report":
        report(args[0], args[1], args[2])
PY

# A strong random passphrase (zeta-creds refuses weak ones), in a file
# only this user can read; handed over by fd (zeta-creds) or pty (age).
pass=$work/passphrase
(umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$pass")

uuid=abcd-1234
uid=$(id -u)
gid=$(id -g)

# name files total_bytes
sets=("floor 1 16" "typical 30 1048576" "large 1000 134217728")
if [ "$quick" -eq 1 ]; then
    sets=("floor 1 16" "typical 30 1048576" "large 1000 8388608")
fi

echo "compare.sh: generating data sets in $work"
for s in "${sets[@]}"; do
    read -r name files total <<<"$s"
    python3 "$helper" gen "$work/src-$name" "$files" "$total" "$uid" "$gid"
    cat >"$work/manifest-$name.toml" <<EOF
version = 1
user = "zeta"

[[entry]]
path = "~/.config/bench"
max_size = "1GiB"
EOF
done

# A fresh target root for zeta-creds (accounts, the user's home) and an
# empty directory for tar.
fresh_target() {
    local t=$1 zu=1000 zg=1000
    if [ "$uid" -ne 0 ]; then
        zu=$uid
        zg=$gid
    fi
    mkdir -p "$t/etc" "$t/home/zeta"
    printf 'root:x:0:0::/root:/bin/sh\nzeta:x:%s:%s::/home/zeta:/bin/sh\n' "$zu" "$zg" >"$t/etc/passwd"
    printf 'root:x:0:\nzeta:x:%s:\n' "$zg" >"$t/etc/group"
    if [ "$uid" -eq 0 ]; then
        chown "$zu:$zg" "$t/home/zeta"
    fi
}

results=$work/results.tsv
: >"$results"

# time_one SCENARIO ROUND TOOL RSS_FILE [--pty] CMD: append one result row
# (seconds timed, seconds before the clock started: see `run` above).
time_one() {
    local scenario=$1 round=$2 tool=$3 rss_file=$4 timed secs before rss
    shift 4
    : >"$rss_file"
    timed=$(python3 "$helper" run "$@")
    read -r secs before <<<"$timed"
    rss=$(sort "$rss_file" | tr ' \n' '=,' | sed 's/,$//')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$round" "$tool" "$secs" "$before" "$rss" >>"$results"
}

# tm LABEL: a /usr/bin/time prefix that appends "LABEL KiB" to $work/rss.
tm() { printf "/usr/bin/time -f '%s %%M' -a -o %s" "$1" "$work/rss"; }

zc_bundle() { # name round
    local name=$1 round=$2 out=$work/blob-$1.enc
    rm -f "$out" "$out.prev"
    time_one "bundle-$name" "$round" zeta-creds "$work/rss" -- \
        "$(tm zeta-creds) $zc bundle --manifest $work/manifest-$name.toml --source-root $work/src-$name \
         --out $out --usb-uuid $uuid --host perf-host --work-factor $log_n --no-backup --passphrase-fd 3 \
         3<$pass >$work/bundle-$name.log 2>&1"
}

age_bundle() {
    local name=$1 round=$2 out=$work/blob-$1.age
    rm -f "$out"
    time_one "bundle-$name" "$round" age "$work/rss" --pty "$pass" -- \
        "$(tm tar) tar -C $work/src-$name -cf - home/zeta/.config/bench \
         | $(tm age) age -e -p -o $out"
}

zc_restore() {
    local name=$1 round=$2 t=$work/t-zc
    rm -rf "$t"
    fresh_target "$t"
    sync_caches
    time_one "restore-$name" "$round" zeta-creds "$work/rss" -- \
        "$(tm zeta-creds) $zc restore --blob $work/blob-$name.enc --usb-uuid $uuid --host perf-host --target-root $t \
         --passphrase-fd 3 3<$pass >$work/restore-$name.log 2>&1"
}

age_restore() {
    local name=$1 round=$2 t=$work/t-age
    rm -rf "$t"
    mkdir -p "$t"
    sync_caches
    time_one "restore-$name" "$round" age "$work/rss" --pty "$pass" -- \
        "$(tm age) age -d $work/blob-$name.age | $(tm tar) tar -C $t -xf -"
}

# Keep the previous round's writes and deletions from landing in this
# one's timing (nothing to flush on tmpfs).
sync_caches() { sync; }

# Blobs to restore (made once, outside the timing).
for s in "${sets[@]}"; do
    read -r name _ <<<"$s"
    zc_bundle "$name" 0
    age_bundle "$name" 0
done
: >"$results"

echo "compare.sh: $rounds rounds at work factor $log_n"
for round in $(seq 1 "$rounds"); do
    for s in "${sets[@]}"; do
        read -r name _ <<<"$s"
        # Alternate who goes first, so that drift in the machine's load
        # does not favour one side.
        if [ $((round % 2)) -eq 1 ]; then
            zc_restore "$name" "$round"
            age_restore "$name" "$round"
        else
            age_restore "$name" "$round"
            zc_restore "$name" "$round"
        fi
        [ "$name" = floor ] && continue
        if [ $((round % 2)) -eq 1 ]; then
            zc_bundle "$name" "$round"
            age_bundle "$name" "$round"
        else
            age_bundle "$name" "$round"
            zc_bundle "$name" "$round"
        fi
    done
    printf '  round %d of %d done\n' "$round" "$rounds"
done

# Sanity: the restored trees are the sources (the last round's targets).
diff -r "$work/src-large/home/zeta/.config/bench" "$work/t-zc/home/zeta/.config/bench" >/dev/null ||
    { echo "compare.sh: zeta-creds restored something else than the source" >&2; exit 1; }
diff -r "$work/src-large/home/zeta/.config/bench" "$work/t-age/home/zeta/.config/bench" >/dev/null ||
    { echo "compare.sh: age | tar restored something else than the source" >&2; exit 1; }

{
    echo "## compare.sh $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), data and targets on $(df --output=fstype "$work" | tail -n 1)"
    echo
    echo "zeta-creds $("$zc" --version | cut -d' ' -f2), $(age --version | head -1 | sed 's/^/age /'), $(tar --version | head -1)"
    grep -h 'key derivation' "$work/bundle-large.log" | head -1 || true
    echo
    if [ "$log_n" -ne 18 ]; then
        echo "NOTE: age always uses work factor 18; at $log_n the ratios mean nothing (a smoke test)."
        echo
    fi
    python3 "$helper" report "$results" "$log_n" "$rounds"
} | tee "${out_file:-/dev/null}"
