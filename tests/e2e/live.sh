#!/bin/bash
# The live system of tests/e2e, in the guest: what an operator does after
# booting the installer stick on the machine, run once by
# zeta-e2e-live.service before tests/vm's collector writes its results and
# powers off. The job is in /var/lib/zeta-e2e (placed by tests/e2e/lib.sh's
# live_root): `mode` is
#   rescue   `zeta-creds install-step rescue` with its default scan (lsblk,
#            no passphrase), before anything is partitioned; what it put in
#            /run/zeta-creds/rescued is copied to the results disk, the
#            stand-in for "the same live session goes on to install";
#   install  the target root (ext4 UUID in target-uuid) mounted at /mnt and
#            the new, empty ESP (FAT UUID in esp-uuid) at /mnt/boot, as
#            nixos-install leaves them, then `zeta-creds install-step`
#            against them with the stick's first partition (FAT UUID in
#            stick-uuid) as --usb-device and the passphrase from the file
#            `passphrase` (removed once read) in ZETA_CREDS_PASSPHRASE.
# Everything it learns goes to the results disk: <mode>.log (the step's
# output), <mode>.rc (124: the step hung and was stopped, so that the
# collector still reports the boot), and the files named below.
set -u
job=/var/lib/zeta-e2e
# /mnt is the target's in `install`: the results disk is reached through a
# bind mount that mounting the target does not cover.
out=/run/zeta-e2e-results
mkdir -p "$out"
mount --bind /mnt/results "$out"
mode=$(cat "$job/mode")
# Every disk probed (blkid -U below reads udev's view).
udevadm settle --timeout=30
# A NixOS live system has the loop driver loaded (its store is a squashfs
# on a loop device); this guest loads it on demand only.
modprobe loop
lsblk --json -o NAME,PATH,TYPE,PARTTYPE,FSTYPE,UUID,LABEL,MOUNTPOINTS >"$out/lsblk-before.json" 2>&1

case $mode in
rescue)
    rc=0
    timeout --kill-after=5 120 zeta-creds install-step rescue </dev/null >"$out/rescue.log" 2>&1 || rc=$?
    echo "$rc" >"$out/rescue.rc"
    rescued=/run/zeta-creds/rescued
    stat -c '%a %U %G' "$rescued" >"$out/rescued-dir.txt" 2>&1
    stat -f -c '%T' "$rescued" >>"$out/rescued-dir.txt" 2>&1
    mkdir -p "$out/rescued"
    cp -r "$rescued/." "$out/rescued/" 2>>"$out/rescue.log"
    ;;
install)
    rc=0
    target=$(blkid -U "$(cat "$job/target-uuid")")
    esp=$(blkid -U "$(cat "$job/esp-uuid")")
    stick=$(blkid -U "$(cat "$job/stick-uuid")")
    echo "target=$target esp=$esp stick=$stick" >"$out/devices.txt"
    if ! mount -t ext4 "$target" /mnt || ! mount -t vfat -o umask=0077 "$esp" /mnt/boot; then
        echo "live: cannot mount the target ($target) or the new ESP ($esp) at /mnt, /mnt/boot" >"$out/install.log"
        echo 99 >"$out/install.rc"
    else
        pass=$(cat "$job/passphrase")
        rm -f "$job/passphrase"
        ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass ZETA_CREDS_MANIFEST_DIR=$job/manifest \
            timeout --kill-after=5 180 zeta-creds install-step --target /mnt --esp /mnt/boot --usb-device "$stick" \
            --work-factor 10 </dev/null >"$out/install.log" 2>&1 || rc=$?
        unset pass
        echo "$rc" >"$out/install.rc"
        # The stash is mounted only while the step runs.
        findmnt -rn -o SOURCE,TARGET >"$out/mounts-after.txt" 2>&1
        ls -la /mnt/boot >"$out/esp-listing.txt" 2>&1
        sync
        umount /mnt/boot /mnt
    fi
    ;;
*)
    echo "live: unknown mode '$mode'" >"$out/live-error.txt"
    ;;
esac
sync
umount "$out"
