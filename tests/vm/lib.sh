#!/usr/bin/env bash
# Helpers shared by tests/vm/run.sh, its scenarios.sh and tests/e2e: the
# scenario list, the cached Debian guest, FAT and ext4 image editing, the
# unit rendered by nixos-modules/unit.nix, one QEMU boot (optionally with
# a software TPM2, swtpm), a scenario's root image, and the checks of
# tests/vm's scenarios. Sourced, never run.
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

## Scenarios ################################################################
# A scenarios.sh file is a list of blocks, each `scenario ID TITLE [FLAG]`
# and then `scenario_ID() { ... }`; the caller runs them in that order.
# (tests/installer/lib.sh has the same list, for tests/e2e, which sources
# both.)
scenario_ids=()
declare -A scenario_titles=() scenario_flags=()
# scenario ID TITLE [FLAG]: register scenario_ID; FLAG `tpm` says it needs
# a software TPM2 (swtpm).
# shellcheck disable=SC2034 # the lists are read by the caller
scenario() {
    scenario_ids+=("$1")
    scenario_titles[$1]=$2
    scenario_flags[$1]=${3:-}
}

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
# image $work/NAME.img already has units (zeta-creds-restore.service, its
# enabling link, maybe the check unit): each one NAME's units replace is
# removed first, and the link kept.
unit_cmds() {
    local f unit
    for f in "$work/$1.units"/*; do
        unit=/etc/systemd/system/$(basename "$f")
        if [ "${2:-}" = relink ] &&
            debugfs -R "stat $unit" "$work/$1.img" 2>/dev/null | grep -q '^Inode:'; then
            echo "rm $unit"
        fi
        put "$f" "$unit" 644
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
# ESP_READONLY=off attaches the ESP writable (a scenario that re-bundles;
# its guest's fstab must mount /boot rw too).
# Results land in $work/NAME.results/; boot times in $work/boot-times.
boot() {
    local ro=on
    [ "${ESP_READONLY:-on}" = off ] && ro=off
    local esp=$3
    [ "$ro" = on ] && esp=$3:ro
    run_guest "$1" "$5" "${6:-}" "$2" "$esp" RESULTS "$4:ro"
}

# run_guest NAME ANSWER TPM_STATE_DIR DRIVE...: the one QEMU boot behind
# boot and boot_drives. DRIVE is an image file (read-write), FILE:ro
# (read-only) or RESULTS (the results disk, FAT serial 5E5E-0001, made
# anew), attached in the order given, the first as /dev/vda (the root).
# ANSWER and TPM_STATE_DIR (empty: none) as boot's.
run_guest() {
    local name=$1 answer=$2 tpm=$3
    shift 3
    local dir=$work/$name.results prompt=$PROMPT drive drives=()
    case $answer in
    answer=*)
        prompt=${answer#answer=}
        answer=answer
        ;;
    esac
    for drive in "$@"; do
        case $drive in
        RESULTS) drives+=(-drive "file=$work/results.img,format=raw,if=virtio,cache=unsafe") ;;
        *:ro) drives+=(-drive "file=${drive%:ro},format=raw,if=virtio,cache=unsafe,readonly=on") ;;
        *) drives+=(-drive "file=$drive,format=raw,if=virtio,cache=unsafe") ;;
        esac
    done
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
    # no_timer_check: under TCG on a loaded host the kernel's early check of
    # the timer interrupt can miss its window and panic ("IO-APIC + timer
    # doesn't work", seen once in a full run); it says nothing of zeta-creds.
    qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
        -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
        -append "console=ttyS0 quiet root=/dev/vda rw panic=-1 mitigations=off no_timer_check" \
        -chardev "pipe,id=console,path=$work/serial" -serial chardev:console \
        "${tpm_args[@]}" \
        "${drives[@]}" \
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

## Root images ##############################################################
# root_for NAME CFG_JSON [EXTRA DEBUGFS COMMANDS...]: a copy of the cached
# guest with our binary, the rendered unit enabled, and the UUID file.
root_for() {
    local name=$1 cfg=$2
    shift 2
    unit_for "$name" "$cfg"
    cp --sparse=always "$guest/root.img" "$work/$name.img"
    local cmds
    mapfile -t cmds < <(
        put "$binary" "$GUEST_BINARY" 755
        unit_cmds "$name"
        put "$work/usb-uuid" /etc/zeta/usb-uuid 644
    )
    debugfs_write "$work/$name.img" "${cmds[@]}" "$@"
}
stage_cmds() { # the passphrase file the guest's zeta-vm-stage moves to /run
    put "$1" /var/lib/zeta-vm/stage-passphrase 600
}

## Checks of tests/vm's scenarios, from the guest's view ####################
# (tests/e2e defines its own after sourcing this file.) They count
# failures with the caller's fail and print with its ok; $expected_tree is
# the caller's.
# have NAME FILE: the guest wrote FILE; a check on a missing file fails.
have() {
    [ -f "$work/$1.results/$2" ] && return 0
    fail "$1: the guest did not write $2"
    return 1
}
prop() { sed -n "s/^$2=//p" "$work/$1.results/unit.txt" 2>/dev/null || true; }
expect_prop() {
    local name=$1 key=$2 want=$3 got
    got=$(prop "$name" "$key")
    if [ "$got" = "$want" ]; then
        ok "$name: $key=$want"
    else
        fail "$name: $key is '$got', expected '$want'"
    fi
}
expect_unit_journal() {
    local name=$1 text=$2
    have "$name" unit-journal.txt || return 0
    if grep -qiF -- "$text" "$work/$name.results/unit-journal.txt"; then
        ok "$name: the unit's journal says \"$text\""
    else
        fail "$name: the unit's journal does not say \"$text\":"
        cat "$work/$name.results/unit-journal.txt"
    fi
}
# Neither passphrase in any journal field, the console, or the status.
no_passphrase() {
    local name=$1 dir=$work/$1.results f leaked=no
    have "$name" journal-verbose.txt || return 0
    for f in journal-verbose.txt journal.txt unit-journal.txt status.txt console.log; do
        [ -f "$dir/$f" ] || continue
        if grep -qF -f "$work/passphrase" "$dir/$f" || grep -qF -f "$work/wrong-passphrase" "$dir/$f"; then
            fail "$name: a passphrase appears in the guest's $f"
            leaked=yes
        fi
    done
    [ "$leaked" = yes ] || ok "$name: no passphrase in the journal (every field of $(grep -c '^[A-Z][a-z][a-z] [0-9]' "$dir/journal-verbose.txt" || true) entries), the status or the console"
}
# The paths every fresh guest has in the trees the collector lists.
pristine='^/home/zeta(/\.bashrc|/\.profile|/\.bash_logout)? |^/root(/\.bashrc|/\.profile|/\.ssh)? |^/etc/zeta(/usb-uuid)? |^/var/lib/sops-nix |^/var/lib/zeta-creds '
nothing_written() {
    local name=$1 extra
    have "$name" tree.txt || return 0
    extra=$(grep -Ev "$pristine" "$work/$name.results/tree.txt" || true)
    if [ -z "$extra" ]; then
        ok "$name: nothing written (the guest's trees are as built)"
    else
        fail "$name: found what the restore must not have written:"
        printf '  %s\n' "$extra"
    fi
}
no_run_passphrase() {
    local name=$1 left
    have "$name" run.txt || return 0
    left=$(cat "$work/$name.results/run.txt")
    if [ -z "$left" ]; then
        ok "$name: no passphrase file left in /run"
    else
        fail "$name: left in /run: $left"
    fi
}
restored() {
    local name=$1 got
    have "$name" tree.txt && have "$name" sums.txt || return 0
    got=$(grep -Ev "$pristine" "$work/$name.results/tree.txt" || true)
    # The state record is checked for presence, mode and owner only.
    if [ "$got" = "$expected_tree" ]; then
        ok "$name: every restored path, owner (guest uid $GUEST_UID, not the source's $SOURCE_UID) and mode as expected, nothing else"
    else
        fail "$name: the restored tree differs (guest view: path uid gid user group mode type):"
        diff <(printf '%s\n' "$expected_tree") <(printf '%s\n' "$got") | sed 's/^/  /' || true
    fi
    if join -1 2 -2 2 <(sort -k 2 "$work/expected-sums.txt") <(sort -k 2 "$work/$name.results/sums.txt") |
        awk '$2 != $3 { bad = 1 } END { exit bad }' &&
        [ "$(join -1 2 -2 2 <(sort -k 2 "$work/expected-sums.txt") <(sort -k 2 "$work/$name.results/sums.txt") | wc -l)" -eq "$(wc -l <"$work/expected-sums.txt")" ]; then
        ok "$name: every restored file has the source's content ($(wc -l <"$work/expected-sums.txt") files)"
    else
        fail "$name: restored contents differ from the source tree"
    fi
}
# credential mode: the unit stopped when the restore exited, and systemd
# released its decrypted credentials with it (nixos-modules/README.md).
credential_released() {
    local name=$1
    expect_prop "$name" ActiveState inactive
    have "$name" credentials.txt || return 0
    if grep -qF "zeta-creds-restore.service" "$work/$name.results/credentials.txt"; then
        fail "$name: the unit's decrypted credentials are still in /run/credentials:"
        cat "$work/$name.results/credentials.txt"
    else
        ok "$name: /run/credentials holds nothing of zeta-creds-restore.service after the restore"
    fi
}
prompts() { grep -cF "$PROMPT" "$work/$1.results/console.log" 2>/dev/null || true; }
# expect_prompts NAME N: the console showed the passphrase prompt N times.
expect_prompts() {
    local n
    n=$(prompts "$1")
    if [ "$n" -eq "$2" ]; then
        ok "$1: the console showed the passphrase prompt $2 time(s)"
    else
        fail "$1: the console showed the passphrase prompt $n time(s), expected $2"
    fi
}

# discard IMAGE: a scenario's root image is not needed after its checks
# (kept with ZETA_VM_KEEP=1, for a look with debugfs).
discard() { [ "${ZETA_VM_KEEP:-}" = 1 ] || rm -f "$1"; }
# in_file NAME FILE TEXT: the guest's FILE (of NAME's results) has TEXT.
in_file() {
    local name=$1 file=$2 text=$3
    have "$name" "$file" || return 0
    if grep -qF -- "$text" "$work/$name.results/$file"; then
        ok "$name: $file says \"$text\""
    else
        fail "$name: $file does not say \"$text\":"
        tail -n 20 "$work/$name.results/$file"
    fi
}
fprop() { sed -n "s/^$2=//p" "$work/$1.results/fallback-unit.txt" 2>/dev/null || true; }
# no_passphrase_bytes WHAT FILE...: the passphrase is in no byte of these
# files (disk images are read raw: a deleted file's blocks count too).
no_passphrase_bytes() {
    local what=$1 f hit=""
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue # swtpm's socket
        if grep -qaF -f "$work/passphrase" -- "$f"; then
            hit="$hit $f"
        fi
    done
    if [ -z "$hit" ]; then
        ok "$what: the passphrase is in no byte of $*"
    else
        fail "$what: the passphrase is in$hit"
    fi
}
# after_fallback NAME: logins (systemd-user-sessions) were allowed only
# after the fallback restore had finished.
after_fallback() {
    local name=$1 done_at sessions_at
    done_at=$(fprop "$name" ExecMainExitTimestampMonotonic)
    sessions_at=$(sed -n 's/^ActiveEnterTimestampMonotonic=//p' "$work/$name.results/user-sessions.txt" 2>/dev/null || true)
    if [ -n "$done_at" ] && [ -n "$sessions_at" ] && [ "$done_at" -gt 0 ] && [ "$sessions_at" -ge "$done_at" ]; then
        ok "$name: logins allowed at ${sessions_at}us, after the fallback restore finished at ${done_at}us"
    else
        fail "$name: systemd-user-sessions did not wait for the fallback (user-sessions at '${sessions_at}', fallback done at '${done_at}')"
    fi
}

## Booting with other drives (tests/e2e) ####################################
# boot_drives NAME ANSWER DRIVE...: one fresh boot like boot's, with any
# set of disks: DRIVE is an image file, attached read-write, or FILE:ro,
# attached read-only, in the order given (the first is /dev/vda, the
# root); the results disk (FAT serial 5E5E-0001) is attached after them.
# For the machines boot's fixed four disks do not model: a live system
# with the machine's disks and the stick, a target disk and a new ESP.
# ANSWER as boot's; no TPM. Results land in $work/NAME.results/.
boot_drives() {
    local name=$1 answer=$2
    shift 2
    run_guest "$name" "$answer" "" "$@" RESULTS
}
