#!/usr/bin/env bash
# tests/installer: installer/zeta-creds-step.sh end to end on the host,
# against fake target trees, a directory as the ESP, and FAT images made
# with `mkfs.vfat -i SERIAL` as the live USB sticks (blkid reads an image
# file as it reads a device): DEAD-BEEF is "this" stick, CAFE-F00D another.
#
# The scenarios are in tests/installer/scenarios.sh, one block each (what
# it proves, its setup, the step run and its checks), run in the order
# written over the helpers of tests/installer/lib.sh: A. fresh install
# without a terminal; B. on a terminal; C. the opt-outs; D. to J. a
# reinstall (keep, re-bundle, wrong passphrase, another stick, an
# unreadable blob); K. failures leave nothing half-written; L. the stick
# found with findmnt; M. usage errors; N. --seal-tpm2; O. to R. a wiped
# ESP served from the rescue directory, a new machine from the stash, a
# read-only and a full stash, a fleet; S. --user and an unknown user
# before any passphrase; T. a mistyped passphrase during a re-bundle;
# U. rescue of the stash (every host's blob, bad files named); V. rescue
# re-seals from the old root still on the disk (an ext4 image).
# Throughout, a sampler reads every process's argv (and every zeta-creds
# process's environment) and must never find a passphrase; and no file
# under the targets, the ESPs or the step's TMPDIR may hold one.
#
# Needs root (the fake trees have owners), mkfs.vfat, mkfs.ext4, blkid, losetup,
# script, setsid and cargo; prints `SKIPPED: <reason>` and exits 77 without
# them. Takes about 15 s.
#
#   tests/installer/run.sh
#   ZETA_INSTALLER_KEEP=1 tests/installer/run.sh   # keep the work directory (logs, transcripts)
set -euo pipefail

repo=${ZETA_CREDS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"
started=$SECONDS

skip() {
    printf 'SKIPPED: %s\n' "$*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "tests/installer needs root (the fake target trees have owners)"
for tool in mkfs.vfat mkfs.ext4 blkid losetup script setsid jq cargo; do
    command -v "$tool" >/dev/null 2>&1 ||
        skip "$tool not found (scripts/setup-debian.sh installs what tests/installer needs)"
done

# shellcheck source=tests/installer/lib.sh
. "$repo/tests/installer/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/zeta-installer-test.XXXXXX")
cleanup() {
    local status=$?
    sampler_stop
    if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ -s "$work/argv-hits" ]; then
        echo "FAIL: a passphrase was found before the run stopped:"
        sort -u "$work/argv-hits" | sed 's/^/        | /'
    fi
    # A scenario stopped half-way may leave its tmpfs stash mounted.
    local m
    for m in "$work/Q/ro" "$work/Q/full"; do
        if mountpoint -q "$m" 2>/dev/null; then umount "$m" || true; fi
    done
    if [ -n "${ZETA_INSTALLER_KEEP:-}" ]; then
        echo "kept the work directory: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
# errtrace: the scenarios run as functions, and the trap must see them too.
set -o errtrace
trap 'echo "tests/installer: stopped by a failing command at line $LINENO (the checks above say what went wrong)"' ERR

echo "building zeta-creds (cargo build --release --locked -p zeta-creds)"
cargo build --release --locked -p zeta-creds 2>&1 | tail -n 1
real_zc=$repo/target/release/zeta-creds
step=$repo/installer/zeta-creds-step.sh
[ -x "$step" ] || {
    echo "FAIL: $step is missing or not executable"
    exit 1
}

pass='correct horse battery staple'
pass2='tangerine submarine orbits quietly'
wrong='purple elephant dances nightly'
weak='hunter2'
printf '%s\n' "$pass" "$pass2" "$wrong" "$weak" >"$work/secrets"

# The step runs this wrapper as zeta-creds: it logs each subcommand and
# whether ZETA_CREDS_PASSPHRASE leaked into its environment, and makes each
# call last long enough for the argv sampler to see it.
mkdir -p "$work/bin" "$work/tmp"
# A stand-in for systemd-creds: has-tpm2 succeeds while $work/fake-tpm
# exists, and says "partial" with a working driver (a BIOS boot) while
# $work/fake-tpm-bios does; encrypt records its argv and a hash of its stdin (never the
# passphrase itself), fails while $work/fake-encrypt-fails exists, and
# writes "FAKE-SEALED <hash>" to its output file.
cat >"$work/bin/systemd-creds" <<EOF
#!/bin/sh
case "\$1" in
has-tpm2)
    if [ -e "$work/fake-tpm" ]; then echo yes; exit 0; fi
    if [ -e "$work/fake-tpm-bios" ]; then
        printf 'partial\n-firmware\n+driver\n+system\n+subsystem\n'
        exit 1
    fi
    printf 'partial\n-firmware\n-driver\n+system\n-subsystem\n'
    exit 11
    ;;
encrypt)
    printf '%s\n' "\$@" >"$work/creds-argv"
    for out; do :; done
    sha=\$(sha256sum | cut -d ' ' -f 1)
    printf '%s\n' "\$sha" >"$work/creds-stdin-sha"
    sleep 0.15
    if [ -e "$work/fake-encrypt-fails" ]; then
        echo "Failed to seal to TPM2: fake failure" >&2
        exit 1
    fi
    printf 'FAKE-SEALED %s\n' "\$sha" >"\$out"
    ;;
*) exit 99 ;;
esac
EOF
chmod +x "$work/bin/systemd-creds"
fake_creds=$work/bin/systemd-creds
cat >"$work/bin/zeta-creds" <<EOF
#!/bin/sh
printf '%s\n' "\$1" >>"$work/calls"
if [ -n "\${ZETA_CREDS_PASSPHRASE+x}" ]; then
    echo "ZETA_CREDS_PASSPHRASE reached zeta-creds \$1" >>"$work/env-leaks"
fi
sleep 0.15
exec "$real_zc" "\$@"
EOF
chmod +x "$work/bin/zeta-creds"
zcw=$work/bin/zeta-creds

truncate -s 8M "$work/stick.img" "$work/other.img" "$work/blank.img"
mkfs.vfat -i DEADBEEF "$work/stick.img" >/dev/null
mkfs.vfat -i CAFEF00D "$work/other.img" >/dev/null
expect_eq "blkid reads the stick image" "$(blkid -s UUID -o value "$work/stick.img")" DEAD-BEEF

# shellcheck source=tests/installer/scenarios.sh
# An empty rescue directory of the test's own: the host's
# /run/zeta-creds/rescued must not change what the step finds.
export ZETA_CREDS_RESCUE_DIR=$work/rescued-none

. "$repo/tests/installer/scenarios.sh"
sampler_start
run_scenarios

# ---------------------------------------------------------------------------
echo "--- the passphrase in no argv, no zeta-creds environment, no file"
sampler_stop
if [ -s "$work/argv-hits" ]; then
    bad "a passphrase was found:"
    sort -u "$work/argv-hits" | sed 's/^/        | /'
else
    ok "no passphrase in any process's argv or in any zeta-creds environment"
fi
for sub in bundle verify inspect diff rekey; do
    if grep -qx -- "$sub" "$work/argv-seen"; then
        ok "the sampler saw zeta-creds $sub running"
    else
        bad "the sampler never saw zeta-creds $sub (the argv check proves nothing for it)"
    fi
done
if [ -s "$work/env-leaks" ]; then
    bad "$(sort -u "$work/env-leaks" | tr '\n' ' ')"
else
    ok "ZETA_CREDS_PASSPHRASE reached no zeta-creds process"
fi
hits=$(grep -rlF -f "$work/secrets" "$work"/[A-V]*/ "$work/tmp" 2>/dev/null || true)
if [ -n "$hits" ]; then
    bad "files under the targets, ESPs or TMPDIR hold a passphrase: $hits"
else
    ok "no file under the targets, the ESPs or the step's TMPDIR holds a passphrase"
fi

elapsed=$((SECONDS - started))
if [ "$failures" -gt 0 ]; then
    echo "tests/installer: $failures check(s) failed (${elapsed}s)"
    exit 1
fi
echo "tests/installer: all checks passed (${elapsed}s)"
