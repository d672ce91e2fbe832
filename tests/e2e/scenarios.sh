#!/usr/bin/env bash
# The stages of tests/e2e, one block each: a comment saying what it
# proves, `scenario ID TITLE`, then `scenario_ID() { ... }`. They are one
# chain, run in the order written, each starting from what the one before
# left (the blob on $work/esp.img, the step's usb-uuid file); to add a
# stage, add a block. Over tests/e2e/lib.sh (fresh_root, install_root and
# the checks), tests/vm/lib.sh (boot, fat, unit_for) and
# tests/installer/lib.sh (tty_drive, the sampler, expect_*); the fixtures
# ($src, $pass, $binary, $step, the sticks) are run.sh's. Sourced, never
# run.
# shellcheck disable=SC2154 # $work, $pass, ... are run.sh's

## Unit configurations (rendered by nixos-modules/unit.nix) ################
interactive_cfg=$(jq -cn --argjson t "$ASK_TIMEOUT" '{passphrase: {mode: "interactive", timeout: $t}}')
wrong_stick_cfg=$(jq -cn --argjson t "$ASK_TIMEOUT" '{requireUsbPresent: true, usbWait: 5, passphrase: {mode: "interactive", timeout: $t}}')

# ---------------------------------------------------------------------------
# Install: installer/zeta-creds-step.sh runs on the host, on a scripted
# terminal (asked whether to run, the passphrase typed twice), against the
# guest's root tree (its /etc, taken out of the root image with debugfs) and
# an ESP directory, reading the "USB stick" (a FAT image, serial DEAD-BEEF)
# with blkid. The credentials come from a fake source tree whose zeta is
# uid/gid 1000. The blob goes into the ESP image (FAT, serial E5B0-0001,
# mounted by the guest at /boot) with mtools, the step's /etc/zeta/usb-uuid
# into the root image with debugfs.
scenario 1 "install: the step on a terminal, against the guest's root tree"
scenario_1() {
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
}

# ---------------------------------------------------------------------------
# First boot, with the ESP and the stick attached and the unit rendered from
# nixos-modules/unit.nix in the mode the step printed (interactive): the
# harness answers the console prompt; the guest has every credential at its
# path with the guest's own uid/gid for zeta (1500, not the host's 1000) and
# the exact modes and contents, zeta-creds-restore.service is active
# (exited) with status 0, no passphrase file is left in /run, and the
# passphrase is in no field of any journal entry nor on the console.
scenario 2 "first boot: the harness answers the prompt, the credentials are restored"
scenario_2() {
    boot first "$work/install.img" "$work/esp.img" "$work/usb-bound.img" answer
    active_exited first
    expect_eq "first: prompts on the console" "$(prompts first)" 1
    restored first
    expect_journal first "created"
    no_passphrase first
    [ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/install.img"
}

# ---------------------------------------------------------------------------
# Reinstall: a fresh guest root; the step (ZETA_CREDS_PICKER=1,
# ZETA_CREDS_PASSPHRASE, no terminal) finds the blob on the ESP bound to
# this stick and keeps it byte for byte; the next boot restores the same
# credentials, checked as in 2.
scenario 3 "reinstall: a fresh root, the step keeps the blob, the next boot restores it"
scenario_3() {
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
}

# ---------------------------------------------------------------------------
# A boot with the wrong stick attached (FAT serial CAFE-F00D) under
# requireUsbPresent: the unit fails with exit 4 and the "is not attached"
# message, asks no passphrase, writes nothing.
scenario 4 "requireUsbPresent with the wrong stick attached"
scenario_4() {
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
}

# ---------------------------------------------------------------------------
# Real reinstall, as the NixOS manual, disko and nixos-anywhere do it: the
# operator boots the live stick on the installed machine (a live guest with
# the machine's ESP, attached read-write, and the stick) and runs
# `zeta-creds install-step rescue` before partitioning: the default scan
# (lsblk) finds the blob on the ESP, prints its host, generation and where
# it came from, and copies it into /run/zeta-creds/rescued (0700 root,
# tmpfs) without a passphrase and without changing a byte of the ESP
# (checksum of the image before and after). The live guest copies the
# rescue directory to the results disk: the stand-in for "the same live
# session goes on to install", which this harness runs on the host. Then
# the ESP is reformatted (mkfs.vfat, new serial E5B0-0002, empty) and the
# root is fresh; the fresh root's fstab mounts the new ESP by its new UUID,
# as the hardware configuration nixos-generate-config writes for it does.
# The step (no terminal) with ZETA_CREDS_RESCUE_DIR at the rescued copy
# says it took the blob from the rescue directory, keeps it byte for byte
# and copies it to the new ESP; the next boot restores the same
# credentials with the guest's owners, asking the passphrase once.
scenario 5 "real reinstall: rescue on the live system, the ESP reformatted with a new serial, a fresh root"
scenario_5() {
    local r=$work/live-rescue.results before after rc=0
    mcopy -n -i "$work/esp.img" ::/zeta-creds.enc "$work/blob.installed"
    live_root live-rescue rescue
    before=$(sha256sum <"$work/esp.img")
    boot_drives live-rescue no "$work/live-rescue.img" "$work/esp.img" "$work/usb-bound.img:ro"
    after=$(sha256sum <"$work/esp.img")
    expect_eq "rescue: exit status" "$(cat "$r/rescue.rc" 2>/dev/null)" 0
    expect_eq "rescue: the ESP image is unchanged (sha256 before and after the live boot)" "$after" "$before"
    expect_grep "rescue: names where the blob came from (the ESP, /dev/vdb)" "$r/rescue.log" "/dev/vdb"
    expect_grep "rescue: names the host, the stick and the generation" "$r/rescue.log" "host zeta-vm, stick dead-beef, generation "
    expect_grep "rescue: says it copied the blob" "$r/rescue.log" "1 blob(s) copied to /run/zeta-creds/rescued"
    expect_eq "rescue: the rescue directory (mode, owner, group; filesystem)" "$(tr '\n' ' ' <"$r/rescued-dir.txt")" "700 root root tmpfs "
    rm -rf "$work/rescued"
    mkdir -m 0700 "$work/rescued"
    cp "$r/rescued/"* "$work/rescued/" 2>/dev/null || true
    expect_eq "rescue: blobs rescued" "$(find "$work/rescued" -type f | wc -l)" 1
    if cmp -s "$work/rescued/"*.enc "$work/blob.installed"; then
        ok "rescue: the rescued blob is the installed one, byte for byte"
    else
        bad "rescue: the rescued blob differs from the one on the ESP"
    fi
    expect_no_secret "rescue: no passphrase in its output" "$r/rescue.log"
    [ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/live-rescue.img"

    # The installer wipes the ESP and the root.
    fat "$work/esp.img" "$REINSTALL_ESP_SERIAL" 8192
    expect_eq "wipe: the reformatted ESP holds no blob" "$(mdir -b -i "$work/esp.img" ::/ 2>/dev/null)" ""
    fresh_root rebuilt
    mkdir -p "$work/esp3"
    sampler_start
    ZETA_CREDS_RESCUE_DIR=$work/rescued ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass TMPDIR=$work \
        setsid -w "$step" --target "$work/rebuilt.tree" --esp "$work/esp3" --usb-device "$work/usb-bound.img" \
        --zeta-creds "$binary" --work-factor 10 \
        </dev/null >"$work/step3.log" 2>&1 || rc=$?
    sampler_stop
    expect_eq "step: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/step3.log"
    expect_grep "step: says the blob came from the rescue directory" "$work/step3.log" "from the rescue directory"
    expect_grep "step: copied it to the ESP" "$work/step3.log" "copied the blob from the rescue directory"
    if cmp -s "$work/esp3/zeta-creds.enc" "$work/blob.installed"; then
        ok "step: the new ESP holds the installed blob, byte for byte"
    else
        bad "step: the blob on the new ESP is not the installed one"
    fi
    expect_eq "step: usb-uuid" "$(cat "$work/rebuilt.tree/etc/zeta/usb-uuid" 2>/dev/null)" DEAD-BEEF
    expect_no_secret "step: the passphrase was not echoed" "$work/step3.log"
    expect_eq "step: passphrase in no process argv" "$(cat "$work/argv-hits")" ""
    fat "$work/esp.img" "$REINSTALL_ESP_SERIAL" 8192 "$work/esp3/zeta-creds.enc" zeta-creds.enc
    esp_fstab rebuilt "$REINSTALL_ESP_SERIAL"
    install_root rebuilt "$interactive_cfg"
    boot rebuilt "$work/rebuilt.img" "$work/esp.img" "$work/usb-bound.img" answer
    active_exited rebuilt
    expect_eq "rebuilt: prompts on the console" "$(prompts rebuilt)" 1
    restored rebuilt
    expect_journal rebuilt "created"
    no_passphrase rebuilt
    [ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/rebuilt.img"
}

# ---------------------------------------------------------------------------
# A brand-new machine (empty disk, empty ESP) from the stick's stash. The
# stick is partitioned as installer/README.md says to prepare one:
# partition 1 the stick's FAT (serial DEAD-BEEF, the UUID the blob is bound
# to), partition 2 a FAT labelled ZETA-CREDS holding zeta-vm.enc, the blob
# of this host as the step leaves it there (seeded from the installed
# blob). The step runs in the live guest, against the new root disk at
# /mnt and the new ESP (serial E5B0-0003) at /mnt/boot, with
# --usb-device the stick's partition 1: it finds the stash partition on
# the same disk by its label (lsblk), mounts it only while it runs, says
# the blob came from the stash, keeps it and copies it to the new ESP. The
# stash afterwards still holds zeta-vm.enc (mtools on the stick image); the
# first boot of the new machine restores the credentials.
scenario 6 "a new machine from the stick's stash: the step on the live system finds the ZETA-CREDS partition"
scenario_6() {
    local r=$work/live-install.results
    mcopy -n -i "$work/esp.img" ::/zeta-creds.enc "$work/blob.stashed"
    partitioned_stick "$work/stick.img" "$STASH_SERIAL" "$work/blob.stashed" zeta-vm.enc
    cp --sparse=always "$guest/root.img" "$work/new.img"
    tune2fs -U "$NEW_ROOT_UUID" "$work/new.img" >"$work/tune2fs.log" 2>&1 || {
        cat "$work/tune2fs.log"
        bad "new machine: tune2fs -U failed"
        return 0
    }
    fat "$work/esp-new.img" "$NEW_ESP_SERIAL" 8192
    printf '%s\n' "$NEW_ROOT_UUID" >"$work/job.target-uuid"
    printf '%s\n' "${NEW_ESP_SERIAL:0:4}-${NEW_ESP_SERIAL:4:4}" >"$work/job.esp-uuid"
    printf '%s\n' "${BOUND_SERIAL:0:4}-${BOUND_SERIAL:4:4}" >"$work/job.stick-uuid"
    live_root live-install install "$work/job.target-uuid" target-uuid 644 \
        "$work/job.esp-uuid" esp-uuid 644 "$work/job.stick-uuid" stick-uuid 644 \
        "$work/passphrase" passphrase 600
    boot_drives live-install no "$work/live-install.img" "$work/stick.img" "$work/new.img" "$work/esp-new.img"
    [ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/live-install.img"
    expect_eq "live step: exit status" "$(cat "$r/install.rc" 2>/dev/null)" 0
    [ "$(cat "$r/install.rc" 2>/dev/null)" = 0 ] || show_log "$r/install.log"
    expect_grep "live step: found the stash partition on the stick" "$r/install.log" "stash: "
    expect_grep "live step: says the blob came from the stash" "$r/install.log" "from the stash on the stick"
    expect_grep "live step: copied it to the ESP" "$r/install.log" "copied the blob from the stash on the stick"
    expect_no_secret "live step: the passphrase was not echoed" "$r/install.log"
    if [ ! -f "$r/mounts-after.txt" ]; then
        bad "live step: the guest did not list its mounts after the step"
    elif grep -q zeta-creds-stash "$r/mounts-after.txt"; then
        bad "live step: the stash is still mounted after the step: $(grep zeta-creds-stash "$r/mounts-after.txt")"
    else
        ok "live step: the stash was unmounted when the step ended"
    fi
    no_passphrase live-install
    mcopy -n -i "$work/esp-new.img" ::/zeta-creds.enc "$work/blob.new" 2>/dev/null || true
    if cmp -s "$work/blob.new" "$work/blob.stashed"; then
        ok "new ESP: holds the stash's blob, byte for byte"
    else
        bad "new ESP: does not hold the stash's blob"
    fi
    mdir -b -i "$work/stick.img@@$STASH_OFFSET" ::/ >"$work/stash.list" 2>&1 || true
    if mtype -i "$work/stick.img@@$STASH_OFFSET" ::/zeta-vm.enc 2>/dev/null | cmp -s - "$work/blob.stashed"; then
        ok "stash: still holds zeta-vm.enc, unchanged (the step kept that blob)"
    else
        bad "stash: zeta-vm.enc is missing or changed: $(tr '\n' ' ' <"$work/stash.list")"
    fi
    expect_eq "stash: no .prev (nothing was rewritten)" "$(grep -c '\.prev' "$work/stash.list" || true)" 0
    mkdir -p "$work/new.tree/etc/zeta"
    debugfs -R "cat /etc/zeta/usb-uuid" "$work/new.img" 2>/dev/null >"$work/new.tree/etc/zeta/usb-uuid"
    expect_eq "live step: usb-uuid in the new root" "$(cat "$work/new.tree/etc/zeta/usb-uuid")" DEAD-BEEF

    # The new machine's first boot.
    esp_fstab new "$NEW_ESP_SERIAL"
    unit_for new "$interactive_cfg"
    local cmds
    mapfile -t cmds < <(
        put "$binary" "$GUEST_BINARY" 755
        unit_cmds new
    )
    debugfs_write "$work/new.img" "${cmds[@]}"
    boot new "$work/new.img" "$work/esp-new.img" "$work/stick.img" answer
    active_exited new
    expect_eq "new: prompts on the console" "$(prompts new)" 1
    restored new
    expect_journal new "created"
    no_passphrase new
    [ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/new.img"
}

# ---------------------------------------------------------------------------
# Node B's blob on node A's ESP: a blob sealed with the same stick and
# passphrase for host node-b (`zeta-creds bundle --host node-b`), put on
# the ESP of this guest (hostname zeta-vm): the unit fails with exit 4 and
# a message naming both hosts, asks no passphrase, writes nothing.
scenario 7 "node B's blob on node A's ESP: refused at boot with exit 4"
scenario_7() {
    local rc=0
    cp "$work/passphrase" "$work/node-b.passphrase"
    "$binary" bundle --source-root "$src" --manifest "$repo/manifest/default.toml" \
        --out "$work/node-b.enc" --usb-uuid DEAD-BEEF --host node-b --work-factor 10 \
        --passphrase-file "$work/node-b.passphrase" </dev/null >"$work/node-b.log" 2>&1 || rc=$?
    expect_eq "bundle --host node-b: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/node-b.log"
    "$binary" inspect "$work/node-b.enc" >"$work/node-b.inspect" 2>&1 || true
    expect_grep "bundle: the blob is for node-b" "$work/node-b.inspect" "node-b"
    fat "$work/esp-node-b.img" "$ESP_SERIAL" 8192 "$work/node-b.enc" zeta-creds.enc
    fresh_root nodea
    cp "$work/install.tree/etc/zeta/usb-uuid" "$work/nodea.tree/etc/zeta/usb-uuid"
    install_root nodea "$interactive_cfg"
    boot nodea "$work/nodea.img" "$work/esp-node-b.img" "$work/usb-bound.img" no
    expect_prop nodea ActiveState failed
    expect_prop nodea ExecMainStatus 4
    expect_prop nodea NRestarts 0
    expect_journal nodea "node-b"
    expect_journal nodea "zeta-vm"
    expect_eq "nodea: prompts on the console" "$(prompts nodea)" 0
    nothing_written nodea
    no_passphrase nodea
    [ -n "${ZETA_E2E_KEEP:-}" ] || rm -f "$work/nodea.img"
}
