#!/usr/bin/env bash
# Helpers for tests/installer/run.sh and its scenarios.sh (and for
# tests/e2e, which drives the same step): the scenario list, checks that
# count failures, a fake target tree, a scripted terminal, an argv
# sampler, and the step's runs and checks. Sourced, never run; the caller
# sets `set -euo pipefail` and $work (a mktemp -d directory it removes).
# shellcheck disable=SC2154 # $work is the caller's

## Scenarios ################################################################
# A scenarios.sh file is a list of blocks, each `scenario ID TITLE` and
# then `scenario_ID() { ... }`; run_scenarios runs them in that order.
# (tests/vm/lib.sh has the same list, for tests/e2e, which sources both.)
scenario_ids=()
declare -A scenario_titles=() scenario_flags=()
# scenario ID TITLE [FLAG]: register scenario_ID, printed as "--- ID. TITLE".
# shellcheck disable=SC2034 # the lists are read by the caller
scenario() {
    scenario_ids+=("$1")
    scenario_titles[$1]=$2
    scenario_flags[$1]=${3:-}
}
# run_scenarios: every registered scenario, in the order written.
run_scenarios() {
    local id
    for id in "${scenario_ids[@]}"; do
        echo "--- $id. ${scenario_titles[$id]}"
        "scenario_$id"
    done
}

## Checks ###################################################################

failures=0

ok() { printf '  ok    %s\n' "$*"; }
bad() {
    printf '  FAIL  %s\n' "$*"
    failures=$((failures + 1))
}

# expect_eq WHAT GOT WANT
expect_eq() {
    if [ "$2" = "$3" ]; then
        ok "$1: $2"
    else
        bad "$1: got '$2', want '$3'"
    fi
}

# expect_grep WHAT FILE FIXED-STRING: FILE contains the string.
expect_grep() {
    if grep -qF -- "$3" "$2"; then
        ok "$1"
    else
        bad "$1: '$3' not in $2"
        sed 's/^/        | /' "$2" | tail -n 25
    fi
}

# expect_no_grep WHAT FILE FIXED-STRING: FILE does not contain the string.
expect_no_grep() {
    if grep -qF -- "$3" "$2"; then
        bad "$1: '$3' found in $2"
    else
        ok "$1"
    fi
}

# expect_no_secret WHAT FILE: FILE holds none of the lines of $work/secrets.
# (The patterns come from that file: a passphrase on grep's command line
# would be caught by the argv sampler, rightly.)
expect_no_secret() {
    if grep -qF -f "$work/secrets" -- "$2"; then
        bad "$1: a passphrase is in $2"
    else
        ok "$1"
    fi
}

# expect_missing WHAT PATH
expect_missing() {
    if [ -e "$2" ] || [ -L "$2" ]; then
        bad "$1: $2 exists"
    else
        ok "$1"
    fi
}

# show_log FILE: the tail of a run's output, after a failed check.
show_log() {
    sed 's/^/        | /' "$1" | tail -n 40
}

# make_target DIR [creds]: a fake root of the system being installed: users
# root and zeta (uid 1000, group users), etc/hostname (node-a, linked
# into a fake store as NixOS does), and with `creds` the logins, host
# keys, operator keys and age key the default manifest carries: the
# $CREDS_ENTRIES files below (gh's hosts.yml, Codex's auth.json, an SSH
# host key pair, the operator keys, the sops-nix age key), each its own
# entry of the blob.
# shellcheck disable=SC2034 # read by scenarios.sh
CREDS_ENTRIES=6
make_target() {
    local root=$1
    mkdir -p "$root/etc" "$root/home/zeta" "$root/root"
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'zeta:x:1000:100:zeta:/home/zeta:/bin/sh' >"$root/etc/passwd"
    printf '%s\n' 'root:x:0:' 'users:x:100:zeta' >"$root/etc/group"
    # The host name as NixOS installs it: etc/hostname -> /etc/static/hostname
    # -> (etc/static) /nix/store/...-etc/etc/hostname, absolute links of the
    # target that the step resolves inside it (the blob is sealed for it).
    mkdir -p "$root/nix/store/0000-etc/etc"
    printf '%s\n' "${TARGET_HOST:-node-a}" >"$root/nix/store/0000-etc/etc/hostname"
    ln -sfn /nix/store/0000-etc/etc "$root/etc/static"
    ln -sfn /etc/static/hostname "$root/etc/hostname"
    chown 1000:100 "$root/home/zeta"
    chmod 0700 "$root/home/zeta"
    [ "${2:-}" = creds ] || return 0
    mkdir -p "$root/home/zeta/.config/gh" "$root/home/zeta/.codex" \
        "$root/etc/ssh" "$root/etc/zeta" "$root/var/lib/sops-nix"
    printf 'github.com:\n    oauth_token: gho_testtoken0001\n    user: zeta\n' \
        >"$root/home/zeta/.config/gh/hosts.yml"
    printf '{"tokens":{"access_token":"codex-test-token"}}\n' >"$root/home/zeta/.codex/auth.json"
    chown -R 1000:100 "$root/home/zeta/.config" "$root/home/zeta/.codex"
    chmod 0700 "$root/home/zeta/.config/gh" "$root/home/zeta/.codex"
    chmod 0600 "$root/home/zeta/.config/gh/hosts.yml" "$root/home/zeta/.codex/auth.json"
    printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\ntest host key\n-----END OPENSSH PRIVATE KEY-----\n' \
        >"$root/etc/ssh/ssh_host_ed25519_key"
    printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItesthostkey root@test\n' \
        >"$root/etc/ssh/ssh_host_ed25519_key.pub"
    chmod 0600 "$root/etc/ssh/ssh_host_ed25519_key"
    printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIoperator zeta@laptop\n' \
        >"$root/etc/zeta/operator-authorized-keys"
    printf 'AGE-SECRET-KEY-1TESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTEST\n' \
        >"$root/var/lib/sops-nix/key.txt"
    chmod 0600 "$root/var/lib/sops-nix/key.txt"
}

# set_host ROOT NAME: give a target made by make_target another host name
# (written where NixOS keeps it: etc/hostname is a link into the store).
set_host() {
    printf '%s\n' "$2" >"$1/nix/store/0000-etc/etc/hostname"
}

# tty_drive TRANSCRIPT TIMEOUT CMD [EXPECT ANSWER]...: run the shell command
# string CMD under script(1), on a fresh pseudo-terminal that is its
# controlling terminal, and answer like expect(1): wait until EXPECT shows
# up in the output (after the previous match), then type ANSWER and Enter.
# Returns CMD's exit status; 124 when an EXPECT did not show up within
# TIMEOUT seconds (the command is then killed).
tty_drive() {
    local transcript=$1 timeout=$2 cmd=$3
    shift 3
    local fifo status=0 offset=0 text rest before deadline fd
    fifo=$(mktemp -u "$work/tty-in.XXXXXX")
    mkfifo "$fifo"
    : >"$transcript"
    script -qfec "$cmd" /dev/null <"$fifo" >"$transcript" 2>&1 &
    local pid=$!
    exec {fd}>"$fifo"
    while [ "$#" -ge 2 ]; do
        deadline=$((SECONDS + timeout))
        while :; do
            text=$(<"$transcript")
            rest=${text:offset}
            if [[ $rest == *"$1"* ]]; then
                before=${rest%%"$1"*}
                offset=$((offset + ${#before} + ${#1}))
                break
            fi
            if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
                printf '  (tty_drive: "%s" did not appear)\n' "$1"
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                exec {fd}>&-
                rm -f "$fifo"
                return 124
            fi
            sleep 0.02
        done
        # The prompt is printed after echo is off (bash's read -s), so an
        # answer typed now is never echoed; the transcript proves it.
        printf '%s\n' "$2" >&"$fd"
        shift 2
    done
    wait "$pid" || status=$?
    exec {fd}>&-
    rm -f "$fifo"
    return "$status"
}

# The argv sampler: while the tests run, read every process's command line
# (and the environment of every process of the zeta-creds under test,
# $real_zc or its wrapper $zcw) over and over, and
# record any that holds one of the lines of $work/secrets, and which
# zeta-creds subcommands it saw. Pure bash (mapfile), so sampling starts no
# process of its own that could hold a secret.
sampler_loop() {
    local f pid c secret sub
    local -a args secrets
    local -A seen=()
    mapfile -t secrets <"$work/secrets"
    while [ -e "$work/sampling" ]; do
        for f in /proc/[0-9]*/cmdline; do
            args=()
            mapfile -d '' -t args 2>/dev/null <"$f" || continue
            [ "${#args[@]}" -gt 0 ] || continue
            c=${args[*]}
            pid=${f#/proc/}
            pid=${pid%/cmdline}
            for secret in "${secrets[@]}"; do
                if [[ $c == *"$secret"* ]]; then
                    printf 'argv of pid %s (%s) holds a passphrase\n' "$pid" "${args[0]}" >>"$work/argv-hits"
                fi
            done
            # Only the zeta-creds under test (this checkout's build, or the
            # wrapper that execs it): another zeta-creds on the machine, a
            # developer's `cargo test` say, may hold a test passphrase in its
            # environment on purpose.
            if [[ ${args[0]} == "$real_zc" || ${args[1]:-} == "$real_zc" ||
                ${args[0]} == "$zcw" || ${args[1]:-} == "$zcw" ]]; then
                if [[ ${args[0]} == "$real_zc" || ${args[0]} == "$zcw" ]]; then sub=${args[1]:-}; else sub=${args[2]:-}; fi
                if [ -z "${seen[$sub]:-}" ]; then
                    seen[$sub]=1
                    printf '%s\n' "$sub" >>"$work/argv-seen"
                fi
                args=()
                mapfile -d '' -t args 2>/dev/null <"/proc/$pid/environ" || true
                c=${args[*]}
                for secret in "${secrets[@]}" ZETA_CREDS_PASSPHRASE=; do
                    if [[ $c == *"$secret"* ]]; then
                        printf 'environment of zeta-creds pid %s holds %s\n' "$pid" \
                            "$([ "$secret" = ZETA_CREDS_PASSPHRASE= ] && echo ZETA_CREDS_PASSPHRASE || echo a passphrase)" \
                            >>"$work/argv-hits"
                    fi
                done
            fi
        done
        sleep 0.01
    done
}

sampler_pid=""
sampler_start() {
    : >"$work/argv-hits"
    : >"$work/argv-seen"
    : >"$work/sampling"
    sampler_loop &
    sampler_pid=$!
}
sampler_stop() {
    rm -f "$work/sampling"
    if [ -n "$sampler_pid" ]; then
        wait "$sampler_pid" 2>/dev/null || true
        sampler_pid=""
    fi
}

## The step and its checks (tests/installer/run.sh sets $step, $zcw,
## $real_zc) #################################################################
# run_step LOG ARGS...: the step without a terminal (a new session, stdin
# /dev/null), the test binary, work factor 10. Exit status in $rc.
rc=0
run_step() {
    local log=$1
    shift
    : >"$work/calls"
    rc=0
    TMPDIR=$work/tmp setsid -w "$step" --zeta-creds "$zcw" --work-factor 10 "$@" \
        </dev/null >"$log" 2>&1 || rc=$?
}

# tty_step LOG TIMEOUT ARGS -- [EXPECT ANSWER]...: the step on a scripted
# terminal. Exit status in $rc.
tty_step() {
    local log=$1 args=() cmd
    shift
    while [ "$1" != -- ]; do
        args+=("$1")
        shift
    done
    shift
    : >"$work/calls"
    cmd=$(printf '%q ' env "TMPDIR=$work/tmp" "$step" --zeta-creds "$zcw" --work-factor 10 "${args[@]}")
    rc=0
    tty_drive "$log" 30 "$cmd" "$@" || rc=$?
}

# header BLOB FIELD: one field of `zeta-creds inspect --json` (docs/JSON.md);
# null (an empty persona) is printed as nothing.
header() {
    "$real_zc" inspect --json "$1" | jq -r --arg f "$2" '.[$f] // empty'
}
# entry_count BLOB PASSPHRASE: entries, as `zeta-creds verify --json` counts.
entry_count() {
    "$real_zc" verify --blob "$1" --json --passphrase-fd 3 3< <(printf '%s' "$2") 2>/dev/null |
        jq -r '.counts.entries // empty'
}

# check_uuid_file TARGET WANT
check_uuid_file() {
    local f=$1/etc/zeta/usb-uuid
    if [ ! -f "$f" ]; then
        bad "$f was not written"
        return
    fi
    expect_eq "usb-uuid content" "$(cat "$f")" "$2"
    expect_eq "usb-uuid mode and owner" "$(stat -c '%a %U:%G' "$f")" "644 root:root"
    local leftovers
    leftovers=$(find "$1/etc/zeta" -name '.usb-uuid.*' | wc -l)
    expect_eq "temporary usb-uuid files left" "$leftovers" 0
}

# nothing_written TARGET ESP: the skip and failure paths leave no trace.
nothing_written() {
    expect_missing "no usb-uuid file" "$1/etc/zeta/usb-uuid"
    expect_missing "no blob on the ESP" "$2/zeta-creds.enc"
    local n
    n=$(find "$2" -mindepth 1 | wc -l)
    expect_eq "files on the ESP" "$n" 0
}

# sealed_ok NAME ROOT PCRS-ARG PASSPHRASE: what a successful seal leaves.
sealed_ok() {
    local name=$1 root=$2 pcrs=$3 pp=$4 cred=$2/etc/credstore.encrypted/zeta-creds-passphrase argv want_sha
    argv=$(sed '$d' "$work/creds-argv" 2>/dev/null | tr '\n' ' ')
    expect_eq "$name: systemd-creds argv" "$argv" "encrypt --with-key=tpm2 $pcrs --name=passphrase - "
    case $(tail -n 1 "$work/creds-argv" 2>/dev/null) in
    "$root"/etc/credstore.encrypted/.zeta-creds-passphrase.*) ok "$name: encrypted into a temporary file beside the credential" ;;
    *) bad "$name: encrypt's output is $(tail -n 1 "$work/creds-argv" 2>/dev/null)" ;;
    esac
    want_sha=$(printf '%s' "$pp" | sha256sum | cut -d ' ' -f 1)
    expect_eq "$name: systemd-creds read the passphrase on stdin (sha256)" "$(cat "$work/creds-stdin-sha" 2>/dev/null)" "$want_sha"
    if [ -f "$cred" ]; then
        expect_eq "$name: credential mode and owner" "$(stat -c '%a %U:%G' "$cred")" "600 root:root"
        expect_eq "$name: credential directory mode and owner" "$(stat -c '%a %U:%G' "$root/etc/credstore.encrypted")" "700 root:root"
        expect_eq "$name: credential content (what systemd-creds wrote)" "$(cat "$cred")" "FAKE-SEALED $want_sha"
        expect_eq "$name: temporary files left" "$(find "$root/etc/credstore.encrypted" -name '.zeta-creds-passphrase.*' | wc -l)" 0
    else
        bad "$name: $cred was not written"
    fi
}
# not_sealed NAME ROOT LOG WHY: the fallback to the console prompt.
not_sealed() {
    expect_eq "$1: exit status (the blob is sealed all the same)" "$rc" 0
    expect_grep "$1: says the passphrase was not sealed" "$3" "the passphrase was NOT sealed to the TPM2: $4"
    expect_grep "$1: says the system asks on the console" "$3" "will ask for the passphrase on the console instead"
    expect_grep "$1: NixOS line: interactive" "$3" 'zeta.credsRestore.passphrase.mode = "interactive";'
    expect_missing "$1: no credential" "$2/etc/credstore.encrypted/zeta-creds-passphrase"
    if [ -d "$2/etc/credstore.encrypted" ]; then
        expect_eq "$1: nothing left in the credential directory" "$(find "$2/etc/credstore.encrypted" -mindepth 1 | wc -l)" 0
    fi
    check_uuid_file "$2" DEAD-BEEF
}
