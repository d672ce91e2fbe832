#!/usr/bin/env bash
# Install what this project's scripts need on a fresh Debian 12 that has only
# the Rust toolchain (rustup). Idempotent: a second run installs nothing.
#
# Run by .ci/run before anything else, and by hand on a new machine:
#
#   ./scripts/setup-debian.sh
#
# To need a new Debian package, add it to APT_PACKAGES below with a comment
# saying which script uses it. Do not call apt-get anywhere else: this script
# runs `apt-get update` at most once, and only when something is missing.
set -euo pipefail

# Debian packages, one per line, each with the script that needs it.
APT_PACKAGES=(
    shellcheck      # .ci/run lints every shell script of ours
    nix-bin         # tests/nix: nix-instantiate --parse/--eval of nixos-modules/, flake.nix
    jq              # tests/nix, tests/vm: decode nix-instantiate --json output
    systemd         # tests/nix: systemd-analyze verify/security on the rendered unit
    qemu-system-x86 # tests/vm: boots the Debian guest (-accel tcg)
    mmdebstrap      # tests/vm: builds the guest's root tree from the apt mirror
    e2fsprogs       # tests/vm: mkfs.ext4 -d (root image), debugfs (edit, read back)
    dosfstools      # tests/vm: mkfs.vfat -i SERIAL (ESP, USB stick, results disks)
    mtools          # tests/vm: mcopy/mtype into and out of FAT images, no mounts
    busybox-static  # tests/vm: the guest's tiny initramfs (loads virtio_blk, ext4)
    cpio            # tests/vm: packs that initramfs
    kmod            # tests/vm: depmod for the guest's kernel modules
    util-linux      # installer/, tests/installer: blkid, findmnt, setsid, unshare
    bsdutils        # tests/installer, tests/e2e: script(1), the scripted terminal
    mount           # tests/installer: losetup, mount (the live stick found with findmnt)
    swtpm           # tests/vm: the software TPM2 of scenarios i-k (QEMU -tpmdev emulator)
    swtpm-tools     # tests/vm: swtpm_setup, for making and inspecting TPM states by hand
    strace          # zeta-creds/tests/durability.rs: the order of the restore's syncs and renames
    zsh             # zeta-creds/tests/completions.rs: the zsh completion script, TAB in a real zsh
    fish            # zeta-creds/tests/completions.rs: the fish completion script, complete -C
)

# rustup components, each with the cargo subcommand that proves it is there.
RUST_COMPONENTS=(
    "rustfmt:fmt"   # cargo fmt --all --check
    "clippy:clippy" # cargo clippy -- -D warnings
)

log() { printf 'setup-debian: %s\n' "$*"; }
die() {
    printf 'setup-debian: error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "not root and sudo is not installed; run this script as root"
    fi
}

# Run from the repository root so that a rust-toolchain file, if one is
# added later, decides which toolchain gets the components.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rust_components() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found; install the Rust toolchain with rustup first"
    local spec component subcommand
    for spec in "${RUST_COMPONENTS[@]}"; do
        component=${spec%%:*}
        subcommand=${spec#*:}
        if cargo "$subcommand" --version >/dev/null 2>&1; then
            log "rust component $component: present"
            continue
        fi
        command -v rustup >/dev/null 2>&1 ||
            die "cargo $subcommand is missing and rustup is not installed to add $component"
        log "rust component $component: missing, running: rustup component add $component"
        rustup component add "$component"
        cargo "$subcommand" --version >/dev/null 2>&1 ||
            die "cargo $subcommand still fails after adding $component"
    done
}

# True when dpkg says the package is installed.
apt_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [ "$status" = "install ok installed" ]
}

apt_packages() {
    command -v dpkg-query >/dev/null 2>&1 ||
        die "dpkg-query not found; this script is for Debian 12"
    local pkg
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        if apt_installed "$pkg"; then
            log "apt package $pkg: present"
        else
            log "apt package $pkg: missing"
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "running: apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    log "running: apt-get install -y --no-install-recommends ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        apt_installed "$pkg" || die "apt package $pkg is still not installed"
    done
}

rust_components
apt_packages
log "done"
