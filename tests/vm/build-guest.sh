#!/usr/bin/env bash
# Build the Debian bookworm guest that tests/vm/run.sh boots: a kernel from
# the linux-image .deb, a busybox initramfs that loads virtio_blk and ext4,
# and an ext4 root image made with `mkfs.ext4 -d` (no loop mounts) from an
# mmdebstrap minbase tree with systemd, udev and the test's guest side:
#
#   - user zeta, uid/gid 1500 (the host's fake source tree has 1000, so a
#     restore that copied numbers instead of resolving names would show);
#   - fstab: the ESP (FAT serial E5B0-0001) read-only at /boot, as NixOS
#     mounts it (boot.loader.efi.efiSysMountPoint), the results
#     disk (FAT serial 5E5E-0001) at /mnt/results;
#   - zeta-vm-stage.service, before the restore unit: moves
#     /var/lib/zeta-vm/stage-passphrase to /run/zeta-creds/passphrase
#     (0600), standing in for whatever stages a passphrase file on a real
#     host; seals /var/lib/zeta-vm/seal-passphrase with the guest's own
#     host key (systemd-creds encrypt) into /etc/credstore.encrypted, as an
#     operator does for credential mode, and removes the plaintext;
#   - zeta-vm-seal-tpm2.service, when /var/lib/zeta-vm/seal-tpm2 exists
#     (it holds the PCR list): asks for a passphrase on the console
#     (systemd-ask-password, answered by the harness) and pipes it into
#     `systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs=<list>` into
#     /etc/credstore.encrypted/zeta-creds-passphrase, as an operator (or
#     the installer's --seal-tpm2) does: the plaintext never touches the
#     disk. The tpm2-tss libraries systemd 252 dlopens are installed; the
#     kernel's TPM driver (tpm_tis) is built in;
#   - zeta-vm-collect.service: after multi-user.target and the restore
#     units, writes what the guest sees (the unit's state, its journal, the
#     whole boot's journal with every field, the restored files with their
#     numeric and named owners and modes, their hashes, what is left in
#     /run) to the results disk, then powers off;
#   - gettys, logind and timers masked: the console belongs to the
#     password agent, and the boot has nothing else to do.
#
#   tests/vm/build-guest.sh OUT_DIR KERNEL_PACKAGE
#
# Writes OUT_DIR/{vmlinuz,initrd.img,root.img,kernel-version} and nothing
# else; OUT_DIR must not exist yet (run.sh builds into a temporary name and
# renames, so an interrupted build never looks like a cache hit). Needs
# root (mmdebstrap's root mode, chown in the tree), the configured Debian
# mirror (/etc/apt/sources.list*), mmdebstrap, dpkg-deb, depmod, busybox
# (static), cpio, mkfs.ext4. Exit 3: the mirror could not be reached.
set -euo pipefail

out=${1:?usage: build-guest.sh OUT_DIR KERNEL_PACKAGE}
kernel_package=${2:?usage: build-guest.sh OUT_DIR KERNEL_PACKAGE}
[ ! -e "$out" ] || {
    echo "build-guest: $out exists" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zeta-creds-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { printf 'build-guest: %s\n' "$*"; }

# The guest's uid/gid for zeta, and the FAT serials run.sh gives the disks.
GUEST_UID=1500
ESP_SERIAL=E5B0-0001
RESULTS_SERIAL=5E5E-0001

# deb lines for the Debian archives this machine's apt uses (deb822 .sources
# and one-line .list files), main only; the default mirror if none.
debian_sources() {
    local f
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no")
                    for (i = 1; i <= nu; i++)
                        for (j = 1; j <= ns; j++)
                            if (s[j] ~ /^bookworm/) print "deb " u[i] " " s[j] " main"
                types = ""; enabled = ""; nu = 0; ns = 0
            }
            /^[[:space:]]*$/ { flush(); next }
            /^#/ { next }
            tolower($1) == "types:" { types = ""; for (i = 2; i <= NF; i++) types = types " " $i; types = types " " }
            tolower($1) == "uris:" { for (i = 2; i <= NF; i++) u[++nu] = $i }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) s[++ns] = $i }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" && $2 !~ /^\[/ && $3 ~ /^bookworm/ { print "deb " $2 " " $3 " main" }
             $1 == "deb" && $2 ~ /^\[/ && $4 ~ /^bookworm/ { print "deb " $3 " " $4 " main" }' "$f"
    done
    shopt -u nullglob
}
mapfile -t sources < <(debian_sources | awk '!seen[$0]++')
if [ "${#sources[@]}" -eq 0 ]; then
    sources=("deb http://deb.debian.org/debian bookworm main"
        "deb http://deb.debian.org/debian-security bookworm-security main")
fi
log "apt sources: ${sources[*]}"

## The kernel ###############################################################
log "kernel: apt-get download $kernel_package"
if ! (cd "$tmp" && apt-get download "$kernel_package" >"$tmp/apt.log" 2>&1); then
    cat "$tmp/apt.log" >&2
    exit 3
fi
dpkg-deb -x "$tmp"/"$kernel_package"_*.deb "$tmp/kernel"
kver=$(basename "$(find "$tmp/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)")
depmod -b "$tmp/kernel" "$kver"
log "kernel $kver"

## The root tree ############################################################
log "root tree: mmdebstrap --variant=minbase bookworm"
if ! mmdebstrap --quiet --variant=minbase \
    --include=systemd,systemd-sysv,udev,kmod,passwd,libtss2-esys-3.0.2-0,libtss2-rc0,libtss2-mu0 \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    bookworm "$tmp/root" "${sources[@]}" >"$tmp/mmdebstrap.log" 2>&1; then
    cat "$tmp/mmdebstrap.log" >&2
    exit 3
fi
root=$tmp/root

# Kernel modules the guest loads itself (vfat and its code pages for the
# ESP, virtio, crypto helpers); the rest of the 400 MB is not needed.
moddir=lib/modules/$kver
mkdir -p "$root/$moddir/kernel/drivers" "$root/$moddir/kernel/arch/x86"
for sub in fs lib crypto drivers/block drivers/virtio drivers/char arch/x86/crypto; do
    cp -a "$tmp/kernel/$moddir/kernel/$sub" "$root/$moddir/kernel/$(dirname "$sub")/"
done
cp -a "$tmp/kernel/$moddir"/modules.builtin* "$tmp/kernel/$moddir/modules.order" "$root/$moddir/"
depmod -b "$root" "$kver"

# Identity: a fixed machine-id (no first-boot preset run), a hostname.
echo zeta-vm >"$root/etc/hostname"
echo 5a6574612d637265647320766d000001 >"$root/etc/machine-id"

cat >"$root/etc/fstab" <<EOF
# tests/vm guest: the root is mounted rw by the initramfs.
/dev/vda / ext4 rw,noatime 0 0
UUID=$ESP_SERIAL /boot vfat ro,umask=0077,nofail,x-systemd.device-timeout=20s 0 0
UUID=$RESULTS_SERIAL /mnt/results vfat rw,nofail,x-systemd.device-timeout=20s 0 0
EOF
mkdir -p "$root/boot" "$root/mnt/results" "$root/etc/zeta" "$root/var/lib/zeta-vm"

# The console is the password agent's: no gettys. Nothing else the test
# does not need runs either: every unit and generator less is a fraction of
# a second less under TCG. systemd-sysusers stays (the restore unit is
# ordered after it), and so do udev (/dev/disk/by-uuid) and journald.
for unit in getty.target getty@tty1.service serial-getty@ttyS0.service \
    getty-static.service console-getty.service systemd-logind.service \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    systemd-tmpfiles-clean.timer systemd-pstore.service \
    dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount \
    proc-sys-fs-binfmt_misc.automount systemd-binfmt.service \
    modprobe@.service kmod-static-nodes.service systemd-modules-load.service \
    systemd-random-seed.service systemd-journal-flush.service \
    systemd-update-utmp.service systemd-update-utmp-runlevel.service \
    systemd-repart.service systemd-firstboot.service \
    systemd-pcrphase.service systemd-pcrphase-sysinit.service \
    systemd-machine-id-commit.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/etc/systemd/system-generators"
for gen in systemd-cryptsetup-generator systemd-debug-generator \
    systemd-getty-generator systemd-gpt-auto-generator \
    systemd-hibernate-resume-generator systemd-integritysetup-generator \
    systemd-rc-local-generator systemd-run-generator \
    systemd-system-update-generator systemd-sysv-generator \
    systemd-veritysetup-generator; do
    ln -sf /dev/null "$root/etc/systemd/system-generators/$gen"
done
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/zeta-vm.conf"

# The user the blob's ~ entries belong to, with ids unlike the host's.
chroot "$root" groupadd -g "$GUEST_UID" zeta
chroot "$root" useradd -u "$GUEST_UID" -g "$GUEST_UID" -m -s /bin/bash zeta
passwd_line=$(grep '^zeta:' "$root/etc/passwd")
log "guest user: $passwd_line"

## The guest side of the test ###############################################
cat >"$root/usr/local/sbin/zeta-vm-stage" <<'EOF'
#!/bin/sh
# Stand-in for what the operator does before a boot:
#  - passphrase.mode = "file": something stages a passphrase file in /run;
#  - passphrase.mode = "credential": the passphrase is sealed on this
#    machine with its host key, as nixos-modules/README.md says to
#    (systemd-creds encrypt --with-key=host), and the plaintext removed.
set -eu
stage=/var/lib/zeta-vm/stage-passphrase
seal=/var/lib/zeta-vm/seal-passphrase
if [ -e "$stage" ]; then
    install -d -m 0700 /run/zeta-creds
    install -m 0600 "$stage" /run/zeta-creds/passphrase
    rm -f "$stage"
fi
if [ -e "$seal" ]; then
    install -d -m 0700 /etc/credstore.encrypted
    systemd-creds encrypt --with-key=host --name=passphrase "$seal" \
        /etc/credstore.encrypted/zeta-creds.passphrase
    rm -f "$seal"
fi
EOF
cat >"$root/etc/systemd/system/zeta-vm-stage.service" <<'EOF'
[Unit]
Description=zeta-creds VM test: stage or seal the scenario's passphrase
DefaultDependencies=no
After=local-fs.target
Before=zeta-creds-restore.service sysinit.target
ConditionPathExists=|/var/lib/zeta-vm/stage-passphrase
ConditionPathExists=|/var/lib/zeta-vm/seal-passphrase

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zeta-vm-stage

[Install]
WantedBy=sysinit.target
EOF

cat >"$root/usr/local/sbin/zeta-vm-seal-tpm2" <<'EOF'
#!/bin/bash
# Seal a passphrase typed on the console to this machine's TPM2, as
# installer/zeta-creds-step.sh --seal-tpm2 does: the same systemd-creds
# command line, the passphrase on a pipe (never in a file, never in argv).
set -euo pipefail
umask 077
marker=/var/lib/zeta-vm/seal-tpm2
pcrs=$(cat "$marker")
install -d -m 0700 /etc/credstore.encrypted
systemd-ask-password --no-tty --id=zeta-vm:seal --timeout=120 "zeta-vm: passphrase to seal into the TPM2:" |
    systemd-creds encrypt --with-key=tpm2 "--tpm2-pcrs=$pcrs" --name=passphrase - \
        /etc/credstore.encrypted/zeta-creds-passphrase
chmod 0600 /etc/credstore.encrypted/zeta-creds-passphrase
rm -f "$marker"
EOF
cat >"$root/etc/systemd/system/zeta-vm-seal-tpm2.service" <<'EOF'
[Unit]
Description=zeta-creds VM test: seal a passphrase typed on the console to the TPM2
After=sysinit.target
Before=zeta-creds-restore.service systemd-user-sessions.service
ConditionPathExists=/var/lib/zeta-vm/seal-tpm2

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zeta-vm-seal-tpm2

[Install]
WantedBy=multi-user.target
EOF

cat >"$root/usr/local/sbin/zeta-vm-collect" <<'EOF'
#!/bin/bash
# Write what the guest sees to the results disk, then power off. Runs after
# multi-user.target and zeta-creds-restore.service, whatever their outcome.
set -u
out=/mnt/results
unit=zeta-creds-restore.service
trees=(/home/zeta /root /etc/zeta /etc/ssh /var/lib/sops-nix /var/lib/zeta-creds)

systemctl show "$unit" -p LoadState -p ActiveState -p SubState -p Result \
    -p ExecMainStatus -p ExecMainCode -p ConditionResult -p NRestarts \
    -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic \
    >"$out/unit.txt" 2>&1
systemctl status "$unit" --no-pager -l >"$out/status.txt" 2>&1
systemctl show multi-user.target -p ActiveState -p ActiveEnterTimestampMonotonic >"$out/target.txt" 2>&1
systemctl list-units --failed --no-legend --plain >"$out/failed-units.txt" 2>&1
journalctl -b -u "$unit" -o cat --no-pager >"$out/unit-journal.txt" 2>&1
# The credential fallback, the TPM seal step, and when logins were allowed
# (systemd-user-sessions is ordered after both restore units).
fallback=zeta-creds-restore-fallback.service
systemctl show "$fallback" -p LoadState -p ActiveState -p SubState -p Result \
    -p ExecMainStatus -p ConditionResult -p NRestarts \
    -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic \
    >"$out/fallback-unit.txt" 2>&1
journalctl -b -u "$fallback" -o cat --no-pager >"$out/fallback-journal.txt" 2>&1
systemctl show zeta-vm-seal-tpm2.service -p ActiveState -p Result -p ExecMainStatus >"$out/seal.txt" 2>&1
systemctl show systemd-user-sessions.service -p ActiveState -p ActiveEnterTimestampMonotonic >"$out/user-sessions.txt" 2>&1
ls -la /dev/tpm0 /dev/tpmrm0 >"$out/tpm.txt" 2>&1
find /etc/credstore.encrypted -printf '%p %U %G %m %y\n' 2>/dev/null | sort >"$out/credstore.txt"
journalctl -b -o short-monotonic --no-pager >"$out/journal.txt" 2>&1
# Every field of every entry (command lines included): the passphrase must
# be in none of them.
journalctl -b -o verbose --no-pager >"$out/journal-verbose.txt" 2>&1
# The restored tree as the guest sees it: path, numeric and named owner and
# group, octal mode, type.
find "${trees[@]}" -xdev -printf '%p %U %G %u %g %m %y\n' 2>/dev/null | sort >"$out/tree.txt"
find "${trees[@]}" -xdev -type f -exec sha256sum {} + 2>/dev/null | sort -k 2 >"$out/sums.txt"
# What is left in /run that looks like a passphrase (the credentials
# directory is listed apart: systemd owns it).
find /run -xdev \( -path /run/credentials -prune \) -o -iname '*passphrase*' -print >"$out/run.txt" 2>&1
ls -laR /run/credentials >"$out/credentials.txt" 2>&1
ls -la /dev/disk/by-uuid >"$out/by-uuid.txt" 2>&1
cat /proc/uptime >"$out/uptime.txt"
echo done >"$out/done.txt"
sync
umount "$out"
systemctl poweroff --no-block
EOF
cat >"$root/etc/systemd/system/zeta-vm-collect.service" <<'EOF'
[Unit]
Description=zeta-creds VM test: write the guest's view to the results disk, power off
After=multi-user.target zeta-creds-restore.service zeta-creds-restore-fallback.service zeta-vm-seal-tpm2.service
RequiresMountsFor=/mnt/results

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zeta-vm-collect
StandardOutput=journal

[Install]
WantedBy=multi-user.target
EOF
chmod 0755 "$root/usr/local/sbin/zeta-vm-stage" "$root/usr/local/sbin/zeta-vm-collect" \
    "$root/usr/local/sbin/zeta-vm-seal-tpm2"
ln -sf /etc/systemd/system/zeta-vm-seal-tpm2.service "$root/etc/systemd/system/multi-user.target.wants/zeta-vm-seal-tpm2.service"
ln -sf /etc/systemd/system/zeta-vm-stage.service "$root/etc/systemd/system/sysinit.target.wants/zeta-vm-stage.service"
ln -sf /etc/systemd/system/zeta-vm-collect.service "$root/etc/systemd/system/multi-user.target.wants/zeta-vm-collect.service"

## The initramfs ############################################################
# busybox, the modules that reach the root disk, and an init that mounts
# /dev/vda read-write and switches to systemd.
log "initramfs"
initrd=$tmp/initrd
mkdir -p "$initrd/bin" "$initrd/modules" "$initrd/proc" "$initrd/sys" "$initrd/dev" "$initrd/newroot"
cp "$(command -v busybox)" "$initrd/bin/busybox"
for m in virtio_pci virtio_blk crc32c_generic ext4; do
    modprobe -d "$tmp/kernel" -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$tmp/initrd-modules"
while IFS= read -r ko; do
    cp "$ko" "$initrd/modules/"
    basename "$ko" >>"$initrd/modules/order"
done <"$tmp/initrd-modules"
cat >"$initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
while read -r m; do
    # crc32c-intel needs SSE4.2, which the emulated CPU may lack: ignored.
    /bin/busybox insmod "/modules/$m" 2>/dev/null || true
done </modules/order
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 200 ]; do
    /bin/busybox sleep 0.05
    i=$((i + 1))
done
if ! /bin/busybox mount -t ext4 -o rw /dev/vda /newroot; then
    echo "initramfs: cannot mount /dev/vda" >/dev/console
    /bin/busybox poweroff -f
fi
/bin/busybox mount --move /dev /newroot/dev
/bin/busybox umount /proc /sys
exec /bin/busybox switch_root /newroot /sbin/init
EOF
chmod 0755 "$initrd/init"

## Output ###################################################################
mkdir -p "$out"
(cd "$initrd" && find . | cpio --quiet -o -H newc) | gzip -1 >"$out/initrd.img"
cp "$tmp/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
log "root image: mkfs.ext4 -d ($(du -sh "$root" | cut -f1))"
mkfs.ext4 -q -F -L zeta-vm-root -E root_owner=0:0 -d "$root" "$out/root.img" 1G
echo "$kver" >"$out/kernel-version"
log "done: $out"
