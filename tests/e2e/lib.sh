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

## The live system, new disks ###############################################
# debugfs commands that replace the image's /etc/fstab by FILE.
fstab_cmds() { printf '%s\n' "rm /etc/fstab"; put "$1" /etc/fstab 644; }

# esp_fstab NAME SERIAL: the root image NAME.img mounts the ESP whose FAT
# serial is SERIAL (8 hex digits) at /boot, as the hardware configuration
# nixos-generate-config writes for the new ESP does
# (fileSystems."/boot".device = "/dev/disk/by-uuid/XXXX-XXXX"): the
# fstab's /boot line names the new UUID.
esp_fstab() {
    local name=$1 uuid=${2:0:4}-${2:4:4}
    debugfs -R "cat /etc/fstab" "$work/$name.img" 2>/dev/null |
        sed "s#^UUID=[^ ]* /boot #UUID=$uuid /boot #" >"$work/$name.fstab"
    grep -q "^UUID=$uuid /boot vfat " "$work/$name.fstab" || {
        cat "$work/$name.fstab"
        echo "tests/e2e: the guest's fstab has no /boot line to point at $uuid"
        exit 1
    }
    local cmds
    mapfile -t cmds < <(fstab_cmds "$work/$name.fstab")
    debugfs_write "$work/$name.img" "${cmds[@]}"
}

# live_root NAME MODE [FILE DEST MODE]...: NAME.img, the live system booted
# from the stick, from the cached guest: our binary, tests/e2e/live.sh run
# once by zeta-e2e-live.service (before tests/vm's collector) with MODE
# (see live.sh), each FILE at DEST (under /var/lib/zeta-e2e, the job), no
# restore unit, and no ESP in its fstab (a live system mounts no disk of
# the machine).
live_root() {
    local name=$1 mode=$2
    shift 2
    cp --sparse=always "$guest/root.img" "$work/$name.img"
    debugfs -R "cat /etc/fstab" "$work/$name.img" 2>/dev/null | grep -v ' /boot ' >"$work/$name.fstab"
    printf '%s\n' "$mode" >"$work/$name.mode"
    cat >"$work/zeta-e2e-live.service" <<'UNIT'
[Unit]
Description=zeta-creds e2e: the operator's work on the live system
After=local-fs.target systemd-udev-settle.service
Before=zeta-vm-collect.service
RequiresMountsFor=/mnt/results

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zeta-e2e-live
StandardOutput=journal

[Install]
WantedBy=multi-user.target
UNIT
    local cmds
    mapfile -t cmds < <(
        fstab_cmds "$work/$name.fstab"
        put "$binary" "$GUEST_BINARY" 755
        put "$repo/tests/e2e/live.sh" /usr/local/sbin/zeta-e2e-live 755
        put "$work/zeta-e2e-live.service" /etc/systemd/system/zeta-e2e-live.service 644
        echo "symlink /etc/systemd/system/multi-user.target.wants/zeta-e2e-live.service /etc/systemd/system/zeta-e2e-live.service"
        echo "mkdir /var/lib/zeta-e2e"
        echo "sif /var/lib/zeta-e2e mode 040700"
        echo "mkdir /var/lib/zeta-e2e/manifest"
        put "$repo/manifest/default.toml" /var/lib/zeta-e2e/manifest/default.toml 644
        put "$work/$name.mode" /var/lib/zeta-e2e/mode 644
        while [ "$#" -ge 3 ]; do
            put "$1" "/var/lib/zeta-e2e/$2" "$3"
            shift 3
        done
    )
    debugfs_write "$work/$name.img" "${cmds[@]}"
}

# mbr IMAGE START SECTORS [START SECTORS]: an MBR partition table (type
# 0x0c, FAT32 LBA, for each) written into IMAGE, as `sfdisk` would (CHS
# fields unused), without needing fdisk on the host.
mbr() {
    local image=$1 bytes="" start size
    shift
    le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
    while [ "$#" -ge 2 ]; do
        start=$1 size=$2
        shift 2
        bytes="$bytes\\x00\\xfe\\xff\\xff\\x0c\\xfe\\xff\\xff$(le32 "$start")$(le32 "$size")"
    done
    # shellcheck disable=SC2059 # the format is the bytes
    printf "$bytes" | dd of="$image" bs=1 seek=446 conv=notrunc status=none
    printf '\x55\xaa' | dd of="$image" bs=1 seek=510 conv=notrunc status=none
}

# partitioned_stick IMAGE STASH_SERIAL [FILE NAME]...: a stick like one
# written from the NixOS ISO with a stash partition appended: partition 1
# (sectors 2048-4095) the stick's FAT, serial $BOUND_SERIAL, the one the
# blobs are bound to; partition 2 (from sector 4096, 4 MiB) FAT labelled
# ZETA-CREDS holding each FILE as NAME. Each filesystem is made on its own
# image (the host may have no vfat driver and no fdisk) and copied in.
# shellcheck disable=SC2034 # read by scenarios.sh
STASH_OFFSET=$((4096 * 512)) # mtools: IMAGE@@$STASH_OFFSET
partitioned_stick() {
    local image=$1 serial=$2
    shift 2
    rm -f "$image"
    truncate -s $(((4096 + 8192) * 512)) "$image"
    mbr "$image" 2048 2048 4096 8192
    fat "$image.p1" "$BOUND_SERIAL" 1024
    rm -f "$image.p2"
    mkfs.vfat -C -n ZETA-CREDS -i "$serial" "$image.p2" 4096 >/dev/null
    while [ "$#" -ge 2 ]; do
        mcopy -i "$image.p2" "$1" "::/$2"
        shift 2
    done
    dd if="$image.p1" of="$image" bs=512 seek=2048 conv=notrunc status=none
    dd if="$image.p2" of="$image" bs=512 seek=4096 conv=notrunc status=none
    rm -f "$image.p1" "$image.p2"
}
