#!/usr/bin/env bash
# Helpers of tests/e2e/run.sh and its scenarios.sh: a guest root image with
# its /etc as a tree for the installer step, and the checks of a boot from
# the guest's own view (they replace tests/vm/lib.sh's, which check
# tests/vm's fixture). Sourced after tests/installer/lib.sh (ok, bad,
# expect_*) and tests/vm/lib.sh, never run.
# shellcheck disable=SC2154 # $work, $guest, ... are the caller's

# fresh_root NAME: a fresh guest root image and, beside it, its /etc as a
# tree for the installer step (NAME.tree/etc).
fresh_root() {
    cp --sparse=always "$guest/root.img" "$work/$1.img"
    mkdir -p "$work/$1.tree"
    debugfs -R "rdump /etc $work/$1.tree" "$work/$1.img" >"$work/$1.rdump.log" 2>&1
    [ -f "$work/$1.tree/etc/passwd" ] || {
        cat "$work/$1.rdump.log"
        echo "tests/e2e: cannot take /etc out of the guest image"
        exit 1
    }
}

# install_root NAME CFG_JSON: our binary, the rendered unit (enabled) and
# the usb-uuid file the step wrote into NAME.tree, into the root image.
install_root() {
    local name=$1
    unit_for "$name" "$2"
    local cmds
    mapfile -t cmds < <(
        put "$binary" "$GUEST_BINARY" 755
        unit_cmds "$name"
        put "$work/$name.tree/etc/zeta/usb-uuid" /etc/zeta/usb-uuid 644
    )
    debugfs_write "$work/$name.img" "${cmds[@]}"
}

## Checks, from the guest's view ############################################
prop() { sed -n "s/^$2=//p" "$work/$1.results/unit.txt"; }
expect_prop() { expect_eq "$1: $2" "$(prop "$1" "$2")" "$3"; }
prompts() { grep -cF "$PROMPT" "$work/$1.results/console.log" || true; }
expect_journal() {
    if grep -qiF -- "$2" "$work/$1.results/unit-journal.txt"; then
        ok "$1: the unit's journal says \"$2\""
    else
        bad "$1: the unit's journal does not say \"$2\":"
        sed 's/^/        | /' "$work/$1.results/unit-journal.txt"
    fi
}
no_passphrase() {
    local f
    for f in journal-verbose.txt journal.txt unit-journal.txt status.txt console.log; do
        [ -f "$work/$1.results/$f" ] || continue
        expect_no_secret "$1: no passphrase in the guest's $f" "$work/$1.results/$f"
    done
    expect_eq "$1: passphrase files left in /run" "$(cat "$work/$1.results/run.txt")" ""
}
# The paths a fresh guest has in the trees the collector lists.
pristine='^/home/zeta(/\.bashrc|/\.profile|/\.bash_logout)? |^/root(/\.bashrc|/\.profile|/\.ssh)? |^/etc/zeta(/usb-uuid)? |^/var/lib/sops-nix |^/var/lib/zeta-creds '
expected_tree="/etc/ssh 0 0 root root 755 d
/etc/ssh/ssh_host_ed25519_key 0 0 root root 600 f
/etc/ssh/ssh_host_ed25519_key.pub 0 0 root root 644 f
/etc/zeta/operator-authorized-keys 0 0 root root 644 f
/home/zeta/.codex $GUEST_UID $GUEST_UID zeta zeta 700 d
/home/zeta/.codex/auth.json $GUEST_UID $GUEST_UID zeta zeta 600 f
/home/zeta/.config $GUEST_UID $GUEST_UID zeta zeta 700 d
/home/zeta/.config/gh $GUEST_UID $GUEST_UID zeta zeta 700 d
/home/zeta/.config/gh/hosts.yml $GUEST_UID $GUEST_UID zeta zeta 600 f
/var/lib/sops-nix/key.txt 0 0 root root 600 f
/var/lib/zeta-creds/state.json 0 0 root root 600 f"
restored() {
    local name=$1 got line missing=0
    got=$(grep -Ev "$pristine" "$work/$name.results/tree.txt" || true)
    if [ "$got" = "$expected_tree" ]; then
        ok "$name: every credential at its path, zeta's owned by the guest's uid $GUEST_UID (the source had $SOURCE_UID), exact modes, nothing else"
    else
        bad "$name: the restored tree differs (guest view: path uid gid user group mode type):"
        diff <(printf '%s\n' "$expected_tree") <(printf '%s\n' "$got") | sed 's/^/        /' || true
    fi
    while IFS= read -r line; do
        grep -qxF -- "$line" "$work/$name.results/sums.txt" || missing=$((missing + 1))
    done <"$work/expected-sums.txt"
    expect_eq "$name: restored files whose content differs from the source" "$missing" 0
    expect_eq "$name: /etc/zeta/usb-uuid in the guest" \
        "$(grep '^/etc/zeta/usb-uuid ' "$work/$name.results/tree.txt")" "/etc/zeta/usb-uuid 0 0 root root 644 f"
}
nothing_written() {
    local extra
    extra=$(grep -Ev "$pristine" "$work/$1.results/tree.txt" || true)
    if [ -z "$extra" ]; then
        ok "$1: nothing written (the guest's trees are as built)"
    else
        bad "$1: found what the restore must not have written:"
        printf '        %s\n' "$extra"
    fi
}
active_exited() {
    expect_prop "$1" ActiveState active
    expect_prop "$1" SubState exited
    expect_prop "$1" Result success
    expect_prop "$1" ExecMainStatus 0
    if grep -q 'Active: active (exited)' "$work/$1.results/status.txt"; then
        ok "$1: systemctl status says active (exited)"
    else
        bad "$1: systemctl status does not say active (exited):"
        sed 's/^/        | /' "$work/$1.results/status.txt"
    fi
}
