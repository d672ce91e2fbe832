#!/usr/bin/env bash
# Helpers shared by tests/vm/run.sh and tests/e2e/run.sh: the cached Debian
# guest, FAT and ext4 image editing, the unit rendered by
# nixos-modules/unit.nix, and one QEMU boot (optionally with a software
# TPM2, swtpm). Sourced, never run.
#
# The caller sets `set -euo pipefail`, $repo (the repository, also the
# current directory), $work (a mktemp -d directory it removes), and
# defines:
#   skip MESSAGE    print `SKIPPED: MESSAGE` and exit 77
#   log MESSAGE     progress
#   vm_fail MESSAGE count a failed check
# and may set BOOT_TIMEOUT, PROMPT and GUEST_BINARY before calling boot or
# unit_for (the defaults are below).
# shellcheck disable=SC2154 # $repo and $work are the caller's

BOOT_TIMEOUT=${BOOT_TIMEOUT:-${ZETA_VM_BOOT_TIMEOUT:-300}}
PROMPT=${PROMPT:-"Passphrase for zeta-creds blob"}
GUEST_BINARY=${GUEST_BINARY:-/usr/local/bin/zeta-creds}
RESULTS_SERIAL=5E5E0001 # 5E5E-0001, mounted by the guest at /mnt/results
guest="" # set by vm_guest
qemu_pid=""
reader_pid=""
swtpm_pid=""

# vm_stop: kill what a boot started (for the caller's EXIT trap).
vm_stop() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
    if [ -n "$reader_pid" ]; then kill "$reader_pid" 2>/dev/null || true; fi
    if [ -n "$swtpm_pid" ]; then kill "$swtpm_pid" 2>/dev/null || true; fi
}

## The guest (cached) #######################################################
# vm_guest: set $guest to the cached guest directory (vmlinuz, initrd.img,
# root.img), building it with tests/vm/build-guest.sh when the kernel
# package or the recipe changed. Skips (77) when the mirror is unreachable.
vm_guest() {
    local kernel_package kernel_version recipe cache_root building rc=0
    kernel_package=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
    [ -n "$kernel_package" ] ||
        skip "apt cannot resolve linux-image-amd64 (no apt lists? run apt-get update, or scripts/setup-debian.sh)"
    kernel_version=$(apt-cache policy "$kernel_package" | awk '$1 == "Candidate:" { print $2 }')
    recipe=$(sha256sum "$repo/tests/vm/build-guest.sh" | cut -c1-12)
    cache_root=$repo/target/vm-cache
    guest=$cache_root/$kernel_package-$kernel_version-$recipe
    if [ -f "$guest/root.img" ]; then
        log "guest: cached $guest"
        return 0
    fi
    log "guest: building $guest (kernel $kernel_package $kernel_version)"
    mkdir -p "$cache_root"
    # Older kernels and recipes go; the new guest is built aside and
    # renamed, so an interrupted build is never taken for a cached one.
    find "$cache_root" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    building=$cache_root/.building-$$
    "$repo/tests/vm/build-guest.sh" "$building" "$kernel_package" || rc=$?
    if [ "$rc" -eq 3 ]; then
        rm -rf "$building"
        skip "cannot download the guest (Debian mirror or kernel package unreachable), see above"
    elif [ "$rc" -ne 0 ]; then
        rm -rf "$building"
        echo "building the guest failed (exit $rc)"
        exit 1
    fi
    mv "$building" "$guest"
}

## Disks ####################################################################
# fat IMAGE SERIAL KIB [FILE NAME]...
fat() {
    local image=$1 serial=$2 kib=$3
    shift 3
    rm -f "$image"
    mkfs.vfat -C -i "$serial" "$image" "$kib" >/dev/null
    while [ "$#" -ge 2 ]; do
        mcopy -i "$image" "$1" "::/$2"
        shift 2
    done
}

# debugfs_write IMAGE COMMANDS...: run debugfs -w with these commands,
# failing on any error it reports.
debugfs_write() {
    local image=$1
    shift
    printf '%s\n' "$@" >"$work/debugfs.cmds"
    debugfs -w -f "$work/debugfs.cmds" "$image" >"$work/debugfs.out" 2>&1
    # Everything but the echoed commands, the banner and "Allocated inode"
    # is an error.
    if grep -Ev '^(debugfs[: ]|Allocated inode)' "$work/debugfs.out" | grep -q .; then
        cat "$work/debugfs.out"
        return 1
    fi
}

# put SRC DEST MODE: debugfs commands that copy a host file into the image
# (root-owned, DEST's directory must exist) with an exact mode.
put() {
    printf '%s\n' "cd $(dirname "$2")" "write $1 $(basename "$2")" "cd /" "sif $2 mode 0$(printf '%o' "$((0100000 | 8#$3))")"
}

## The units ################################################################
# unit_for NAME CFG_JSON: the units the module would install for this
# configuration, rendered by nixos-modules/unit.nix with the binary at
# $GUEST_BINARY: $work/NAME.service (zeta-creds-restore.service) and every
# unit, by its own name, in $work/NAME.units/.
unit_for() {
    local name=$1 cfg=$2 unit
    mkdir -p "$work/nix-conf"
    env NIX_CONF_DIR="$work/nix-conf" NIX_STATE_DIR="$work/nix-state" NIX_LOG_DIR="$work/nix-log" \
        nix-instantiate --option build-users-group '' --store dummy:// \
        --eval --strict --json "$repo/tests/nix/render-unit.nix" \
        --argstr cfg "$cfg" --argstr binary "$GUEST_BINARY" --argstr userHome /home/zeta \
        --argstr units all >"$work/$name.units.json"
    rm -rf "$work/$name.units"
    mkdir -p "$work/$name.units"
    while IFS= read -r unit; do
        jq -jr --arg u "$unit" '.[$u]' "$work/$name.units.json" >"$work/$name.units/$unit"
    done < <(jq -r 'keys[]' "$work/$name.units.json")
    cp "$work/$name.units/zeta-creds-restore.service" "$work/$name.service"
}

# unit_cmds NAME [relink]: debugfs commands that install the units of
# unit_for NAME in /etc/systemd/system, zeta-creds-restore.service enabled
# (the fallback is only started by it: OnFailure=). With `relink`, the
# image already has a zeta-creds-restore.service (and its enabling link):
# it is replaced, and the link kept.
unit_cmds() {
    local f
    if [ "${2:-}" = relink ]; then
        echo "rm /etc/systemd/system/zeta-creds-restore.service"
    fi
    for f in "$work/$1.units"/*; do
        put "$f" "/etc/systemd/system/$(basename "$f")" 644
    done
    if [ "${2:-}" != relink ]; then
        echo "symlink /etc/systemd/system/multi-user.target.wants/zeta-creds-restore.service /etc/systemd/system/zeta-creds-restore.service"
    fi
}

## Booting ##################################################################
# boot NAME ROOT ESP USB ANSWER [TPM_STATE_DIR]: one fresh boot. ANSWER is
# `no` (the harness types nothing), `answer` (types $work/passphrase when
# $PROMPT shows on the console) or `answer=TEXT` (the same, when TEXT
# shows). With TPM_STATE_DIR, a software TPM2 (swtpm) with its state in
# that directory is attached (tpm-tis); a new directory is a new TPM.
# Results land in $work/NAME.results/; boot times in $work/boot-times.
boot() {
    local name=$1 root=$2 esp=$3 usb=$4 answer=$5 tpm=${6:-}
    local dir=$work/$name.results prompt=$PROMPT
    case $answer in
    answer=*)
        prompt=${answer#answer=}
        answer=answer
        ;;
    esac
    mkdir -p "$dir"
    fat "$work/results.img" "$RESULTS_SERIAL" 16384
    rm -f "$work/serial.in" "$work/serial.out"
    mkfifo "$work/serial.in" "$work/serial.out"
    : >"$dir/console.log"
    cat "$work/serial.out" >>"$dir/console.log" &
    reader_pid=$!
    local tpm_args=()
    if [ -n "$tpm" ]; then
        mkdir -p "$tpm"
        rm -f "$tpm/swtpm.sock"
        # --terminate: swtpm exits when QEMU closes the control channel.
        swtpm socket --tpm2 --tpmstate "dir=$tpm" \
            --ctrl "type=unixio,path=$tpm/swtpm.sock" --terminate \
            --log "file=$dir/swtpm.log,level=1" >>"$dir/swtpm.log" 2>&1 &
        swtpm_pid=$!
        local i=0
        while [ ! -S "$tpm/swtpm.sock" ] && [ "$i" -lt 100 ]; do
            sleep 0.05
            i=$((i + 1))
        done
        [ -S "$tpm/swtpm.sock" ] || vm_fail "$name: swtpm did not create its socket; $(cat "$dir/swtpm.log")"
        # shellcheck disable=SC2054 # QEMU's option values have commas
        tpm_args=(-chardev "socket,id=chrtpm,path=$tpm/swtpm.sock"
            -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0)
    fi
    local t0=$SECONDS
    qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
        -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
        -append "console=ttyS0 quiet root=/dev/vda rw panic=-1 mitigations=off" \
        -chardev "pipe,id=console,path=$work/serial" -serial chardev:console \
        "${tpm_args[@]}" \
        -drive "file=$root,format=raw,if=virtio,cache=unsafe" \
        -drive "file=$esp,format=raw,if=virtio,cache=unsafe,readonly=on" \
        -drive "file=$work/results.img,format=raw,if=virtio,cache=unsafe" \
        -drive "file=$usb,format=raw,if=virtio,cache=unsafe,readonly=on" \
        >"$dir/qemu.log" 2>&1 &
    qemu_pid=$!
    local answered=no fd
    while kill -0 "$qemu_pid" 2>/dev/null; do
        if [ $((SECONDS - t0)) -ge "$BOOT_TIMEOUT" ]; then
            kill "$qemu_pid" 2>/dev/null || true
            vm_fail "$name: the guest did not power off within ${BOOT_TIMEOUT}s; console:"
            tail -n 30 "$dir/console.log"
            break
        fi
        if [ "$answer" = answer ] && [ "$answered" = no ] && grep -qF -- "$prompt" "$dir/console.log"; then
            # Type the passphrase (its newline is the Enter key) into the
            # serial console, from the 0600 file: never on a command line.
            exec {fd}<>"$work/serial.in"
            cat "$work/passphrase" >&"$fd"
            exec {fd}>&-
            answered=yes
            log "$name: answered the console prompt after $((SECONDS - t0))s"
        fi
        sleep 0.2
    done
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
    wait "$reader_pid" 2>/dev/null || true
    reader_pid=""
    if [ -n "$swtpm_pid" ]; then
        # It ends with QEMU (--terminate); a stuck one is stopped.
        local j=0
        while kill -0 "$swtpm_pid" 2>/dev/null && [ "$j" -lt 50 ]; do
            sleep 0.1
            j=$((j + 1))
        done
        kill "$swtpm_pid" 2>/dev/null || true
        wait "$swtpm_pid" 2>/dev/null || true
        swtpm_pid=""
    fi
    local took=$((SECONDS - t0))
    if [ "$answer" = answer ] && [ "$answered" = no ]; then
        vm_fail "$name: the prompt \"$prompt\" never appeared on the console"
    fi
    if ! mcopy -n -s -i "$work/results.img" '::/*' "$dir/" 2>"$dir/mcopy.err" || [ ! -f "$dir/done.txt" ]; then
        vm_fail "$name: the guest wrote no results; console:"
        tail -n 30 "$dir/console.log"
        cat "$dir/qemu.log"
    fi
    local uptime mu
    uptime=$(cut -d ' ' -f 1 "$dir/uptime.txt" 2>/dev/null || echo '?')
    mu=$(sed -n 's/^ActiveEnterTimestampMonotonic=\([0-9]*\)[0-9]\{6\}$/\1/p' "$dir/target.txt" 2>/dev/null || true)
    log "scenario $name: boot took ${took}s (QEMU start to power-off; multi-user.target at ${mu:-?}s, collector done at ${uptime}s of guest uptime)"
    printf '%s %s\n' "$name" "$took" >>"$work/boot-times"
}
