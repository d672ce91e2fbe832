#!/usr/bin/env bash
# tests/e2e: the whole chain, install -> reboot -> restore, and a reinstall,
# in the tests/vm guest (Debian bookworm, real systemd as PID 1, QEMU TCG).
#
# The stages are in tests/e2e/scenarios.sh, one block each: 1. install:
# the step on a terminal against the guest's root tree; 2. first boot:
# the credentials restored from the guest's view; 3. reinstall: the step
# keeps the blob, the next boot restores it; 4. the wrong stick under
# requireUsbPresent: exit 4, nothing written; 5. the real reinstall: a
# live guest (tests/e2e/live.sh) runs `install-step rescue` on the
# machine's disks, the ESP is reformatted with a new serial and the root is
# fresh, the step takes the rescued blob, the next boot restores it; 6. a
# new machine from the stash partition of a partitioned stick, the step
# run in the live guest against a new root and an empty ESP; 7. node B's
# blob on node A's ESP: exit 4, no prompt, nothing written.
#
# The guest, its cache (target/vm-cache) and the guest-side collector are
# tests/vm's (tests/vm/build-guest.sh); the guest cache, the image
# helpers and the boot loop are tests/vm/lib.sh, shared with tests/vm. Needs root, QEMU, the Debian mirror on the first run (to build the
# guest), nix-instantiate, jq, mtools, debugfs, blkid, script; prints
# `SKIPPED: <reason>` and exits 77 without them. Takes about 8 minutes
# with a cached guest (8 boots under TCG; longer on a loaded machine).
#
#   tests/e2e/run.sh
#   ZETA_E2E_KEEP=1 tests/e2e/run.sh   # keep the work directory, print its path
#   ZETA_E2E_SCENARIOS="1 6" tests/e2e/run.sh # only these stages (while
#       developing: each starts from what the ones before left; most need 1)
set -euo pipefail

repo=${ZETA_CREDS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"
started=$SECONDS

ASK_TIMEOUT=120
GUEST_UID=1500 # tests/vm/build-guest.sh
SOURCE_UID=1000
BOUND_SERIAL=DEADBEEF
OTHER_SERIAL=CAFEF00D
ESP_SERIAL=E5B00001 # mounted at /boot by the guest's fstab
REINSTALL_ESP_SERIAL=E5B00002 # the ESP reformatted by the real reinstall
NEW_ESP_SERIAL=E5B00003       # the new machine's ESP
STASH_SERIAL=5E7A0001         # the stick's ZETA-CREDS partition
NEW_ROOT_UUID=7e57c0de-0000-4000-8000-00000000e2e6 # the new machine's root (ext4)
GUEST_BINARY=/usr/local/bin/zeta-creds
PROMPT="Passphrase for zeta-creds blob"

skip() {
    printf 'SKIPPED: %s\n' "$*"
    exit 77
}
log() { printf '[e2e %3ds] %s\n' "$((SECONDS - started))" "$*"; }

[ "$(id -u)" -eq 0 ] || skip "tests/e2e needs root (the guest build, owners in the fake source tree)"
for tool in qemu-system-x86_64 mmdebstrap mkfs.vfat mcopy mtype mkfs.ext4 debugfs dpkg-deb \
    apt-get apt-cache busybox cpio depmod gzip nix-instantiate jq blkid script setsid cargo \
    tune2fs mdir mtype truncate; do
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
# The zeta-creds whose argv and environment tests/installer/lib.sh's
# sampler watches (it has no wrapper here).
real_zc=$binary
zcw=$binary
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

# fresh_root, install_root and the checks: tests/e2e/lib.sh; unit_for,
# unit_cmds, debugfs_write, put and boot: tests/vm/lib.sh.
# shellcheck source=tests/e2e/lib.sh
. "$repo/tests/e2e/lib.sh"
# shellcheck source=tests/e2e/scenarios.sh
. "$repo/tests/e2e/scenarios.sh"

## The stages, in the order written ########################################
for s in "${scenario_ids[@]}"; do
    if [ -n "${ZETA_E2E_SCENARIOS:-}" ] && [[ " $ZETA_E2E_SCENARIOS " != *" $s "* ]]; then
        continue
    fi
    echo "== $s. ${scenario_titles[$s]}"
    "scenario_$s"
done

log "total"
if [ "$failures" -gt 0 ]; then
    echo "tests/e2e: $failures check(s) failed"
    exit 1
fi
if [ -n "${ZETA_E2E_SCENARIOS:-}" ]; then
    echo "tests/e2e: stages $ZETA_E2E_SCENARIOS passed (the others were not run)"
else
    echo "tests/e2e: install, first boot, reinstall, the wrong stick, the real reinstall, the new machine from the stash and the other host's blob all passed"
fi
