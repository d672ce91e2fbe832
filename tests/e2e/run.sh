#!/usr/bin/env bash
# tests/e2e: the whole chain, install -> reboot -> restore, and a reinstall,
# in the tests/vm guest (Debian bookworm, real systemd as PID 1, QEMU TCG).
#
#   1. install: installer/zeta-creds-step.sh runs on the host, on a scripted
#      terminal (asked whether to run, the passphrase typed twice), against
#      the guest's root tree (its /etc, taken out of the root image with
#      debugfs) and an ESP directory, reading the "USB stick" (a FAT image,
#      serial DEAD-BEEF) with blkid. The credentials come from a fake source
#      tree whose zeta is uid/gid 1000. The blob goes into the ESP image
#      (FAT, serial E5B0-0001, mounted by the guest at /esp) with mtools,
#      the step's /etc/zeta/usb-uuid into the root image with debugfs;
#   2. first boot, with the ESP and the stick attached and the unit rendered
#      from nixos-modules/unit.nix in the mode the step printed
#      (interactive): the harness answers the console prompt; the guest has
#      every credential at its path with the guest's own uid/gid for zeta
#      (1500, not the host's 1000) and the exact modes and contents,
#      zeta-creds-restore.service is active (exited) with status 0, no
#      passphrase file is left in /run, and the passphrase is in no field of
#      any journal entry nor on the console;
#   3. reinstall: a fresh guest root; the step (ZETA_CREDS_PICKER=1,
#      ZETA_CREDS_PASSPHRASE, no terminal) finds the blob on the ESP bound to
#      this stick and keeps it byte for byte; the next boot restores the same
#      credentials, checked as in 2;
#   4. a boot with the wrong stick attached (FAT serial CAFE-F00D) under
#      requireUsbPresent: the unit fails with exit 4 and the "is not
#      attached" message, asks no passphrase, writes nothing.
#
# The guest, its cache (target/vm-cache) and the guest-side collector are
# tests/vm's (tests/vm/build-guest.sh); the guest cache, the image
# helpers and the boot loop are tests/vm/lib.sh, shared with tests/vm. Needs root, QEMU, the Debian mirror on the first run (to build the
# guest), nix-instantiate, jq, mtools, debugfs, blkid, script; prints
# `SKIPPED: <reason>` and exits 77 without them. Takes about 2 minutes
# with a cached guest.
#
#   tests/e2e/run.sh
#   ZETA_E2E_KEEP=1 tests/e2e/run.sh   # keep the work directory, print its path
set -euo pipefail

repo=${ZETA_CREDS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"
started=$SECONDS

ASK_TIMEOUT=120
GUEST_UID=1500 # tests/vm/build-guest.sh
SOURCE_UID=1000
BOUND_SERIAL=DEADBEEF
OTHER_SERIAL=CAFEF00D
ESP_SERIAL=E5B00001 # mounted at /esp by the guest's fstab
GUEST_BINARY=/usr/local/bin/zeta-creds
PROMPT="Passphrase for zeta-creds blob"

skip() {
    printf 'SKIPPED: %s\n' "$*"
    exit 77
}
log() { printf '[e2e %3ds] %s\n' "$((SECONDS - started))" "$*"; }

[ "$(id -u)" -eq 0 ] || skip "tests/e2e needs root (the guest build, owners in the fake source tree)"
for tool in qemu-system-x86_64 mmdebstrap mkfs.vfat mcopy mtype mkfs.ext4 debugfs dpkg-deb \
    apt-get apt-cache busybox cpio depmod gzip nix-instantiate jq blkid script setsid cargo; do
    command -v "$tool" >/dev/null 2>&1 ||
        skip "$tool not found (scripts/setup-debian.sh installs what tests/e2e needs)"
done
[ -e /usr/share/mmdebstrap/hooks/merged-usr ] || skip "mmdebstrap's merged-usr hook is missing"

# shellcheck source=tests/installer/lib.sh
. "$repo/tests/installer/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/zeta-creds-e2e.XXXXXX")
# shellcheck source=tests/vm/lib.sh
. "$repo/tests/vm/lib.sh"
vm_fail() { bad "$@"; }
cleanup() {
    vm_stop
    sampler_stop
    if [ -n "${ZETA_E2E_KEEP:-}" ]; then
        echo "kept the work directory: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

## The binary and the guest (tests/vm's, cached) ###########################
log "cargo build --release -p zeta-creds"
cargo build --release --locked -p zeta-creds 2>&1 | tail -n 1
binary=$repo/target/release/zeta-creds
step=$repo/installer/zeta-creds-step.sh

# tests/vm's guest, from the same cache.
vm_guest

## Fixtures #################################################################
# The operator's logged-in credentials, zeta = uid/gid 1000 (the guest has 1500).
src=$work/src
make_target "$src" creds
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' "zeta:x:$SOURCE_UID:$SOURCE_UID:zeta:/home/zeta:/bin/sh" >"$src/etc/passwd"
printf '%s\n' 'root:x:0:' "zeta:x:$SOURCE_UID:" >"$src/etc/group"
chown -R "$SOURCE_UID:$SOURCE_UID" "$src/home/zeta"
(cd "$src" && find etc home var -type f ! -name passwd ! -name group -exec sha256sum {} + |
    sed 's#  #  /#' | sort -k 2) >"$work/expected-sums.txt"

pass='marmalade lighthouse tundra velvet'
printf '%s\n' "$pass" >"$work/passphrase" # typed at the console, from this file
chmod 0600 "$work/passphrase"
printf '%s\n' "$pass" >"$work/secrets" # for lib.sh's sampler and expect_no_secret

fat "$work/usb-bound.img" "$BOUND_SERIAL" 1024
fat "$work/usb-other.img" "$OTHER_SERIAL" 1024

# unit_for, unit_cmds, debugfs_write and put: tests/vm/lib.sh.

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

## Booting: boot NAME ROOT ESP USB ANSWER (tests/vm/lib.sh) ###############

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

interactive_cfg=$(jq -cn --argjson t "$ASK_TIMEOUT" '{passphrase: {mode: "interactive", timeout: $t}}')
wrong_stick_cfg=$(jq -cn --argjson t "$ASK_TIMEOUT" '{requireUsbPresent: true, usbWait: 5, passphrase: {mode: "interactive", timeout: $t}}')

## 1. install ###############################################################
echo "== 1. install: the step on a terminal, against the guest's root tree"
fresh_root install
mkdir -p "$work/esp1"
sampler_start
cmd=$(printf '%q ' env "TMPDIR=$work" "$step" --target "$work/install.tree" --esp "$work/esp1" \
    --usb-device "$work/usb-bound.img" --source-root "$src" --zeta-creds "$binary" --work-factor 10)
rc=0
tty_drive "$work/step1.log" 30 "$cmd" \
    "Seal your credentials now? [Y/n]" "" \
    "New passphrase for" "$pass" \
    "Repeat the passphrase:" "$pass" || rc=$?
sampler_stop
expect_eq "step: exit status" "$rc" 0
[ "$rc" -eq 0 ] || show_log "$work/step1.log"
expect_grep "step: prints the mode the unit is rendered with" "$work/step1.log" \
    'zeta.credsRestore.passphrase.mode = "interactive";'
expect_no_secret "step: the passphrase was not echoed" "$work/step1.log"
expect_eq "step: passphrase in no process argv" "$(cat "$work/argv-hits")" ""
expect_eq "step: usb-uuid" "$(cat "$work/install.tree/etc/zeta/usb-uuid")" DEAD-BEEF
fat "$work/esp.img" "$ESP_SERIAL" 8192 "$work/esp1/zeta-creds.enc" zeta-creds.enc
install_root install "$interactive_cfg"

## 2. first boot ############################################################
echo "== 2. first boot: the harness answers the prompt, the credentials are restored"
boot first "$work/install.img" "$work/esp.img" "$work/usb-bound.img" answer
active_exited first
expect_eq "first: prompts on the console" "$(prompts first)" 1
restored first
expect_journal first "created"
no_passphrase first
[ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/install.img"

## 3. reinstall #############################################################
echo "== 3. reinstall: a fresh root, the step keeps the blob, the next boot restores it"
fresh_root reinstall
mkdir -p "$work/esp2"
mcopy -n -i "$work/esp.img" ::/zeta-creds.enc "$work/esp2/zeta-creds.enc"
cp "$work/esp2/zeta-creds.enc" "$work/blob.before"
sampler_start
rc=0
ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass TMPDIR=$work setsid -w "$step" \
    --target "$work/reinstall.tree" --esp "$work/esp2" --usb-device "$work/usb-bound.img" \
    --zeta-creds "$binary" --work-factor 10 \
    </dev/null >"$work/step2.log" 2>&1 || rc=$?
sampler_stop
expect_eq "step: exit status" "$rc" 0
[ "$rc" -eq 0 ] || show_log "$work/step2.log"
expect_grep "step: found the blob bound to this stick" "$work/step2.log" "already holds a blob bound to this stick"
expect_grep "step: kept it" "$work/step2.log" "kept the blob already on the ESP"
if cmp -s "$work/esp2/zeta-creds.enc" "$work/blob.before"; then
    ok "step: the blob is unchanged, byte for byte"
else
    bad "step: the blob changed"
fi
expect_eq "step: passphrase in no process argv" "$(cat "$work/argv-hits")" ""
fat "$work/esp.img" "$ESP_SERIAL" 8192 "$work/esp2/zeta-creds.enc" zeta-creds.enc
install_root reinstall "$interactive_cfg"
boot reboot "$work/reinstall.img" "$work/esp.img" "$work/usb-bound.img" answer
active_exited reboot
restored reboot
expect_journal reboot "created"
no_passphrase reboot
[ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/reinstall.img"

## 4. the wrong stick #######################################################
echo "== 4. requireUsbPresent with the wrong stick attached"
fresh_root wrong
cp "$work/reinstall.tree/etc/zeta/usb-uuid" "$work/wrong.tree/etc/zeta/usb-uuid"
install_root wrong "$wrong_stick_cfg"
boot wrong "$work/wrong.img" "$work/esp.img" "$work/usb-other.img" no
expect_prop wrong ActiveState failed
expect_prop wrong ExecMainStatus 4
expect_prop wrong NRestarts 0
expect_journal wrong "USB stick dead-beef is not attached"
expect_eq "wrong: prompts on the console" "$(prompts wrong)" 0
nothing_written wrong
no_passphrase wrong
[ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/wrong.img"

log "total"
if [ "$failures" -gt 0 ]; then
    echo "tests/e2e: $failures check(s) failed"
    exit 1
fi
echo "tests/e2e: install, first boot, reinstall and the wrong stick all passed"
