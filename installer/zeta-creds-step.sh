#!/usr/bin/env bash
# zeta-creds installer step: seal the operator's credentials onto the ESP.
#
# The step is `zeta-creds install-step` (installer/README.md; `--help` lists
# its options, variables and exit codes). This shim keeps installers that
# call the script working: it finds the binary, takes ZETA_CREDS_PASSPHRASE
# out of the environment onto a pipe (fd 3), so that no process's
# environment holds it and a `bash -x` trace never shows it (tracing is off
# while it is expanded), and runs the step.
#
# `unset` does not clear a variable from /proc/PID/environ, which shows the
# environment a process started with, and every subshell this script forks
# would show it too. So, before anything else, the script puts the
# passphrase on fd 3 and executes itself again without the variable; only
# the short-lived subshell that writes the pipe ever holds it.
#
# The binary, first found: $ZETA_CREDS_BIN; zeta-creds beside this script; a
# source checkout's target/release/zeta-creds; --zeta-creds PATH; PATH.
set -euo pipefail

trace_was_on=""
secret_begin() { case $- in *x*) trace_was_on=1 && set +x ;; esac; }
secret_end() { if [ -n "$trace_was_on" ]; then trace_was_on="" && set -x; fi; }

secret_begin
if [ -n "${ZETA_CREDS_PASSPHRASE:-}" ]; then
    exec 3< <(printf '%s' "$ZETA_CREDS_PASSPHRASE")
    unset ZETA_CREDS_PASSPHRASE
    secret_end
    bash_opts=()
    case $- in *x*) bash_opts=(-x) ;; esac
    ZETA_CREDS_STEP_FD3=1 exec "$BASH" "${bash_opts[@]}" "${BASH_SOURCE[0]}" "$@"
fi
unset ZETA_CREDS_PASSPHRASE
secret_end

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

# The value of --zeta-creds (the binary the step runs), if given.
zc_opt="" prev=""
for arg in "$@"; do
    [ "$prev" != --zeta-creds ] || zc_opt=$arg
    case $arg in --zeta-creds=*) zc_opt=${arg#*=} ;; esac
    prev=$arg
done

zc=""
if [ -n "${ZETA_CREDS_BIN:-}" ]; then
    zc=$(command -v "$ZETA_CREDS_BIN") || zc=""
else
    for candidate in "$here/zeta-creds" "$here/../target/release/zeta-creds" "$zc_opt" zeta-creds; do
        if [ -n "$candidate" ] && zc=$(command -v "$candidate") && [ -f "$zc" ]; then
            break
        fi
        zc=""
    done
fi
if [ -z "$zc" ]; then
    printf 'zeta-creds-step: error: zeta-creds not found (%s)\n' "${ZETA_CREDS_BIN:-beside the script, on PATH or as --zeta-creds}" >&2
    printf 'zeta-creds-step: hint: install it on the live system, or pass --zeta-creds PATH or ZETA_CREDS_BIN\n' >&2
    exit 6
fi

# The passphrase is on fd 3 when the restart above put it there.
handover=()
if [ "${ZETA_CREDS_STEP_FD3:-}" = 1 ]; then
    handover=(--env-passphrase-fd 3)
fi
unset ZETA_CREDS_STEP_FD3

exec "$zc" install-step --shim "${BASH_SOURCE[0]}" "${handover[@]}" "$@"
