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
