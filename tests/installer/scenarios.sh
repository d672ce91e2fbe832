#!/usr/bin/env bash
# The scenarios of tests/installer, one block each: a comment saying what
# it proves, `scenario ID TITLE`, then `scenario_ID() { ... }`, the setup,
# the step run and every check. tests/installer/run.sh sources this file,
# then runs the blocks in the order they are written; to add a scenario,
# add a block. The helpers (run_step, tty_step, header, entry_count,
# check_uuid_file, nothing_written, sealed_ok, not_sealed, make_target,
# tty_drive, expect_*) are in tests/installer/lib.sh; the fixtures ($pass,
# $pass2, $wrong, $weak, $zcw, $real_zc, $step, $fake_creds, the stick
# images under $work) are set by run.sh. Sourced, never run.
#
# Scenarios D to J reinstall over scenario A's ESP ($work/A/esp, $blobA):
# they run after it.
# shellcheck disable=SC2154 # $work, $pass, ... are run.sh's

# ---------------------------------------------------------------------------
# Fresh install, ZETA_CREDS_PICKER=1 and ZETA_CREDS_PASSPHRASE, no
# terminal, under `bash -x`: usb-uuid file (content, 0644, root, no
# temporary left), the blob's header (UUID, persona, generation), its
# entry count (verify), the NixOS lines, and no passphrase in the trace.
scenario A "fresh install: ZETA_CREDS_PICKER=1, ZETA_CREDS_PASSPHRASE, no terminal, bash -x"
scenario_A() {
    make_target "$work/A/root" creds
    mkdir -p "$work/A/esp"
    : >"$work/calls"
    rc=0
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass TMPDIR=$work/tmp setsid -w bash -x "$step" \
        --target "$work/A/root" --esp "$work/A/esp" --usb-device "$work/stick.img" \
        --zeta-creds "$zcw" --work-factor 10 </dev/null >"$work/A.log" 2>&1 || rc=$?
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/A.log"
    check_uuid_file "$work/A/root" DEAD-BEEF
    blobA=$work/A/esp/zeta-creds.enc
    expect_eq "header usb_uuid" "$(header "$blobA" usb_uuid)" dead-beef
    expect_eq "header persona" "$(header "$blobA" persona)" ""
    expect_eq "header host (TARGET/etc/hostname, resolved inside the target)" "$(header "$blobA" host)" node-a
    expect_eq "header generation" "$(header "$blobA" generation)" 1
    expect_eq "header work factor" "$(header "$blobA" work_factor)" 10
    expect_eq "entries (verify)" "$(entry_count "$blobA" "$pass")" "$CREDS_ENTRIES"
    expect_eq "zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "bundle verify "
    expect_grep "NixOS line: enable" "$work/A.log" "zeta.credsRestore.enable = true;"
    expect_grep "NixOS line: mode" "$work/A.log" 'zeta.credsRestore.passphrase.mode = "interactive";'
    expect_grep "the trace is there (bash -x)" "$work/A.log" "+ secret_begin"
    expect_no_secret "no passphrase in the bash -x trace" "$work/A.log"
    expect_no_grep "the ESP path is not under the target: blob line is a hint" "$work/A.log" \
        'zeta.credsRestore.blob = "/'

    # The ESP inside the target: the blob line names the installed path.
    make_target "$work/A2/root" creds
    mkdir -p "$work/A2/root/boot"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/A2.log" \
        --target "$work/A2/root" --esp "$work/A2/root/boot" --usb-device "$work/stick.img"
    expect_eq "ESP at TARGET/boot: exit status" "$rc" 0
    # /boot is the module's default (boot.loader.efi.efiSysMountPoint): no
    # blob line to paste.
    expect_no_grep "NixOS lines: no blob line for the default /boot" "$work/A2.log" 'zeta.credsRestore.blob = "/'
    # An ESP mounted elsewhere in the target: the line names it.
    make_target "$work/A3/root" creds
    mkdir -p "$work/A3/root/efi"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/A3.log" \
        --target "$work/A3/root" --esp "$work/A3/root/efi" --usb-device "$work/stick.img"
    expect_eq "ESP at TARGET/efi: exit status" "$rc" 0
    expect_grep "NixOS line: blob under /efi" "$work/A3.log" 'zeta.credsRestore.blob = "/efi/zeta-creds.enc";'
}

# ---------------------------------------------------------------------------
# Fresh install on a scripted terminal: asked whether to run, a weak
# passphrase refused and asked again, two that differ asked again, the
# persona in the header, the passphrase never echoed.
scenario B "fresh install on a terminal: asked to run, weak and mismatched passphrases asked again"
scenario_B() {
    make_target "$work/B/root" creds
    mkdir -p "$work/B/esp"
    tty_step "$work/B.log" --target "$work/B/root" --esp "$work/B/esp" \
        --usb-device "$work/stick.img" --persona reviewer -- \
        "Seal your credentials now? [Y/n]" "" \
        "New passphrase for" "$weak" \
        "Repeat the passphrase:" "$weak" \
        "New passphrase for" "$pass2" \
        "Repeat the passphrase:" "$pass" \
        "New passphrase for" "$pass2" \
        "Repeat the passphrase:" "$pass2"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/B.log"
    expect_grep "the weak passphrase was refused" "$work/B.log" "too weak"
    expect_grep "and asked again" "$work/B.log" "choose a stronger passphrase"
    expect_grep "passphrases that differ are asked again" "$work/B.log" "the two passphrases differ"
    check_uuid_file "$work/B/root" DEAD-BEEF
    expect_eq "header persona" "$(header "$work/B/esp/zeta-creds.enc" persona)" reviewer
    expect_eq "header generation" "$(header "$work/B/esp/zeta-creds.enc" generation)" 1
    expect_eq "entries (verify)" "$(entry_count "$work/B/esp/zeta-creds.enc" "$pass2")" "$CREDS_ENTRIES"
    expect_grep "NixOS line: persona" "$work/B.log" 'zeta.credsRestore.persona = "reviewer";'
    expect_no_secret "no passphrase echoed on the terminal" "$work/B.log"
}

# ---------------------------------------------------------------------------
# The opt-outs: ZETA_CREDS_PICKER=0; unset with no terminal; unset and
# "n" on the terminal; =1 with no passphrase source (exit 6): nothing
# written, zeta-creds never run on a skip.
scenario C "opt-outs"
scenario_C() {
    make_target "$work/C/root" creds
    mkdir -p "$work/C/esp"
    Cargs=(--target "$work/C/root" --esp "$work/C/esp" --usb-device "$work/stick.img")
    ZETA_CREDS_PICKER=0 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/C1.log" "${Cargs[@]}"
    expect_eq "ZETA_CREDS_PICKER=0: exit status" "$rc" 0
    expect_grep "ZETA_CREDS_PICKER=0: says it skipped" "$work/C1.log" "skipped: ZETA_CREDS_PICKER=0"
    expect_eq "ZETA_CREDS_PICKER=0: zeta-creds calls" "$(cat "$work/calls")" ""
    nothing_written "$work/C/root" "$work/C/esp"

    ZETA_CREDS_PASSPHRASE=$pass run_step "$work/C2.log" "${Cargs[@]}"
    expect_eq "unset, no terminal: exit status" "$rc" 0
    expect_grep "unset, no terminal: says it skipped" "$work/C2.log" "there is no terminal to ask on"
    expect_eq "unset, no terminal: zeta-creds calls" "$(cat "$work/calls")" ""
    nothing_written "$work/C/root" "$work/C/esp"

    tty_step "$work/C3.log" "${Cargs[@]}" -- "Seal your credentials now? [Y/n]" "n"
    expect_eq "unset, 'n' on the terminal: exit status" "$rc" 0
    expect_grep "unset, 'n' on the terminal: says it skipped" "$work/C3.log" "skipped: you chose not to"
    expect_eq "unset, 'n' on the terminal: zeta-creds calls" "$(cat "$work/calls")" ""
    nothing_written "$work/C/root" "$work/C/esp"

    ZETA_CREDS_PICKER=1 run_step "$work/C4.log" "${Cargs[@]}"
    expect_eq "=1, no passphrase, no terminal: exit status" "$rc" 6
    expect_grep "=1, no passphrase, no terminal: says why" "$work/C4.log" "no passphrase: ZETA_CREDS_PASSPHRASE is not set"
    nothing_written "$work/C/root" "$work/C/esp"
}

# ---------------------------------------------------------------------------
# Reinstall, keep (ZETA_CREDS_REBUNDLE=0, and unset without a
# terminal): a fresh target gets the usb-uuid file, the blob is left
# byte for byte, no bundle runs.
scenario D "reinstall, keep (ZETA_CREDS_REBUNDLE=0, and unset without a terminal)"
scenario_D() {
    cp "$blobA" "$work/blobA.orig"
    for variant in 0 unset; do
        rm -rf "$work/D"
        make_target "$work/D/root" # a fresh system: none of the credentials yet
        if [ "$variant" = 0 ]; then
            ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=0 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/D.log" \
                --target "$work/D/root" --esp "$work/A/esp" --usb-device "$work/stick.img"
        else
            ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/D.log" \
                --target "$work/D/root" --esp "$work/A/esp" --usb-device "$work/stick.img"
        fi
        expect_eq "REBUNDLE=$variant: exit status" "$rc" 0
        [ "$rc" -eq 0 ] || show_log "$work/D.log"
        expect_grep "REBUNDLE=$variant: says the blob is bound to this stick" "$work/D.log" \
            "already holds a blob bound to this stick"
        expect_grep "REBUNDLE=$variant: kept" "$work/D.log" "kept the blob already on the ESP"
        check_uuid_file "$work/D/root" DEAD-BEEF
        if cmp -s "$blobA" "$work/blobA.orig"; then ok "REBUNDLE=$variant: blob unchanged, byte for byte"; else bad "REBUNDLE=$variant: the blob changed"; fi
        expect_eq "REBUNDLE=$variant: zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect verify verify "
    done
}

# ---------------------------------------------------------------------------
# Reinstall, keep on the terminal, a wrong passphrase asked again.
scenario E "reinstall, keep on the terminal, a wrong passphrase asked again"
scenario_E() {
    make_target "$work/E/root"
    tty_step "$work/E.log" --target "$work/E/root" --esp "$work/A/esp" --usb-device "$work/stick.img" -- \
        "Seal your credentials now? [Y/n]" "y" \
        "Keep or re-bundle? [K/r]" "" \
        "Passphrase of the blob on the ESP" "$wrong" \
        "Passphrase of the blob on the ESP" "$pass"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/E.log"
    expect_grep "the wrong passphrase was refused" "$work/E.log" "wrong passphrase"
    check_uuid_file "$work/E/root" DEAD-BEEF
    expect_grep "the list of what the first boot restores" "$work/E.log" ".config/gh/hosts.yml"
    if cmp -s "$blobA" "$work/blobA.orig"; then ok "blob unchanged"; else bad "the blob changed"; fi
    expect_no_secret "no passphrase echoed on the terminal" "$work/E.log"
}

# ---------------------------------------------------------------------------
# Reinstall, re-bundle (ZETA_CREDS_REBUNDLE=1): the diff is shown, the
# generation rises, the old blob is kept as .prev.
scenario F "reinstall, re-bundle (ZETA_CREDS_REBUNDLE=1): diff shown, generation rises"
scenario_F() {
    printf 'github.com:\n    oauth_token: gho_rotated0002\n' >"$work/A/root/home/zeta/.config/gh/hosts.yml"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/F.log" \
        --target "$work/A/root" --esp "$work/A/esp" --usb-device "$work/stick.img"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/F.log"
    expect_grep "the diff names the rotated login" "$work/F.log" ".config/gh/hosts.yml"
    expect_eq "zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect diff bundle verify "
    expect_eq "header generation" "$(header "$blobA" generation)" 2
    expect_eq "old blob kept as .prev (generation)" "$(header "$blobA.prev" generation)" 1
    expect_eq "entries (verify)" "$(entry_count "$blobA" "$pass")" "$CREDS_ENTRIES"
    check_uuid_file "$work/A/root" DEAD-BEEF
}

# ---------------------------------------------------------------------------
# Reinstall, re-bundle on the terminal, confirmed after the diff.
scenario G "reinstall, re-bundle on the terminal, confirmed after the diff"
scenario_G() {
    printf '{"tokens":{"access_token":"codex-rotated"}}\n' >"$work/A/root/home/zeta/.codex/auth.json"
    tty_step "$work/G.log" --target "$work/A/root" --esp "$work/A/esp" --usb-device "$work/stick.img" -- \
        "Seal your credentials now? [Y/n]" "y" \
        "Keep or re-bundle? [K/r]" "r" \
        "New passphrase for" "$pass" \
        "Repeat the passphrase:" "$pass" \
        "Re-bundle with these changes? [Y/n]" "y"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/G.log"
    expect_grep "the diff names the rotated login" "$work/G.log" ".codex/auth.json"
    expect_eq "header generation" "$(header "$blobA" generation)" 3
    expect_no_secret "no passphrase echoed on the terminal" "$work/G.log"
}

# ---------------------------------------------------------------------------
# Reinstall, keep with the wrong passphrase: exit 3, nothing changed.
scenario H "reinstall, keep with the wrong passphrase"
scenario_H() {
    cp "$blobA" "$work/blobA.gen3"
    make_target "$work/H/root"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$wrong run_step "$work/H.log" \
        --target "$work/H/root" --esp "$work/A/esp" --usb-device "$work/stick.img"
    expect_eq "exit status" "$rc" 3
    expect_grep "says the blob does not open" "$work/H.log" "does not open with this passphrase"
    expect_missing "no usb-uuid file" "$work/H/root/etc/zeta/usb-uuid"
    if cmp -s "$blobA" "$work/blobA.gen3"; then ok "blob unchanged"; else bad "the blob changed"; fi
}

# ---------------------------------------------------------------------------
# The blob is bound to another stick: moved with rekey (same entries,
# new UUID, generation rises), or re-bundled with ZETA_CREDS_REBUNDLE=1.
scenario I "the blob is bound to another stick: moved (rekey), or re-bundled"
scenario_I() {
    make_target "$work/I/root"
    mkdir -p "$work/I/esp"
    cp "$blobA" "$work/I/esp/zeta-creds.enc"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/I1.log" \
        --target "$work/I/root" --esp "$work/I/esp" --usb-device "$work/other.img"
    expect_eq "move: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/I1.log"
    expect_grep "move: says it is bound to another stick" "$work/I1.log" "bound to another USB stick (dead-beef)"
    expect_eq "move: zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect rekey verify "
    expect_eq "move: header usb_uuid" "$(header "$work/I/esp/zeta-creds.enc" usb_uuid)" cafe-f00d
    expect_eq "move: header generation" "$(header "$work/I/esp/zeta-creds.enc" generation)" 4
    expect_eq "move: entries (the fresh target had none)" "$(entry_count "$work/I/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"
    check_uuid_file "$work/I/root" CAFE-F00D

    make_target "$work/I2/root" creds
    mkdir -p "$work/I2/esp"
    cp "$blobA" "$work/I2/esp/zeta-creds.enc"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=1 ZETA_CREDS_PASSPHRASE=$pass2 run_step "$work/I2.log" \
        --target "$work/I2/root" --esp "$work/I2/esp" --usb-device "$work/other.img"
    expect_eq "re-bundle for this stick: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/I2.log"
    expect_eq "re-bundle for this stick: header usb_uuid" "$(header "$work/I2/esp/zeta-creds.enc" usb_uuid)" cafe-f00d
    # A new passphrase does not open the old blob, so its (unauthenticated)
    # generation is not continued (issue 19 #9), and bundle says so.
    expect_eq "re-bundle for this stick: generation" "$(header "$work/I2/esp/zeta-creds.enc" generation)" 1
    expect_grep "re-bundle for this stick: the old generation is not trusted" "$work/I2.log" \
        "did not open with this passphrase, so its generation (3, unauthenticated) was not continued"
    expect_eq "re-bundle for this stick: opens with the new passphrase" \
        "$(entry_count "$work/I2/esp/zeta-creds.enc" "$pass2")" "$CREDS_ENTRIES"
    check_uuid_file "$work/I2/root" CAFE-F00D
}

# ---------------------------------------------------------------------------
# An unreadable blob on the ESP: exit 5 and left alone, or replaced
# with ZETA_CREDS_REBUNDLE=1.
scenario J "an unreadable blob on the ESP"
scenario_J() {
    make_target "$work/J/root" creds
    mkdir -p "$work/J/esp"
    printf 'not a zeta-creds blob\n' >"$work/J/esp/zeta-creds.enc"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/J1.log" \
        --target "$work/J/root" --esp "$work/J/esp" --usb-device "$work/stick.img"
    expect_eq "left alone: exit status" "$rc" 5
    expect_grep "left alone: says how to replace it" "$work/J1.log" "ZETA_CREDS_REBUNDLE=1"
    expect_eq "left alone: content" "$(cat "$work/J/esp/zeta-creds.enc")" "not a zeta-creds blob"
    expect_missing "left alone: no usb-uuid file" "$work/J/root/etc/zeta/usb-uuid"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/J2.log" \
        --target "$work/J/root" --esp "$work/J/esp" --usb-device "$work/stick.img"
    expect_eq "replaced: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/J2.log"
    expect_eq "replaced: header usb_uuid" "$(header "$work/J/esp/zeta-creds.enc" usb_uuid)" dead-beef
    expect_eq "replaced: the old file kept as .prev" "$(cat "$work/J/esp/zeta-creds.enc.prev")" "not a zeta-creds blob"
}

# ---------------------------------------------------------------------------
# Failures leave no half-written blob and no usb-uuid file: a required
# manifest entry missing, a full ESP (a tiny tmpfs in a private mount
# namespace).
scenario K "failures leave no half-written blob and no usb-uuid file"
scenario_K() {
    make_target "$work/K/root" creds
    mkdir -p "$work/K/esp"
    cat >"$work/required.toml" <<'EOF'
version = 1
user = "zeta"

[[entry]]
path = "~/.config/gh"

[[entry]]
path = "~/.ssh/id_ed25519"
required = true
EOF
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/K1.log" \
        --target "$work/K/root" --esp "$work/K/esp" --usb-device "$work/stick.img" \
        --manifest "$work/required.toml"
    expect_eq "required entry missing: exit status (zeta-creds's 6)" "$rc" 6
    expect_grep "required entry missing: says so before any passphrase" "$work/K1.log" \
        "required path ~/.ssh/id_ed25519 is missing under $work/K/root (manifest $work/required.toml, line 8); log in to that tool first, or mark the entry \`required = false\`; no passphrase was asked and nothing was written"
    expect_eq "required entry missing: no zeta-creds command ran" "$(tr '\n' ' ' <"$work/calls")" ""
    nothing_written "$work/K/root" "$work/K/esp"

    if unshare -m true 2>/dev/null; then
        # A 64 KiB tmpfs, filled up, as the ESP, in a private mount namespace.
        : >"$work/calls"
        rc=0
        # shellcheck disable=SC2016 # the inner script expands its own arguments
        ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass TMPDIR=$work/tmp unshare -m -- bash -c '
            esp=$1
            shift
            mount -t tmpfs -o size=64k zeta-test-esp "$esp" || exit 99
            cat /dev/zero >"$esp/filler" 2>/dev/null
            status=0
            "$@" || status=$?
            find "$esp" -mindepth 1 -not -name filler >"$esp.left"
            exit "$status"' _ "$work/K/esp" \
            "$step" --zeta-creds "$zcw" --work-factor 10 --target "$work/K/root" \
            --esp "$work/K/esp" --usb-device "$work/stick.img" </dev/null >"$work/K2.log" 2>&1 || rc=$?
        if [ "$rc" -eq 99 ]; then
            bad "a full ESP was not checked: tmpfs cannot be mounted here"
        else
            expect_eq "full ESP: exit status" "$rc" 1
            expect_grep "full ESP: zeta-creds says why" "$work/K2.log" "not enough room"
            expect_grep "full ESP: the step says nothing was written" "$work/K2.log" "no new blob was written to the ESP"
            expect_eq "full ESP: files left on it" "$(wc -l <"$work/K/esp.left")" 0
            expect_missing "full ESP: no usb-uuid file" "$work/K/root/etc/zeta/usb-uuid"
        fi
    else
        bad "a full ESP was not checked: unshare -m is not allowed here"
    fi
}

# ---------------------------------------------------------------------------
# The stick found with findmnt: an ext4 image loop-mounted at
# /run/live/medium in a private mount namespace (its UUID has the
# ext4 form); and mounted at /run/initramfs/live by a symlink that is
# gone afterwards, as NixOS's stage 1 mounts /iso from /dev/root.
scenario L "the live stick found with findmnt (ext4 image at /run/live/medium)"
scenario_L() {
    make_target "$work/L/root" creds
    mkdir -p "$work/L/esp"
    truncate -s 8M "$work/stick-ext4.img"
    mkfs.ext4 -q -U 0f0e0d0c-1111-2222-3333-444455556666 "$work/stick-ext4.img"
    rc=0
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass TMPDIR=$work/tmp unshare -m -- bash -c '
        mount -t tmpfs zeta-test-run /run && mkdir -p /run/live/medium &&
            mount -o loop,ro "$1" /run/live/medium || exit 99
        shift
        exec "$@"' _ "$work/stick-ext4.img" \
        "$step" --zeta-creds "$zcw" --work-factor 10 --target "$work/L/root" --esp "$work/L/esp" \
        </dev/null >"$work/L.log" 2>&1 || rc=$?
    if [ "$rc" -eq 99 ]; then
        bad "detection was not checked: cannot loop-mount an image here"
    else
        expect_eq "exit status" "$rc" 0
        [ "$rc" -eq 0 ] || show_log "$work/L.log"
        expect_grep "says where it found the stick" "$work/L.log" "(mounted at /run/live/medium)"
        check_uuid_file "$work/L/root" 0f0e0d0c-1111-2222-3333-444455556666
        expect_eq "header usb_uuid" "$(header "$work/L/esp/zeta-creds.enc" usb_uuid)" \
            0f0e0d0c-1111-2222-3333-444455556666
    fi

    # The name the stick was mounted by is gone (as NixOS's /iso, mounted from
    # a /dev/root symlink in stage 1): the step asks the kernel (MAJ:MIN).
    make_target "$work/L2/root" creds
    mkdir -p "$work/L2/esp"
    rc=0
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass TMPDIR=$work/tmp unshare -m -- bash -c '
        img=$1 link=$2
        shift 2
        mount -t tmpfs zeta-test-run /run && mkdir -p /run/initramfs/live || exit 99
        loop=$(losetup -f --show -r "$img") || exit 99
        ln -s "$loop" "$link"
        if ! mount --no-canonicalize -o ro "$link" /run/initramfs/live; then
            losetup -d "$loop"
            exit 99
        fi
        losetup -d "$loop" # detached once unmounted, when this namespace ends
        rm -f "$link"
        exec "$@"' _ "$work/stick-ext4.img" "$work/devroot" \
        "$step" --zeta-creds "$zcw" --work-factor 10 --target "$work/L2/root" --esp "$work/L2/esp" \
        </dev/null >"$work/L2.log" 2>&1 || rc=$?
    if [ "$rc" -eq 99 ]; then
        bad "detection by MAJ:MIN was not checked: cannot set up a loop device here"
    else
        expect_eq "mounted by a name that is gone: exit status" "$rc" 0
        [ "$rc" -eq 0 ] || show_log "$work/L2.log"
        expect_grep "mounted by a name that is gone: found by MAJ:MIN" "$work/L2.log" \
            "(mounted at /run/initramfs/live)"
        check_uuid_file "$work/L2/root" 0f0e0d0c-1111-2222-3333-444455556666
    fi
}

# ---------------------------------------------------------------------------
# Usage errors, --help, a missing device, a device with no filesystem.
scenario M "usage errors and missing inputs"
scenario_M() {
    make_target "$work/M/root" creds
    mkdir -p "$work/M/esp"
    rc=0
    "$step" --help >"$work/M0.log" 2>&1 || rc=$?
    expect_eq "--help: exit status" "$rc" 0
    expect_grep "--help: lists ZETA_CREDS_REBUNDLE" "$work/M0.log" "ZETA_CREDS_REBUNDLE=0|1"
    ZETA_CREDS_PICKER=1 run_step "$work/M1.log" --esp "$work/M/esp"
    expect_eq "no --target: exit status" "$rc" 2
    ZETA_CREDS_PICKER=yes run_step "$work/M2.log" --target "$work/M/root" --esp "$work/M/esp"
    expect_eq "ZETA_CREDS_PICKER=yes: exit status" "$rc" 2
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/M3.log" \
        --target "$work/M/root" --esp "$work/M/esp" --usb-device "$work/no-such-stick"
    expect_eq "missing device: exit status" "$rc" 6
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/M4.log" \
        --target "$work/M/root" --esp "$work/M/esp" --usb-device "$work/blank.img"
    expect_eq "device with no filesystem: exit status" "$rc" 6
    expect_grep "device with no filesystem: says so" "$work/M4.log" "blkid found no filesystem UUID"
    nothing_written "$work/M/root" "$work/M/esp"
}

# ---------------------------------------------------------------------------
# --seal-tpm2 / ZETA_CREDS_SEAL=tpm2, with a fake systemd-creds (the
# real sealing is booted in tests/vm, scenarios i to k): its exact argv
# (--with-key=tpm2, never host or auto; --name=passphrase; the PCRs;
# `-` for stdin), the passphrase on its stdin (compared by hash), the
# sealed file 0600 root in a 0700 directory with no temporary left,
# the NixOS lines for credential mode; --tpm2-pcrs "" and 0+7; on a
# terminal; and the fallbacks to the console prompt, each saying why:
# no TPM2, no systemd-creds, encrypt failing; bad values refused.
scenario N "--seal-tpm2: the passphrase sealed to the TPM2 (a fake systemd-creds)"
scenario_N() {
    : >"$work/fake-tpm"
    make_target "$work/N1/root" creds
    mkdir -p "$work/N1/esp"
    rm -f "$work/creds-argv" "$work/creds-stdin-sha"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/N1.log" --seal-tpm2 --systemd-creds "$fake_creds" \
        --target "$work/N1/root" --esp "$work/N1/esp" --usb-device "$work/stick.img"
    expect_eq "--seal-tpm2: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/N1.log"
    sealed_ok "--seal-tpm2" "$work/N1/root" --tpm2-pcrs=7 "$pass"
    check_uuid_file "$work/N1/root" DEAD-BEEF
    expect_eq "--seal-tpm2: entries (verify)" "$(entry_count "$work/N1/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"
    expect_grep "--seal-tpm2: NixOS line: credential mode" "$work/N1.log" 'zeta.credsRestore.passphrase.mode = "credential";'
    expect_grep "--seal-tpm2: NixOS line: the credential" "$work/N1.log" \
        'zeta.credsRestore.passphrase.credential = "/etc/credstore.encrypted/zeta-creds-passphrase";'
    expect_grep "--seal-tpm2: says the first boot does not ask" "$work/N1.log" "The first boot restores them without asking"
    expect_no_grep "--seal-tpm2: no interactive line" "$work/N1.log" 'passphrase.mode = "interactive";'

    make_target "$work/N2/root" creds
    mkdir -p "$work/N2/esp"
    rm -f "$work/creds-argv" "$work/creds-stdin-sha"
    ZETA_CREDS_SEAL=tpm2 ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass2 run_step "$work/N2.log" --tpm2-pcrs= \
        --systemd-creds "$fake_creds" --target "$work/N2/root" --esp "$work/N2/esp" --usb-device "$work/stick.img"
    expect_eq "ZETA_CREDS_SEAL=tpm2 --tpm2-pcrs=: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/N2.log"
    sealed_ok "ZETA_CREDS_SEAL=tpm2, no PCRs" "$work/N2/root" --tpm2-pcrs= "$pass2"
    expect_grep "no PCRs: says so" "$work/N2.log" "(PCRs: none)"

    rm -rf "$work/N2/root/etc/credstore.encrypted" "$work/N2/root/etc/zeta/usb-uuid"
    rm -f "$work/creds-argv" "$work/creds-stdin-sha"
    tty_step "$work/N3.log" --seal-tpm2 --tpm2-pcrs 0+7 --systemd-creds "$fake_creds" \
        --target "$work/N2/root" --esp "$work/N2/esp" --usb-device "$work/stick.img" -- \
        "Seal your credentials now? [Y/n]" "y" \
        "Keep or re-bundle? [K/r]" "k" \
        "Passphrase of the blob on the ESP" "$pass2"
    expect_eq "on a terminal, PCRs 0+7: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/N3.log"
    sealed_ok "on a terminal, PCRs 0+7" "$work/N2/root" --tpm2-pcrs=0+7 "$pass2"
    expect_no_secret "on a terminal: no passphrase echoed" "$work/N3.log"

    # A live system booted in BIOS mode: has-tpm2 says "partial" (-firmware),
    # but the driver and systemd's support are there: it seals.
    rm -f "$work/fake-tpm" "$work/creds-argv" "$work/creds-stdin-sha"
    : >"$work/fake-tpm-bios"
    rm -rf "$work/N2/root/etc/credstore.encrypted" "$work/N2/root/etc/zeta/usb-uuid"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=0 ZETA_CREDS_PASSPHRASE=$pass2 run_step "$work/N3b.log" --seal-tpm2 \
        --systemd-creds "$fake_creds" --target "$work/N2/root" --esp "$work/N2/esp" --usb-device "$work/stick.img"
    expect_eq "a partial TPM2 with its driver (BIOS boot): exit status" "$rc" 0
    sealed_ok "a partial TPM2 with its driver (BIOS boot)" "$work/N2/root" --tpm2-pcrs=7 "$pass2"
    rm -f "$work/fake-tpm-bios"

    rm -f "$work/creds-argv"
    make_target "$work/N4/root" creds
    mkdir -p "$work/N4/esp"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/N4.log" --seal-tpm2 --systemd-creds "$fake_creds" \
        --target "$work/N4/root" --esp "$work/N4/esp" --usb-device "$work/stick.img"
    not_sealed "no TPM2" "$work/N4/root" "$work/N4.log" "this machine has no usable TPM2 (systemd-creds has-tpm2 says: partial -firmware -driver"
    expect_missing "no TPM2: encrypt was not run" "$work/creds-argv"

    rm -rf "$work/N4/root/etc/zeta/usb-uuid"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=0 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/N5.log" --seal-tpm2 \
        --systemd-creds "$work/no-such-systemd-creds" --target "$work/N4/root" --esp "$work/N4/esp" --usb-device "$work/stick.img"
    not_sealed "no systemd-creds" "$work/N4/root" "$work/N5.log" "systemd-creds not found"

    : >"$work/fake-tpm"
    : >"$work/fake-encrypt-fails"
    rm -rf "$work/N4/root/etc/zeta/usb-uuid"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=0 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/N6.log" --seal-tpm2 \
        --systemd-creds "$fake_creds" --target "$work/N4/root" --esp "$work/N4/esp" --usb-device "$work/stick.img"
    not_sealed "encrypt fails" "$work/N4/root" "$work/N6.log" "systemd-creds encrypt failed (exit 1)"
    expect_grep "encrypt fails: its error is shown" "$work/N6.log" "Failed to seal to TPM2: fake failure"
    rm -f "$work/fake-encrypt-fails"

    for bad_pcrs in 24 7+ +7 "7 8" pcr7; do
        ZETA_CREDS_PICKER=1 run_step "$work/N7.log" --seal-tpm2 --tpm2-pcrs "$bad_pcrs" \
            --target "$work/N4/root" --esp "$work/N4/esp" --usb-device "$work/stick.img"
        expect_eq "--tpm2-pcrs '$bad_pcrs': exit status (usage)" "$rc" 2
    done
    ZETA_CREDS_SEAL=yes ZETA_CREDS_PICKER=1 run_step "$work/N8.log" \
        --target "$work/N4/root" --esp "$work/N4/esp" --usb-device "$work/stick.img"
    expect_eq "ZETA_CREDS_SEAL=yes: exit status (usage)" "$rc" 2
    expect_grep "--help: lists --seal-tpm2" "$work/M0.log" "--seal-tpm2"
}

# ---------------------------------------------------------------------------
# The real reinstall: `rescue` (before partitioning) copies the ESP's blob
# and its .prev into the rescue directory, the ESP is reformatted (emptied
# here) and the root is fresh; the step then finds no blob on the ESP,
# takes the newest generation for the host from the rescue directory (and
# lists the older one), checks it with its passphrase where it is, copies
# it onto the ESP whole, and writes usb-uuid.
scenario O "reinstall after the ESP was wiped: the blob comes from the rescue directory"
scenario_O() {
    make_target "$work/O/root" creds
    set_host "$work/O/root" node-a
    mkdir -p "$work/O/esp"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/O1.log" \
        --target "$work/O/root" --esp "$work/O/esp" --usb-device "$work/stick.img"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/O2.log" \
        --target "$work/O/root" --esp "$work/O/esp" --usb-device "$work/stick.img"
    expect_eq "setup: generation 2 on the ESP, 1 as .prev" \
        "$(header "$work/O/esp/zeta-creds.enc" generation) $(header "$work/O/esp/zeta-creds.enc.prev" generation)" "2 1"
    cp "$work/O/esp/zeta-creds.enc" "$work/O-gen2.enc"

    rc=0
    ZETA_CREDS_RESCUE_DIR=$work/O/rescued "$step" rescue --from "$work/O/esp" --allow-rescue-dir-on-disk \
        >"$work/O3.log" 2>&1 || rc=$?
    expect_eq "rescue: exit status" "$rc" 0
    expect_eq "rescue: two blobs in the rescue directory" "$(find "$work/O/rescued" -name '*.enc' | wc -l)" 2

    # The installer reformats the ESP; the new root has none of the credentials.
    rm -rf "$work/O/esp" "$work/O/root"
    mkdir -p "$work/O/esp"
    make_target "$work/O/root"
    set_host "$work/O/root" node-a
    ZETA_CREDS_RESCUE_DIR=$work/O/rescued ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/O4.log" \
        --target "$work/O/root" --esp "$work/O/esp" --usb-device "$work/stick.img"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/O4.log"
    expect_grep "says the ESP holds none" "$work/O4.log" "the ESP holds no blob"
    expect_grep "says which was chosen, from where and why" "$work/O4.log" \
        "from the rescue directory: the newest generation (2) of the 2 blobs there"
    expect_grep "lists the older one" "$work/O4.log" "generation 1, older than the one chosen (2)"
    expect_grep "says it is kept" "$work/O4.log" "checking the blob from the rescue directory with its passphrase"
    expect_grep "says it was copied to the ESP" "$work/O4.log" "copied the blob from the rescue directory"
    expect_eq "zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect inspect verify verify "
    if cmp -s "$work/O/esp/zeta-creds.enc" "$work/O-gen2.enc"; then
        ok "the ESP holds generation 2, byte for byte"
    else
        bad "the ESP does not hold the rescued generation 2"
    fi
    expect_eq "entries (verify)" "$(entry_count "$work/O/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"
    expect_eq "files on the ESP (no temporary, no .prev)" "$(find "$work/O/esp" -mindepth 1 | wc -l)" 1
    check_uuid_file "$work/O/root" DEAD-BEEF

    # Re-bundle (ZETA_CREDS_REBUNDLE=1) from the rescued blob: it is put on
    # the ESP first, so the generation goes on and it is kept as .prev.
    rm -rf "$work/O/esp" "$work/O/root"
    mkdir -p "$work/O/esp"
    make_target "$work/O/root" creds
    ZETA_CREDS_RESCUE_DIR=$work/O/rescued ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=1 ZETA_CREDS_PASSPHRASE=$pass \
        run_step "$work/O6.log" --host node-a --target "$work/O/root" --esp "$work/O/esp" --usb-device "$work/stick.img"
    expect_eq "re-bundle: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/O6.log"
    expect_eq "re-bundle: zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect inspect diff bundle verify "
    expect_eq "re-bundle: generation goes on" "$(header "$work/O/esp/zeta-creds.enc" generation)" 3
    if cmp -s "$work/O/esp/zeta-creds.enc.prev" "$work/O-gen2.enc"; then ok "re-bundle: the rescued blob kept as .prev"; else bad "re-bundle: .prev is not the rescued blob"; fi

    # The wrong passphrase: exit 3, the ESP stays empty, no usb-uuid.
    rm -rf "$work/O/esp" "$work/O/root"
    mkdir -p "$work/O/esp"
    make_target "$work/O/root"
    ZETA_CREDS_RESCUE_DIR=$work/O/rescued ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$wrong run_step "$work/O5.log" \
        --target "$work/O/root" --esp "$work/O/esp" --usb-device "$work/stick.img"
    expect_eq "wrong passphrase: exit status" "$rc" 3
    nothing_written "$work/O/root" "$work/O/esp"
}

# ---------------------------------------------------------------------------
# A brand-new machine (empty ESP, empty disk) and a stash on the stick
# (`--stash DIR`): the stick's blob for this host is kept and copied onto
# the ESP; the stash already holds it, so it is not rewritten. From
# another stick the blob is moved (rekey) on the ESP, and the stash gets
# the moved blob, the previous one kept as node-a.enc.prev.
scenario P "a new machine: the blob comes from the stash on the stick (--stash DIR)"
scenario_P() {
    mkdir -p "$work/P/stash" "$work/P/esp"
    cp "$work/O-gen2.enc" "$work/P/stash/node-a.enc"
    make_target "$work/P/root"
    set_host "$work/P/root" node-a
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/P1.log" --stash "$work/P/stash" \
        --target "$work/P/root" --esp "$work/P/esp" --usb-device "$work/stick.img"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/P1.log"
    expect_grep "says where from" "$work/P1.log" "from the stash on the stick: the only blob there for host node-a"
    expect_grep "says the stash holds it already" "$work/P1.log" "holds this blob already"
    if cmp -s "$work/P/esp/zeta-creds.enc" "$work/O-gen2.enc"; then ok "the ESP holds the stash's blob"; else bad "the ESP does not hold the stash's blob"; fi
    expect_eq "stash: nothing else written" "$(find "$work/P/stash" -mindepth 1 | wc -l)" 1
    check_uuid_file "$work/P/root" DEAD-BEEF
    expect_eq "entries (verify)" "$(entry_count "$work/P/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"

    rm -rf "$work/P/esp" "$work/P/root"
    mkdir -p "$work/P/esp"
    make_target "$work/P/root"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/P2.log" --stash "$work/P/stash" --host Node-A \
        --target "$work/P/root" --esp "$work/P/esp" --usb-device "$work/other.img"
    expect_eq "another stick: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/P2.log"
    expect_eq "another stick: zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect rekey verify "
    expect_eq "another stick: moved on the ESP" "$(header "$work/P/esp/zeta-creds.enc" usb_uuid)" cafe-f00d
    expect_eq "another stick: the stash gets the moved blob" "$(header "$work/P/stash/node-a.enc" usb_uuid)" cafe-f00d
    if cmp -s "$work/P/stash/node-a.enc.prev" "$work/O-gen2.enc"; then ok "the previous stash blob kept as .prev"; else bad "node-a.enc.prev is not the previous blob"; fi
    expect_eq "stash: no temporary file" "$(find "$work/P/stash" -name '.zeta-creds-tmp.*' | wc -l)" 0
    check_uuid_file "$work/P/root" CAFE-F00D

    # No stash, an explicit --blob FILE: imported as a kept blob.
    rm -rf "$work/P/esp" "$work/P/root"
    mkdir -p "$work/P/esp"
    make_target "$work/P/root"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/P3.log" --blob "$work/O-gen2.enc" \
        --target "$work/P/root" --esp "$work/P/esp" --usb-device "$work/stick.img"
    expect_eq "--blob: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/P3.log"
    expect_grep "--blob: says where from" "$work/P3.log" "from --blob: named with --blob"
    expect_eq "--blob: zeta-creds calls" "$(tr '\n' ' ' <"$work/calls")" "inspect verify verify "
    if cmp -s "$work/P/esp/zeta-creds.enc" "$work/O-gen2.enc"; then ok "--blob: the ESP holds it"; else bad "--blob: the ESP does not hold it"; fi
    check_uuid_file "$work/P/root" DEAD-BEEF
}

# ---------------------------------------------------------------------------
# A stash that cannot be written (a read-only filesystem), and one that is
# full (a small tmpfs standing in for a full FAT partition, which this
# host cannot mount): the step says so and exits 1, the blob on the ESP is
# sealed and verified, usb-uuid is written, and the stash holds no partial
# file (the blob it held before is unchanged).
scenario Q "a stash that is not writable, and a full one"
scenario_Q() {
    mkdir -p "$work/Q/ro" "$work/Q/full"
    mount -t tmpfs -o ro,size=64k tmpfs "$work/Q/ro"
    make_target "$work/Q/root" creds
    set_host "$work/Q/root" node-q
    mkdir -p "$work/Q/esp"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/Q1.log" --stash "$work/Q/ro" \
        --target "$work/Q/root" --esp "$work/Q/esp" --usb-device "$work/stick.img"
    umount "$work/Q/ro"
    expect_eq "read-only stash: exit status" "$rc" 1
    expect_grep "read-only stash: says so" "$work/Q1.log" "the stash is not writable"
    expect_grep "read-only stash: says the ESP blob is fine" "$work/Q1.log" "is sealed, verified and unchanged"
    expect_eq "read-only stash: the ESP blob opens" "$(entry_count "$work/Q/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"
    check_uuid_file "$work/Q/root" DEAD-BEEF

    mount -t tmpfs -o size=16k tmpfs "$work/Q/full"
    printf 'an older blob\n' >"$work/Q/full/node-q.enc"
    dd if=/dev/zero of="$work/Q/full/filler" bs=4k >/dev/null 2>&1 || true
    ZETA_CREDS_PICKER=1 ZETA_CREDS_REBUNDLE=0 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/Q2.log" --stash "$work/Q/full" \
        --target "$work/Q/root" --esp "$work/Q/esp" --usb-device "$work/stick.img"
    expect_eq "full stash: exit status" "$rc" 1
    expect_grep "full stash: says so" "$work/Q2.log" "the stash is full"
    expect_grep "full stash: no partial file" "$work/Q2.log" "no partial file was left there"
    expect_eq "full stash: its old blob unchanged" "$(cat "$work/Q/full/node-q.enc")" "an older blob"
    expect_eq "full stash: nothing else there" "$(find "$work/Q/full" -mindepth 1 | sort | tr '\n' ' ')" \
        "$work/Q/full/filler $work/Q/full/node-q.enc "
    umount "$work/Q/full"
    expect_eq "full stash: the ESP blob opens" "$(entry_count "$work/Q/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"

    # A host name outside [a-z0-9.-]: refused before anything is written.
    make_target "$work/Q2/root" creds
    set_host "$work/Q2/root" node_q
    mkdir -p "$work/Q2/esp"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/Q3.log" --stash "$work/Q/full" \
        --target "$work/Q2/root" --esp "$work/Q2/esp" --usb-device "$work/stick.img"
    expect_eq "bad host name: exit status" "$rc" 1
    expect_grep "bad host name: names the file and the name" "$work/Q3.log" 'etc/hostname: invalid host name "node_q"'
    nothing_written "$work/Q2/root" "$work/Q2/esp"
}

# ---------------------------------------------------------------------------
# One stick, a fleet: two hosts installed with the same stash each leave
# their own <host>.enc; a new machine for node-a then gets node-a's blob
# (its own credentials), not node-b's.
scenario R "a fleet: one stash, one blob per host"
scenario_R() {
    mkdir -p "$work/R/stash"
    local h
    for h in node-a node-b; do
        make_target "$work/R/$h/root" creds
        printf 'github.com:\n    oauth_token: gho_%s\n' "$h" >"$work/R/$h/root/home/zeta/.config/gh/hosts.yml"
        mkdir -p "$work/R/$h/esp"
        ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/R-$h.log" --stash "$work/R/stash" --host "$h" \
            --target "$work/R/$h/root" --esp "$work/R/$h/esp" --usb-device "$work/stick.img"
        expect_eq "$h: exit status" "$rc" 0
        [ "$rc" -eq 0 ] || show_log "$work/R-$h.log"
        expect_grep "$h: stash written" "$work/R-$h.log" "stash: wrote $work/R/stash/$h.enc"
        if cmp -s "$work/R/stash/$h.enc" "$work/R/$h/esp/zeta-creds.enc"; then ok "$h: the stash holds its blob"; else bad "$h: the stash does not hold its blob"; fi
    done
    expect_eq "the stash: one blob per host" "$(find "$work/R/stash" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')" "node-a.enc node-b.enc "

    mkdir -p "$work/R/new/esp"
    make_target "$work/R/new/root"
    set_host "$work/R/new/root" node-a
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/R-new.log" --stash "$work/R/stash" \
        --target "$work/R/new/root" --esp "$work/R/new/esp" --usb-device "$work/stick.img"
    expect_eq "new node-a: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/R-new.log"
    expect_grep "new node-a: from the stash" "$work/R-new.log" "$work/R/stash/node-a.enc"
    if cmp -s "$work/R/new/esp/zeta-creds.enc" "$work/R/stash/node-a.enc"; then ok "new node-a: got node-a's blob"; else bad "new node-a: not node-a's blob"; fi
    expect_no_grep "new node-a: node-b's blob not looked at" "$work/R-new.log" "node-b.enc"
    check_uuid_file "$work/R/new/root" DEAD-BEEF
}

# ---------------------------------------------------------------------------
# Any user (issue 17 item 7): the installed system's person is alice, not
# the manifest's zeta. Without --user the step says so once, names the
# target's normal users and how to choose, before any passphrase is asked
# or any zeta-creds command runs; with --user alice it seals alice's home.
scenario S "any user: the manifest's user is not the target's (--user NAME)"
scenario_S() {
    make_target "$work/S/root" creds
    sed -i 's/^zeta:/alice:/; s|/home/zeta|/home/alice|' "$work/S/root/etc/passwd"
    printf 'bob:x:1001:100:bob:/home/bob:/bin/sh\n' >>"$work/S/root/etc/passwd"
    mv "$work/S/root/home/zeta" "$work/S/root/home/alice"
    mkdir -p "$work/S/esp"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/S1.log" \
        --target "$work/S/root" --esp "$work/S/esp" --usb-device "$work/stick.img"
    expect_eq "unknown user: exit status" "$rc" 1
    expect_grep "unknown user: names it" "$work/S1.log" 'user "zeta" is not in'
    expect_grep "unknown user: names the target's normal users" "$work/S1.log" "its normal users: alice, bob"
    expect_grep "unknown user: says how to choose one" "$work/S1.log" "pass --user NAME to choose one"
    expect_grep "unknown user: before any passphrase" "$work/S1.log" "no passphrase was asked and nothing was written"
    expect_eq "unknown user: reported once" "$(grep -c 'is not in' "$work/S1.log")" 1
    expect_eq "unknown user: no zeta-creds command ran" "$(tr '\n' ' ' <"$work/calls")" ""
    nothing_written "$work/S/root" "$work/S/esp"

    # On a terminal: refused after the opt-in, never at a passphrase prompt.
    tty_step "$work/S2.log" --target "$work/S/root" --esp "$work/S/esp" --usb-device "$work/stick.img" -- \
        "Seal your credentials now? [Y/n]" "y"
    expect_eq "unknown user on a terminal: exit status" "$rc" 1
    expect_no_grep "unknown user on a terminal: no passphrase asked" "$work/S2.log" "passphrase for"
    nothing_written "$work/S/root" "$work/S/esp"

    # A required entry missing: refused the same way, before the passphrase.
    printf 'version = 1\nuser = "zeta"\n\n[[entry]]\npath = "~/.config/gh"\nrequired = true\n\n[[entry]]\npath = "~/.ssh/id_ed25519"\nrequired = true\n' \
        >"$work/S/manifest.toml"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/S3.log" --user alice --manifest "$work/S/manifest.toml" \
        --target "$work/S/root" --esp "$work/S/esp" --usb-device "$work/stick.img"
    expect_eq "missing required entry: exit status" "$rc" 6
    expect_grep "missing required entry: names it" "$work/S3.log" "required path ~/.ssh/id_ed25519 is missing under"
    expect_eq "missing required entry: no zeta-creds command ran" "$(tr '\n' ' ' <"$work/calls")" ""
    nothing_written "$work/S/root" "$work/S/esp"

    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/S4.log" --user alice \
        --target "$work/S/root" --esp "$work/S/esp" --usb-device "$work/stick.img"
    expect_eq "--user alice: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/S4.log"
    expect_grep "--user alice: passed to bundle" "$work/S4.log" "--user alice --host node-a"
    expect_grep "--user alice: the blob is alice's" "$work/S4.log" "entries for user alice"
    expect_eq "--user alice: entries (verify)" "$(entry_count "$work/S/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"
    check_uuid_file "$work/S/root" DEAD-BEEF
}

# ---------------------------------------------------------------------------
# Issue 20 item 4: a re-bundle on the terminal whose first passphrase does
# not open the blob (a typo) asks again, and the retry shows the diff and
# asks to go on, as the first try did.
scenario T "re-bundle on the terminal: a mistyped passphrase is asked again, the diff shown again"
scenario_T() {
    printf 'github.com:\n    oauth_token: gho_rotated0003\n' >"$work/S/root/home/alice/.config/gh/hosts.yml"
    tty_step "$work/T.log" --user alice --target "$work/S/root" --esp "$work/S/esp" --usb-device "$work/stick.img" -- \
        "Seal your credentials now? [Y/n]" "y" \
        "Keep or re-bundle? [K/r]" "r" \
        "New passphrase for" "$wrong" \
        "Repeat the passphrase:" "$wrong" \
        "Type it again to see what changes? [Y/n]" "y" \
        "New passphrase for" "$pass" \
        "Repeat the passphrase:" "$pass" \
        "Re-bundle with these changes? [Y/n]" "y"
    expect_eq "exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/T.log"
    expect_eq "zeta-creds calls: the diff runs again" "$(tr '\n' ' ' <"$work/calls")" "inspect diff diff bundle verify "
    expect_eq "the diff is introduced twice" "$(grep -c 'what re-bundling from .* would change:' "$work/T.log")" 2
    expect_grep "the second diff names the rotated login" "$work/T.log" ".config/gh/hosts.yml"
    expect_eq "header generation" "$(header "$work/S/esp/zeta-creds.enc" generation)" 2
    expect_eq "entries (verify, the right passphrase)" "$(entry_count "$work/S/esp/zeta-creds.enc" "$pass")" "$CREDS_ENTRIES"
    expect_no_secret "no passphrase echoed on the terminal" "$work/T.log"
}

# ---------------------------------------------------------------------------
# `rescue` reads the stash too (--stash DIR; by default the stick's
# ZETA-CREDS partition): every host's blob is kept, the stash is only
# read, what is not a blob or is cut short is named and not copied; the
# step on a new node-b then uses node-b's blob from the rescue directory
# and its summary says where the blob came from.
scenario U "rescue reads the stash: every host's blob kept, the step picks its own"
scenario_U() {
    local before
    before=$(cd "$work/R/stash" && sha256sum -- * | sort)
    rc=0
    ZETA_CREDS_RESCUE_DIR=$work/U/rescued "$step" rescue --stash "$work/R/stash" --allow-rescue-dir-on-disk \
        >"$work/U1.log" 2>&1 || rc=$?
    expect_eq "rescue: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/U1.log"
    expect_grep "rescue: node-a's blob" "$work/U1.log" "node-a.enc: rescued (host node-a"
    expect_grep "rescue: node-b's blob" "$work/U1.log" "node-b.enc: rescued (host node-b"
    expect_eq "rescue: both in the rescue directory" "$(find "$work/U/rescued" -name '*.enc' | wc -l)" 2
    expect_eq "rescue: the stash is only read" "$(cd "$work/R/stash" && sha256sum -- * | sort)" "$before"

    mkdir -p "$work/U/bad"
    printf 'not a blob\n' >"$work/U/bad/junk.enc"
    head -c 100 "$work/R/stash/node-a.enc" >"$work/U/bad/cut.enc"
    rc=0
    ZETA_CREDS_RESCUE_DIR=$work/U/rescued "$step" rescue --stash "$work/U/bad" --allow-rescue-dir-on-disk \
        >"$work/U2.log" 2>&1 || rc=$?
    expect_eq "bad stash files: exit status" "$rc" 1
    expect_grep "bad stash files: not a blob" "$work/U2.log" "junk.enc: not a zeta-creds blob"
    expect_grep "bad stash files: truncated" "$work/U2.log" "cut.enc: a truncated zeta-creds blob"
    expect_eq "bad stash files: nothing copied, no partial file" "$(find "$work/U/rescued" -mindepth 1 | wc -l)" 2

    make_target "$work/U/root"
    set_host "$work/U/root" node-b
    mkdir -p "$work/U/esp"
    ZETA_CREDS_RESCUE_DIR=$work/U/rescued ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/U3.log" \
        --stash "$work/R/stash" --blob "$work/R/stash/node-b.enc" \
        --target "$work/U/root" --esp "$work/U/esp" --usb-device "$work/stick.img"
    expect_eq "new node-b: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/U3.log"
    expect_grep "new node-b: the rescue directory before the stash" "$work/U3.log" \
        "not used: $work/R/stash/node-b.enc (host node-b, stick dead-beef, generation 1) from the stash on the stick: not needed: a blob from the rescue directory comes first"
    expect_grep "new node-b: the rescue directory before --blob" "$work/U3.log" \
        "from --blob: not needed: a blob from the rescue directory comes first"
    expect_grep "new node-b: the stash holds it already" "$work/U3.log" "holds this blob already"
    expect_grep "new node-b: node-a's blob not used" "$work/U3.log" "sealed for host node-a, not for node-b"
    expect_grep "new node-b: the summary says where from" "$work/U3.log" \
        "Done: kept the blob from the rescue directory ($work/U/rescued/"
    expect_no_grep "new node-b: not 'already on the ESP'" "$work/U3.log" "already on the ESP"
    if cmp -s "$work/U/esp/zeta-creds.enc" "$work/R/stash/node-b.enc"; then ok "new node-b: got node-b's blob"; else bad "new node-b: not node-b's blob"; fi
    check_uuid_file "$work/U/root" DEAD-BEEF
}

# ---------------------------------------------------------------------------
# Rescue re-seals from the old system when it is still on the disk (issue
# 18): an ext4 image of the old root (mkfs.ext4 -d, no mount needed to make
# it; the rescue loop-mounts it read-only) holds a state record,
# etc/zeta/usb-uuid, a manifest linked into its store, and a login rotated
# since the blob was sealed. A wrong passphrase writes nothing; without a
# terminal or --reseal nothing is re-sealed and the rescued blob's age is
# said; on a terminal a mistyped passphrase is asked again; --reseal seals
# generation 2 from the old files; a damaged image is named and the
# rescued blob used. The image is never changed and no loop device stays. After the wipe the step installs the fresh blob, says it is
# the re-seal, and a restore brings the rotated login.
scenario V "rescue re-seals from the old root still on the disk; the step after the wipe installs it"
scenario_V() {
    local img=$work/V/root.img sum cmd
    make_target "$work/V/root" creds
    mkdir -p "$work/V/esp"
    ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/V1.log" \
        --target "$work/V/root" --esp "$work/V/esp" --usb-device "$work/stick.img"
    expect_eq "setup: sealed generation 1" "$rc $(header "$work/V/esp/zeta-creds.enc" generation)" "0 1"
    # The old system lived on: its restore left a state record, its
    # manifest is a link into its store, and gh rotated its token.
    mkdir -p "$work/V/root/var/lib/zeta-creds" "$work/V/root/nix/store/0000-etc/etc/zeta"
    printf '{"version":1,"generation":1,"files":{}}\n' >"$work/V/root/var/lib/zeta-creds/state.json"
    chmod 0600 "$work/V/root/var/lib/zeta-creds/state.json"
    cp "$repo/manifest/default.toml" "$work/V/root/nix/store/0000-etc/etc/zeta/creds-manifest.toml"
    ln -s /etc/static/zeta/creds-manifest.toml "$work/V/root/etc/zeta/creds-manifest.toml"
    printf 'github.com:\n    oauth_token: gho_rotated0002\n    user: zeta\n' >"$work/V/root/home/zeta/.config/gh/hosts.yml"
    mkfs.ext4 -q -d "$work/V/root" "$img" 64M >/dev/null
    sum=$(sha256sum <"$img")

    rc=0
    ZETA_CREDS_RESCUE_DIR=$work/V/rescued ZETA_CREDS_PASSPHRASE=$wrong setsid -w "$step" rescue \
        --from "$work/V/esp" --old-root "$img" --reseal --allow-rescue-dir-on-disk \
        </dev/null >"$work/V2.log" 2>&1 || rc=$?
    expect_eq "wrong passphrase: exit status" "$rc" 1
    expect_grep "wrong passphrase: found the old system" "$work/V2.log" \
        "old system on $img: host node-a, stick dead-beef; its rescued blob"
    expect_grep "wrong passphrase: says so" "$work/V2.log" "the passphrase does not open the rescued blob"
    expect_grep "wrong passphrase: falls back and says how old" "$work/V2.log" \
        "not re-sealed: the step after nixos-install uses the rescued blob for host node-a: generation 1, sealed"
    expect_eq "wrong passphrase: only the rescued blob, nothing half-written" \
        "$(find "$work/V/rescued" -mindepth 1 | wc -l)" 1

    rc=0
    ZETA_CREDS_RESCUE_DIR=$work/V/rescued2 setsid -w "$step" rescue \
        --from "$work/V/esp" --old-root "$img" --allow-rescue-dir-on-disk \
        </dev/null >"$work/V3.log" 2>&1 || rc=$?
    expect_eq "no terminal, no --reseal: exit status" "$rc" 0
    expect_grep "no terminal: says how to re-seal" "$work/V3.log" "not re-sealing without a terminal: pass --reseal"
    expect_grep "no terminal: says how old the rescued blob is" "$work/V3.log" "(0 days ago); files changed since then are not in it"
    expect_eq "no terminal: no re-seal" "$(find "$work/V/rescued2" -name 'resealed-*' | wc -l)" 0

    cmd=$(printf '%q ' env "ZETA_CREDS_RESCUE_DIR=$work/V/rescued3" "$step" rescue \
        --from "$work/V/esp" --old-root "$img" --allow-rescue-dir-on-disk)
    rc=0
    tty_drive "$work/V4.log" 30 "$cmd" "[Y/n]" y "Passphrase of the rescued blob" "$wrong" \
        "Passphrase of the rescued blob" "$pass" || rc=$?
    expect_eq "terminal: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/V4.log"
    expect_grep "terminal: a mistyped passphrase is asked again" "$work/V4.log" "that passphrase does not open the rescued blob"
    expect_eq "terminal: re-sealed" "$(find "$work/V/rescued3" -name 'resealed-node-a-g2.enc' | wc -l)" 1
    expect_no_secret "terminal: no passphrase echoed" "$work/V4.log"

    rc=0
    ZETA_CREDS_RESCUE_DIR=$work/V/rescued ZETA_CREDS_PASSPHRASE=$pass setsid -w "$step" rescue \
        --from "$work/V/esp" --old-root "$img" --reseal --allow-rescue-dir-on-disk \
        </dev/null >"$work/V5.log" 2>&1 || rc=$?
    expect_eq "--reseal: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/V5.log"
    expect_grep "--reseal: says what it sealed" "$work/V5.log" \
        "re-sealed: $work/V/rescued/resealed-node-a-g2.enc (host node-a, stick dead-beef, generation 2, "
    expect_grep "--reseal: with the old system's manifest" "$work/V5.log" "manifest the old system's /etc/zeta/creds-manifest.toml"
    expect_eq "--reseal: generation and host" \
        "$(header "$work/V/rescued/resealed-node-a-g2.enc" generation) $(header "$work/V/rescued/resealed-node-a-g2.enc" host)" "2 node-a"
    expect_eq "--reseal: no temporary file left" "$(find "$work/V/rescued" -mindepth 1 -name '.*' | wc -l)" 0
    expect_eq "the old root's image is unchanged" "$(sha256sum <"$img")" "$sum"
    expect_eq "no loop device left on the image" "$(losetup -j "$img")" ""

    # A damaged old root (cut short: the mount fails; its inode tables
    # zeroed: nothing that looks like a root): said, the rescued blob is
    # used, nothing re-sealed, no loop device left.
    cp "$img" "$work/V/cut.img"
    truncate -s 20M "$work/V/cut.img"
    cp "$img" "$work/V/zeroed.img"
    dd if=/dev/zero of="$work/V/zeroed.img" bs=1M seek=1 count=6 conv=notrunc status=none
    for bad_img in cut zeroed; do
        rc=0
        ZETA_CREDS_RESCUE_DIR=$work/V/rescued-$bad_img ZETA_CREDS_PASSPHRASE=$pass setsid -w "$step" rescue \
            --from "$work/V/esp" --old-root "$work/V/$bad_img.img" --reseal --allow-rescue-dir-on-disk \
            </dev/null >"$work/V-$bad_img.log" 2>&1 || rc=$?
        expect_eq "damaged old root ($bad_img): exit status" "$rc" 0
        expect_grep "damaged old root ($bad_img): says why" "$work/V-$bad_img.log" \
            "old root $work/V/$bad_img.img: not re-sealing from it: "
        expect_grep "damaged old root ($bad_img): falls back to the rescued blob" "$work/V-$bad_img.log" \
            "the step after nixos-install uses the rescued blob for host node-a: generation 1"
        expect_eq "damaged old root ($bad_img): only the rescued blob" "$(find "$work/V/rescued-$bad_img" -mindepth 1 | wc -l)" 1
        expect_eq "damaged old root ($bad_img): no loop device left" "$(losetup -j "$work/V/$bad_img.img")" ""
    done

    # The installer wipes the disk: a fresh ESP and root.
    rm -rf "$work/V/esp" "$work/V/root"
    mkdir -p "$work/V/esp"
    make_target "$work/V/root"
    ZETA_CREDS_RESCUE_DIR=$work/V/rescued ZETA_CREDS_PICKER=1 ZETA_CREDS_PASSPHRASE=$pass run_step "$work/V6.log" \
        --target "$work/V/root" --esp "$work/V/esp" --usb-device "$work/stick.img"
    expect_eq "after the wipe: exit status" "$rc" 0
    [ "$rc" -eq 0 ] || show_log "$work/V6.log"
    expect_grep "after the wipe: says it is the fresh re-seal" "$work/V6.log" \
        "the newest generation (2) of the 2 blobs there for host node-a: the fresh re-seal \`rescue\` made from the old system's current files"
    if cmp -s "$work/V/esp/zeta-creds.enc" "$work/V/rescued/resealed-node-a-g2.enc"; then
        ok "after the wipe: the ESP holds the fresh re-seal"
    else
        bad "after the wipe: the ESP does not hold the fresh re-seal"
    fi
    rc=0
    "$real_zc" restore --blob "$work/V/esp/zeta-creds.enc" --usb-uuid-file "$work/V/root/etc/zeta/usb-uuid" \
        --target-root "$work/V/root" --passphrase-fd 3 3< <(printf '%s' "$pass") >"$work/V7.log" 2>&1 || rc=$?
    expect_eq "restore: exit status" "$rc" 0
    expect_grep "restore: the login as it was on the old system, not as sealed" \
        "$work/V/root/home/zeta/.config/gh/hosts.yml" "gho_rotated0002"
}
