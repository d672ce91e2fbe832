#!/usr/bin/env bash
# The scenarios of tests/vm, one block each, one fresh boot each: a
# comment saying what it proves, `scenario ID TITLE [tpm]`, then
# `scenario_ID() { ... }`: the guest's setup (its unit configuration and
# disks), the boot, and the checks of its journal, exit status and files,
# from the guest's own view. tests/vm/run.sh runs the blocks in the order
# written (or those named in ZETA_VM_SCENARIOS); to add a scenario, add a
# block. A `tpm` scenario attaches a software TPM2 (swtpm) and is reported
# SKIPPED, never passed, where swtpm is missing.
#
# Over tests/vm/lib.sh (boot, root_for, stage_cmds, the checks) and the
# fixtures run.sh sets up: the blobs, the disks ($work/esp.img,
# esp-tampered.img, esp-empty.img, usb-bound.img, usb-other.img), the
# passphrases ($work/passphrase, wrong-passphrase) and $credential_cmds.
# In every scenario neither passphrase appears in any field of any journal
# entry of the boot (`journalctl -b -o verbose`), nor on the console.
# Sourced, never run.
# shellcheck disable=SC2154 # $work, $guest, ... are run.sh's and lib.sh's

## Unit configurations (as the NixOS module's options, rendered by
## nixos-modules/unit.nix) ##################################################
interactive_cfg=$(jq -cn --argjson t "$ASK_TIMEOUT" '{user: "zeta", passphrase: {mode: "interactive", timeout: $t}}')
file_cfg='{"passphrase":{"mode":"file","file":"/run/zeta-creds/passphrase"}}'
credential_cfg='{"passphrase":{"mode":"credential","credential":"/etc/credstore.encrypted/zeta-creds.passphrase"}}'
unanswered_cfg='{"passphrase":{"mode":"interactive","timeout":5}}'
usb_file_cfg='{"requireUsbPresent":true,"usbWait":5,"passphrase":{"mode":"file","file":"/run/zeta-creds/passphrase"}}'
tpm_cfg=$(jq -cn --arg c "$TPM_CREDENTIAL" '{user: "zeta", passphrase: {mode: "credential", credential: $c}}')
tpm_fallback_cfg=$(jq -cn --arg c "$TPM_CREDENTIAL" --argjson t "$ASK_TIMEOUT" \
    '{user: "zeta", passphrase: {mode: "credential", credential: $c, credentialFallback: "interactive", timeout: $t}}')
# g restores again on an unchanged blob: restoreOn = "every-boot" (the
# default, "new-blob", would skip it, as f, s and t show).
usb_credential_cfg='{"restoreOn":"every-boot","requireUsbPresent":true,"usbWait":10,"passphrase":{"mode":"credential","credential":"/etc/credstore.encrypted/zeta-creds.passphrase"}}'

# a_disk: the disk a, f and g boot in turn (f and g see what a restored),
# made by the first of them that runs; run.sh discards it at the end.
a_disk() {
    [ -f "$work/a.img" ] || root_for a "$interactive_cfg"
}

# ---------------------------------------------------------------------------
# Interactive: the harness answers the systemd-ask-password prompt on the
# serial console; the files land at the right paths with the guest's uid/gid
# and exact modes, the unit is "active (exited)" with status 0.
scenario a "interactive: the harness answers the console prompt"
scenario_a() {
    a_disk
    boot a "$work/a.img" "$work/esp.img" "$work/usb-bound.img" answer
    expect_prop a ActiveState active
    expect_prop a SubState exited
    expect_prop a Result success
    expect_prop a ExecMainStatus 0
    if grep -q 'Active: active (exited)' "$work/a.results/status.txt" 2>/dev/null; then
        ok "a: systemctl status says active (exited)"
    else
        fail "a: systemctl status does not say active (exited):"
        cat "$work/a.results/status.txt" 2>/dev/null || true
    fi
    expect_prompts a 1
    restored a
    expect_unit_journal a "created"
    no_run_passphrase a
    no_passphrase a
}

# ---------------------------------------------------------------------------
# A second boot of a's disk with the same blob (restoreOn = "new-blob", the
# default; issue 17, "ask once"): zeta-creds-restore-check.service finds the
# blob already restored and says so; the restore unit is skipped by its
# condition (nothing of it ran); no prompt, so logins and the boot are not
# held; everything a restored is still there.
scenario f "second boot, same blob: already restored, nothing asked"
scenario_f() {
    a_disk
    boot f "$work/a.img" "$work/esp.img" "$work/usb-bound.img" no
    already_restored f 1
    restored f
    no_passphrase f
}

# ---------------------------------------------------------------------------
# A third boot of a's disk in credential mode (the passphrase sealed by the
# guest with systemd-creds, LoadCredentialEncrypted=) with requireUsbPresent
# and the bound stick attached: "nothing to do", and the unit stops when the
# restore exits, so systemd releases the decrypted credential (no
# RemainAfterExit= in credential mode).
scenario g "credential mode, requireUsbPresent with the bound stick attached"
scenario_g() {
    a_disk
    unit_for g "$usb_credential_cfg"
    mapfile -t cmds < <(put "$work/g.service" /etc/systemd/system/zeta-creds-restore.service 644)
    debugfs_write "$work/a.img" "rm /etc/systemd/system/zeta-creds-restore.service" "${cmds[@]}" "${credential_cmds[@]}"
    boot g "$work/a.img" "$work/esp.img" "$work/usb-bound.img" no
    expect_prop g Result success
    expect_prop g ExecMainStatus 0
    credential_released g
    # The trace t looks for and must not find: the credentials mount.
    in_file g journal.txt 'run-credentials-zeta\x2dcreds\x2drestore.service.mount'
    expect_unit_journal g "nothing to do"
    expect_prompts g 0
    restored g
    no_passphrase g
}

# ---------------------------------------------------------------------------
# File mode with a wrong passphrase: the unit fails with exit 3, nothing is
# written, no passphrase file is left in /run.
scenario b "file mode, wrong passphrase"
scenario_b() {
    mapfile -t cmds < <(stage_cmds "$work/wrong-passphrase")
    root_for b "$file_cfg" "${cmds[@]}"
    boot b "$work/b.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/b.img"
    expect_prop b ActiveState failed
    expect_prop b Result exit-code
    expect_prop b ExecMainStatus 3
    expect_prop b NRestarts 0
    expect_unit_journal b "wrong passphrase"
    nothing_written b
    no_run_passphrase b
    no_passphrase b
}

# ---------------------------------------------------------------------------
# RequireUsbPresent with another stick attached: exit 4, nothing written.
# The passphrase file is never read (the stick is checked first), so
# zeta-creds leaves it (issue 19 #13); the unit removes it when it stops.
scenario c "requireUsbPresent, another stick attached"
scenario_c() {
    [ "$usb_flag" = yes ] || log "c: expected to fail until restore --require-usb-present lands"
    mapfile -t cmds < <(stage_cmds "$work/passphrase")
    root_for c "$usb_file_cfg" "${cmds[@]}"
    boot c "$work/c.img" "$work/esp.img" "$work/usb-other.img" no
    discard "$work/c.img"
    expect_prop c ActiveState failed
    expect_prop c ExecMainStatus 4
    expect_prop c NRestarts 0
    expect_unit_journal c "is not attached"
    if grep -q 'CAFE-F00D' "$work/c.results/by-uuid.txt" 2>/dev/null; then
        ok "c: the other stick (CAFE-F00D) was attached"
    else
        fail "c: the other stick is not in /dev/disk/by-uuid"
    fi
    nothing_written c
    # Never read, so zeta-creds did not consume it; the unit's
    # ExecStopPost= removed it when the failed restore stopped.
    no_run_passphrase c
    no_passphrase c
}

# ---------------------------------------------------------------------------
# A tampered blob (credential mode, right passphrase): exit 5, nothing
# written.
scenario d "a tampered blob"
scenario_d() {
    root_for d "$credential_cfg" "${credential_cmds[@]}"
    boot d "$work/d.img" "$work/esp-tampered.img" "$work/usb-bound.img" no
    discard "$work/d.img"
    expect_prop d ActiveState failed
    expect_prop d ExecMainStatus 5
    expect_prop d NRestarts 0
    nothing_written d
    no_passphrase d
}

# ---------------------------------------------------------------------------
# No blob: the unit is skipped by its condition and the boot reaches
# multi-user.target; no prompt is shown.
scenario e "no blob: skipped, the boot goes on"
scenario_e() {
    root_for e "$interactive_cfg"
    boot e "$work/e.img" "$work/esp-empty.img" "$work/usb-bound.img" no
    discard "$work/e.img"
    expect_prop e ConditionResult no
    expect_prop e ActiveState inactive
    if grep -qx 'ActiveState=active' "$work/e.results/target.txt" 2>/dev/null; then
        ok "e: multi-user.target reached"
    else
        fail "e: multi-user.target not reached: $(cat "$work/e.results/target.txt" 2>/dev/null)"
    fi
    expect_prompts e 0
    nothing_written e
    no_passphrase e
}

# ---------------------------------------------------------------------------
# Interactive, nobody answers (a 5 s prompt timeout): the unit fails with
# exit 6 and is not restarted, nothing is written, and the boot still
# reaches multi-user.target (nixos-modules/README.md, "A prompt nobody
# answers").
scenario h "interactive, nobody answers the prompt"
scenario_h() {
    root_for h "$unanswered_cfg"
    boot h "$work/h.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/h.img"
    expect_prompts h 1
    expect_prop h ActiveState failed
    expect_prop h ExecMainStatus 6
    expect_prop h NRestarts 0
    expect_unit_journal h "no answer within 5 s"
    if grep -qx 'ActiveState=active' "$work/h.results/target.txt" 2>/dev/null; then
        ok "h: multi-user.target reached all the same"
    else
        fail "h: multi-user.target not reached: $(cat "$work/h.results/target.txt" 2>/dev/null)"
    fi
    nothing_written h
    no_passphrase h
}

# already_restored NAME GENERATION: restoreOn = "new-blob" skipped the
# restore: the check unit logged "already restored: generation N, sealed
# DATE", the restore unit's condition failed so none of it ran (no
# process, no credential, no prompt), and the boot reached multi-user.target.
already_restored() {
    local name=$1 generation=$2
    in_file "$name" journal.txt "already restored: generation $generation, sealed "
    expect_prop "$name" ConditionResult no
    expect_prop "$name" ActiveState inactive
    expect_prop "$name" ExecMainStartTimestampMonotonic 0
    expect_prompts "$name" 0
    if grep -qx 'ActiveState=active' "$work/$name.results/target.txt" 2>/dev/null; then
        ok "$name: multi-user.target reached"
    else
        fail "$name: multi-user.target not reached: $(cat "$work/$name.results/target.txt" 2>/dev/null)"
    fi
}

# a_restored NAME: a copy of a's disk as a left it (restored, the state
# record naming the blob of esp.img), for NAME to boot; a runs first if it
# has not.
a_restored() {
    if [ ! -f "$work/a.results/done.txt" ]; then
        log "$1: needs the disk a restored; running a first"
        echo "== a. ${scenario_titles[a]} (for $1)"
        scenario_a
    fi
    cp --sparse=always "$work/a.img" "$work/$1.img"
}

# reconfigure NAME: debugfs commands that replace the units on a copy of
# a's disk ($work/NAME.img: every zeta-creds unit file it has, whichever
# configuration rendered them) with those of unit_for NAME, keeping the
# enabling link.
reconfigure() {
    local f unit
    while read -r unit; do
        echo "rm /etc/systemd/system/$unit"
    done < <(debugfs -R "ls /etc/systemd/system" "$work/$1.img" 2>/dev/null |
        tr -s ' \t' '\n' | grep -E '^zeta-creds[a-z-]*[.](service|timer)$' | sort -u)
    for f in "$work/$1.units"/*; do
        put "$f" "/etc/systemd/system/$(basename "$f")" 644
    done
}

# ---------------------------------------------------------------------------
# After a re-bundle (a new blob, generation 2, with a rotated gh token), the
# next boot of a restored disk asks again (the check says a restore is
# needed) and restores the change.
scenario r "re-bundled blob: the next boot asks again and restores the change"
scenario_r() {
    a_restored r
    unit_for r "$interactive_cfg"
    local cmds
    mapfile -t cmds < <(reconfigure r)
    debugfs_write "$work/r.img" "${cmds[@]}"
    boot r "$work/r.img" "$work/esp-rebundled.img" "$work/usb-bound.img" answer
    discard "$work/r.img"
    expect_prompts r 1
    expect_prop r Result success
    expect_prop r ExecMainStatus 0
    in_file r journal.txt "restore needed: /boot/zeta-creds.enc is generation 2"
    expect_unit_journal r "updated"
    if grep -qx "$(cat "$work/rebundled-hosts.sum")" "$work/r.results/sums.txt" 2>/dev/null; then
        ok "r: /home/zeta/.config/gh/hosts.yml has the re-bundled content"
    else
        fail "r: /home/zeta/.config/gh/hosts.yml does not have the re-bundled content: $(grep hosts.yml "$work/r.results/sums.txt" 2>/dev/null)"
    fi
    no_passphrase r
}

# ---------------------------------------------------------------------------
# File mode, same blob as last restored: skipped before anything reads the
# staged passphrase file, which the check unit then removes; nothing
# written.
scenario s "file mode, same blob: skipped, the staged passphrase file removed unread"
scenario_s() {
    a_restored s
    unit_for s "$file_cfg"
    local cmds
    mapfile -t cmds < <(reconfigure s && stage_cmds "$work/passphrase")
    debugfs_write "$work/s.img" "${cmds[@]}"
    boot s "$work/s.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/s.img"
    already_restored s 1
    restored s
    # Not read (the restore never started), and not left in /run either:
    # the check unit removes the passphrase staged for a skipped restore.
    no_run_passphrase s
    no_passphrase s
}

# ---------------------------------------------------------------------------
# Credential mode (LoadCredentialEncrypted=), same blob as last restored:
# the restore unit is skipped by its condition, which systemd checks before
# it sets up any credential, so the sealed passphrase is never decrypted:
# the unit never ran a process and /run/credentials never held it.
scenario t "credential mode, same blob: skipped, the credential never decrypted"
scenario_t() {
    a_restored t
    unit_for t "$credential_cfg"
    local cmds
    mapfile -t cmds < <(reconfigure t)
    debugfs_write "$work/t.img" "${cmds[@]}" "${credential_cmds[@]}"
    boot t "$work/t.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/t.img"
    already_restored t 1
    # systemd mounts a unit's credentials (decrypted) on
    # /run/credentials/<unit> and logs that mount going away when the unit
    # stops; g shows the line for a restore that did run.
    if grep -qF 'run-credentials-zeta\x2dcreds\x2drestore.service.mount' "$work/t.results/journal.txt" 2>/dev/null; then
        fail "t: systemd mounted the restore unit's credentials"
    else
        ok "t: systemd never mounted the restore unit's credentials (/run/credentials/zeta-creds-restore.service)"
    fi
    if grep -q 'Failed to set up credentials\|243/CREDENTIALS' "$work/t.results/journal.txt" 2>/dev/null; then
        fail "t: systemd tried to set up the restore unit's credential"
    else
        ok "t: no credential set-up in the journal"
    fi
    restored t
    no_passphrase t
}

## The TPM2 scenarios ######################################################
# With a software TPM2 (swtpm, attached with -tpmdev emulator and -device
# tpm-tis; a state directory per TPM):
# For i, j and k the passphrase is also in no byte of the guest's disks (raw
# images, so deleted files count) nor of the TPM state: it only ever existed
# on the console, in RAM and sealed.
#
# tpm_sealed_disk: the disk i, j and k start from, made once by the first
# of them that runs: a first boot seals the passphrase inside the guest
# (the restore is skipped: no blob yet), checked; $work/sealed.img is
# that disk for i to boot on, $work/sealed-only.img a copy for j and k.
tpm_sealed_disk() {
    [ ! -f "$work/sealed-only.img" ] || return 0
    # The byte scan must be able to fail: a passphrase planted between
    # binary bytes is found.
    { head -c 4096 /dev/urandom && cat "$work/passphrase" && head -c 4096 /dev/urandom; } >"$work/planted.bin"
    if grep -qaF -f "$work/passphrase" -- "$work/planted.bin"; then
        ok "the byte scan finds a passphrase planted in binary data"
    else
        fail "the byte scan does not find a planted passphrase: its checks below prove nothing"
    fi
    rm -f "$work/planted.bin"
    echo "== i-seal. TPM2: a first boot seals the passphrase inside the guest (no blob yet: restore skipped); i, j and k start from its disk"
    mapfile -t cmds < <(printf '7\n' >"$work/pcrs" && put "$work/pcrs" /var/lib/zeta-vm/seal-tpm2 644)
    root_for sealed "$tpm_cfg" "${cmds[@]}"
    boot i-seal "$work/sealed.img" "$work/esp-empty.img" "$work/usb-bound.img" "answer=$SEAL_PROMPT" "$work/tpm-i"
    if grep -qx 'Result=success' "$work/i-seal.results/seal.txt" 2>/dev/null; then
        ok "i-seal: systemd-creds encrypt --with-key=tpm2 succeeded in the guest"
    else
        fail "i-seal: sealing to the TPM2 failed: $(cat "$work/i-seal.results/seal.txt" 2>/dev/null)"
        grep -a 'zeta-vm-seal\|systemd-creds\|tpm' "$work/i-seal.results/journal.txt" 2>/dev/null | tail -n 15 || true
    fi
    in_file i-seal tpm.txt /dev/tpmrm0
    expect_prop i-seal ConditionResult no
    expect_prompts i-seal 0
    if [ "$(cat "$work/i-seal.results/credstore.txt" 2>/dev/null)" = "/etc/credstore.encrypted 0 0 700 d
$TPM_CREDENTIAL 0 0 600 f" ]; then
        ok "i-seal: $TPM_CREDENTIAL is 0600 root in a 0700 root directory"
    else
        fail "i-seal: the credential store is not as expected: $(cat "$work/i-seal.results/credstore.txt" 2>/dev/null)"
    fi
    no_passphrase i-seal
    # j and k boot this disk as it is now: sealed, nothing restored.
    cp --sparse=always "$work/sealed.img" "$work/sealed-only.img"
}

# ---------------------------------------------------------------------------
# Headless unlock: a first boot seals the passphrase inside the guest (typed
# at a console prompt, piped into `systemd-creds encrypt --with-key=tpm2
# --tpm2-pcrs=7`, as the installer's --seal-tpm2 does; the restore is
# skipped, no blob yet); the next boot, credential mode, restores with the
# harness sending nothing to the console: no prompt, every file, owner and
# mode, the sealed file 0600 root in a 0700 directory, and nothing of the
# unsealed passphrase left in /run/credentials once the restore is done.
scenario i "TPM2: the next boot restores headless (the harness sends nothing)" tpm
scenario_i() {
    tpm_sealed_disk
    boot i "$work/sealed.img" "$work/esp.img" "$work/usb-bound.img" no "$work/tpm-i"
    expect_prop i Result success
    expect_prop i ExecMainStatus 0
    expect_prompts i 0
    if grep -qF "zeta-vm:" "$work/i.results/console.log" 2>/dev/null; then
        fail "i: a seal prompt showed on the console"
    else
        ok "i: no prompt of any kind on the console"
    fi
    restored i
    expect_unit_journal i "created"
    credential_released i
    no_passphrase i
    no_passphrase_bytes i "$work/sealed.img" "$work/results.img" "$work/tpm-i"/*
    discard "$work/sealed.img"
}

# ---------------------------------------------------------------------------
# The same sealed disk on another TPM (a fresh state): the unit fails with
# 243/CREDENTIALS, not restarted, the journal and the console name the
# credential and the recovery, nothing is written.
scenario j "TPM2: the sealed disk on another TPM: the unit fails with the credential message" tpm
scenario_j() {
    tpm_sealed_disk
    cp --sparse=always "$work/sealed-only.img" "$work/j.img"
    boot j "$work/j.img" "$work/esp.img" "$work/usb-bound.img" no "$work/tpm-j"
    expect_prop j ActiveState failed
    expect_prop j Result exit-code
    expect_prop j ExecMainStatus 243
    expect_prop j NRestarts 0
    expect_unit_journal j "the sealed passphrase $TPM_CREDENTIAL (LoadCredentialEncrypted=passphrase:$TPM_CREDENTIAL) could not be decrypted"
    expect_unit_journal j "to restore now: run \`zeta-creds restore --blob /boot/zeta-creds.enc"
    expect_unit_journal j "passphrase.mode = \"interactive\""
    expect_unit_journal j "systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs=7 --name=passphrase - $TPM_CREDENTIAL"
    in_file j console.log "zeta-creds-restore: the sealed passphrase $TPM_CREDENTIAL"
    # The journal entry (verbose: one unindented line, then its fields)
    # whose MESSAGE is the first line of the report has PRIORITY=3.
    if awk '/^[^ \t]/ { if (m && p) found = 1; m = 0; p = 0; next }
            /^ *MESSAGE=the sealed passphrase / { m = 1 }
            /^ *PRIORITY=3$/ { p = 1 }
            END { if (m && p) found = 1; exit !found }' "$work/j.results/journal-verbose.txt" 2>/dev/null; then
        ok "j: the message is logged at error priority"
    else
        fail "j: the message is not logged at error priority (PRIORITY=3)"
    fi
    expect_prompts j 0
    nothing_written j
    no_passphrase j
    no_passphrase_bytes j "$work/j.img" "$work/results.img" "$work/tpm-j"/*
    discard "$work/j.img"
}

# ---------------------------------------------------------------------------
# The same, with passphrase.credentialFallback = "interactive": the message,
# then the fallback unit's console prompt (answered), the restore, and
# logins (systemd-user-sessions) allowed only after it.
scenario k "TPM2: another TPM with credentialFallback = \"interactive\": asked on the console instead" tpm
scenario_k() {
    tpm_sealed_disk
    cp --sparse=always "$work/sealed-only.img" "$work/k.img"
    unit_for k "$tpm_fallback_cfg"
    mapfile -t cmds < <(unit_cmds k relink)
    debugfs_write "$work/k.img" "${cmds[@]}"
    boot k "$work/k.img" "$work/esp.img" "$work/usb-bound.img" answer "$work/tpm-k"
    expect_prop k ActiveState failed
    expect_prop k ExecMainStatus 243
    expect_unit_journal k "asking for the passphrase on the console instead"
    in_file k console.log "zeta-creds-restore: the sealed passphrase $TPM_CREDENTIAL"
    if [ "$(fprop k ActiveState) $(fprop k Result) $(fprop k ExecMainStatus)" = "active success 0" ]; then
        ok "k: zeta-creds-restore-fallback.service is active, status 0"
    else
        fail "k: the fallback unit: $(tr '\n' ' ' <"$work/k.results/fallback-unit.txt" 2>/dev/null)"
        cat "$work/k.results/fallback-journal.txt" 2>/dev/null || true
    fi
    in_file k fallback-journal.txt "created"
    expect_prompts k 1
    restored k
    after_fallback k
    no_passphrase k
    no_passphrase_bytes k "$work/k.img" "$work/tpm-k"/*
    discard "$work/k.img"
}

## sops-nix and agenix get the restored key in the same boot ###############
# (issue 17, items 5 and 9; nixos-modules/README.md, "sops-nix and
# agenix".) The guest has no NixOS, so sops-nix and agenix are stand-ins
# that do what theirs do with the key: sops-install-secrets "decrypts"
# with the age key its manifest names and publishes /run/secrets only when
# it could (all or nothing); agenix's install step uses the SSH host key as
# its identity, and publishes its generation (/run/agenix) even with a
# secret it could not decrypt. What each "decrypted" names the SHA-256 of
# the key it used, so the checks see which key that was. The units around
# them are the real ones: sops-install-secrets.service and
# agenix-install-secrets.service as sops-nix 56b24064 and agenix b027ee29
# declare them, and the follow-ups and the consumer's ordering rendered by
# nixos-modules/integrations.nix itself (tests/nix/render-integrations.nix).
# The consumer, zeta-vm-consumer.service, stands in for a service named in
# integrations.{sops,agenix}.services (nginx, wireguard-wg0): it reads both
# secrets at start and writes what it found, and every unit's state and
# times, to the results disk. Both scenarios use the blob at the default
# path (the configuration sets none: /boot/zeta-creds.enc, on the ESP
# where NixOS mounts it) on the first boot of a fresh disk: the key is not
# on it before the restore.

# The guest's stand-in tools, written to $work/secrets-tools/.
secrets_tools() {
    local d=$work/secrets-tools
    [ ! -d "$d" ] || return 0
    mkdir -p "$d"
    printf 'keyFile=/var/lib/sops-nix/key.txt\n' >"$d/sops-manifest"
    cat >"$d/sops-install-secrets" <<'TOOL'
#!/bin/sh
# tests/vm stand-in for sops-nix's sops-install-secrets MANIFEST: all or
# nothing, as the real one (it decrypts everything, then links /run/secrets).
set -eu
key=$(sed -n 's/^keyFile=//p' "$1")
if [ ! -s "$key" ]; then
    echo "sops-install-secrets (stand-in): cannot decrypt: no age key at $key" >&2
    exit 1
fi
umask 077
mkdir -p /run/secrets.d/1
printf 'decrypted with age key sha256:%s\n' "$(sha256sum <"$key" | cut -d ' ' -f 1)" >/run/secrets.d/1/api-token
ln -sfn /run/secrets.d/1 /run/secrets
echo "sops-install-secrets (stand-in): /run/secrets/api-token decrypted with $key"
TOOL
    cat >"$d/zeta-vm-agenix" <<'TOOL'
#!/bin/sh
# tests/vm stand-in for agenix's activation steps (new-generation, install,
# chown): the SSH host key is the identity; a secret that cannot be
# decrypted is missing from the generation, which is linked all the same.
set -u
identity=/etc/ssh/ssh_host_ed25519_key
current=$(readlink /run/agenix || true)
current=${current##*/}
generation=/run/agenix.d/$((${current:-0} + 1))
case $1 in
new-generation) mkdir -p "$generation" ;;
install)
    if [ -s "$identity" ]; then
        (umask 077 && printf 'decrypted with ssh host key sha256:%s\n' \
            "$(sha256sum <"$identity" | cut -d ' ' -f 1)" >"$generation/api-token")
        echo "[agenix] (stand-in) decrypted api-token with $identity"
    else
        echo "[agenix] (stand-in) WARNING: no readable identities found! api-token not decrypted" >&2
    fi
    ln -sfn "$generation" /run/agenix
    ;;
chown) echo "[agenix] (stand-in) chowning..." ;;
esac
TOOL
    cat >"$d/zeta-vm-activation" <<'TOOL'
#!/bin/sh
# tests/vm stand-in for NixOS activation, which runs before any unit: the
# sops-nix step (setupSecrets) and agenix's three steps. A failed step is
# reported and activation goes on, as NixOS's does.
mkdir -p /run/zeta-vm
out=/run/zeta-vm/activation.txt
if /usr/local/bin/sops-install-secrets /etc/zeta-vm/sops-manifest; then
    echo "setupSecrets: ok" >>"$out"
else
    echo "setupSecrets: failed (exit $?)" >>"$out"
fi
for step in new-generation install chown; do /usr/local/sbin/zeta-vm-agenix "$step"; done
if [ -e /run/agenix/api-token ]; then
    echo "agenix: api-token installed" >>"$out"
else
    echo "agenix: api-token missing" >>"$out"
fi
exit 0
TOOL
    cat >"$d/zeta-vm-consumer" <<'TOOL'
#!/bin/sh
# tests/vm: a service that reads sops-nix and agenix secrets at start.
out=/mnt/results/consumer.txt
read_secret() {
    if [ -r "$2" ]; then echo "$1=$(cat "$2")"; else echo "$1=MISSING"; fi
}
{
    read_secret sops-token /run/secrets/api-token
    read_secret agenix-token /run/agenix/api-token
    echo "activation=$(tr '\n' ';' </run/zeta-vm/activation.txt 2>/dev/null)"
    echo "consumer.ExecMainStartTimestampMonotonic=$(systemctl show -p ExecMainStartTimestampMonotonic --value zeta-vm-consumer.service)"
    for u in zeta-creds-restore sops-install-secrets agenix-install-secrets zeta-creds-sops-nix zeta-creds-agenix; do
        systemctl show "$u.service" -p LoadState -p ActiveState -p Result -p ExecMainStatus -p ConditionResult \
            -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic | sed "s/^/$u./"
    done
} >"$out" 2>&1
TOOL
    cat >"$d/zeta-vm-consumer.service" <<'TOOL'
[Unit]
Description=zeta-creds VM test: a service that reads sops-nix and agenix secrets at start
RequiresMountsFor=/mnt/results

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/zeta-vm-consumer
TOOL
    # sops-nix modules/sops/default.nix, systemd.services.sops-install-secrets
    # with sops.useSystemdActivation (requiredBy and before
    # sysinit-reactivation.target: NixOS's, not in this guest).
    cat >"$d/sops-install-secrets.service" <<'TOOL'
[Unit]
After=local-fs.target systemd-sysusers.service userborn.service
Before=sysinit-reactivation.target
DefaultDependencies=no
RequiresMountsFor=/var/lib/sops-nix/key.txt

[Service]
Environment="SOPS_RESTART_UNITS_VIA_SYSTEMCTL=1"
Type=oneshot
ExecStart=/usr/local/bin/sops-install-secrets /etc/zeta-vm/sops-manifest
RemainAfterExit=true
TOOL
    # agenix modules/age.nix, systemd.services.agenix-install-secrets (with
    # systemd-sysusers or userborn): its three steps in one script.
    cat >"$d/agenix-install-secrets.service" <<'TOOL'
[Unit]
After=systemd-sysusers.service
DefaultDependencies=no

[Service]
Type=oneshot
ExecStart=/usr/local/lib/zeta-vm/agenix-install
RemainAfterExit=true
TOOL
    printf '#!/bin/sh\n/usr/local/sbin/zeta-vm-agenix new-generation\n/usr/local/sbin/zeta-vm-agenix install\n/usr/local/sbin/zeta-vm-agenix chown\n' >"$d/agenix-install"
    # NixOS activation, before any unit.
    cat >"$d/zeta-vm-activation.service" <<'TOOL'
[Unit]
Description=zeta-creds VM test: stand-in for NixOS activation (sops-nix setupSecrets, agenix)
DefaultDependencies=no
After=local-fs.target systemd-sysusers.service
Before=sysinit.target zeta-creds-restore.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/zeta-vm-activation
TOOL
}

# secrets_root NAME MODE: NAME's disk (the restore in file mode, the
# passphrase staged, the blob at its default path) with the stand-ins and
# the units integrations.nix renders for MODE (systemd or activation).
secrets_root() {
    local name=$1 mode=$2 d=$work/secrets-tools f unit
    secrets_tools
    env NIX_CONF_DIR="$work/nix-conf" NIX_STATE_DIR="$work/nix-state" NIX_LOG_DIR="$work/nix-log" \
        nix-instantiate --option build-users-group '' --store dummy:// \
        --eval --strict --json "$repo/tests/nix/render-integrations.nix" \
        --argstr mode "$mode" --argstr consumer zeta-vm-consumer >"$work/$name.integration.json"
    rm -rf "$work/$name.integration"
    mkdir -p "$work/$name.integration/units" "$work/$name.integration/scripts"
    while IFS= read -r unit; do
        jq -jr --arg u "$unit" '.units[$u]' "$work/$name.integration.json" >"$work/$name.integration/units/${unit//\//:}"
    done < <(jq -r '.units | keys[]' "$work/$name.integration.json")
    while IFS= read -r f; do
        jq -jr --arg f "$f" '.scripts[$f]' "$work/$name.integration.json" >"$work/$name.integration/scripts/$f"
    done < <(jq -r '.scripts | keys[]' "$work/$name.integration.json")
    local cmds=(
        "mkdir /etc/zeta-vm" "mkdir /usr/local/lib/zeta-vm"
        "mkdir /etc/systemd/system/zeta-vm-consumer.service.d"
    )
    mapfile -t -O "${#cmds[@]}" cmds < <(
        stage_cmds "$work/passphrase"
        put "$d/sops-manifest" /etc/zeta-vm/sops-manifest 644
        put "$d/sops-install-secrets" /usr/local/bin/sops-install-secrets 755
        put "$d/agenix-install" /usr/local/lib/zeta-vm/agenix-install 755
        for f in zeta-vm-agenix zeta-vm-activation zeta-vm-consumer; do
            put "$d/$f" "/usr/local/sbin/$f" 755
        done
        put "$d/zeta-vm-consumer.service" /etc/systemd/system/zeta-vm-consumer.service 644
        echo "symlink /etc/systemd/system/multi-user.target.wants/zeta-vm-consumer.service /etc/systemd/system/zeta-vm-consumer.service"
        if [ "$mode" = systemd ]; then
            for unit in sops-install-secrets.service agenix-install-secrets.service; do
                put "$d/$unit" "/etc/systemd/system/$unit" 644
                echo "symlink /etc/systemd/system/sysinit.target.wants/$unit /etc/systemd/system/$unit"
            done
        else
            put "$d/zeta-vm-activation.service" /etc/systemd/system/zeta-vm-activation.service 644
            echo "symlink /etc/systemd/system/sysinit.target.wants/zeta-vm-activation.service /etc/systemd/system/zeta-vm-activation.service"
        fi
        for f in "$work/$name.integration/scripts"/*; do
            [ -e "$f" ] || continue
            put "$f" "/usr/local/lib/zeta-vm/$(basename "$f")" 755
        done
        for f in "$work/$name.integration/units"/*; do
            [ -e "$f" ] || continue
            unit=$(basename "$f")
            unit=${unit//://}
            put "$f" "/etc/systemd/system/$unit" 644
            case $unit in
            */*) ;;
            *) echo "symlink /etc/systemd/system/multi-user.target.wants/$unit /etc/systemd/system/$unit" ;;
            esac
        done
    )
    root_for "$name" "$file_cfg" "${cmds[@]}"
}

# cprop NAME KEY: KEY (unit.Property) in what the consumer wrote.
cprop() { sed -n "s/^$2=//p" "$work/$1.results/consumer.txt" 2>/dev/null || true; }

# secrets_checks NAME INSTALLER...: the restore ran from the default path
# and succeeded, no ordering cycle, each INSTALLER (the unit that installed
# the secrets this boot) succeeded and started after the restore had
# finished, and the consumer started after them and read both secrets,
# decrypted with the keys the blob carried.
secrets_checks() {
    local name=$1 unit restored_at start exit consumer_at
    shift
    if grep -q -- '--blob /boot/zeta-creds.enc ' "$work/$name.service" &&
        ! grep -q '"blob"' <<<"$file_cfg"; then
        ok "$name: the configuration sets no blob; the unit reads the default, /boot/zeta-creds.enc"
    else
        fail "$name: the unit does not read /boot/zeta-creds.enc by default: $(grep '^ExecStart=' "$work/$name.service")"
    fi
    expect_prop "$name" Result success
    expect_prop "$name" ExecMainStatus 0
    restored "$name"
    if grep -qi 'ordering cycle' "$work/$name.results/journal.txt" 2>/dev/null; then
        fail "$name: systemd found an ordering cycle:"
        grep -i 'ordering cycle' "$work/$name.results/journal.txt"
    else
        ok "$name: no ordering cycle in the journal"
    fi
    have "$name" consumer.txt || return 0
    restored_at=$(cprop "$name" zeta-creds-restore.ExecMainExitTimestampMonotonic)
    consumer_at=$(cprop "$name" consumer.ExecMainStartTimestampMonotonic)
    for unit in "$@"; do
        start=$(cprop "$name" "$unit.ExecMainStartTimestampMonotonic")
        exit=$(cprop "$name" "$unit.ExecMainExitTimestampMonotonic")
        if [ "$(cprop "$name" "$unit.Result") $(cprop "$name" "$unit.ExecMainStatus")" = "success 0" ] &&
            [ "${start:-0}" -gt 0 ] && [ "${restored_at:-0}" -gt 0 ] && [ "$start" -ge "$restored_at" ]; then
            ok "$name: $unit.service succeeded, started at ${start}us, after the restore finished at ${restored_at}us"
        else
            fail "$name: $unit.service: $(grep "^$unit\." "$work/$name.results/consumer.txt" | tr '\n' ' ') (restore done at ${restored_at})"
        fi
        if [ "${consumer_at:-0}" -gt 0 ] && [ "${exit:-0}" -gt 0 ] && [ "$consumer_at" -ge "$exit" ]; then
            ok "$name: the consumer started at ${consumer_at}us, after $unit.service finished at ${exit}us"
        else
            fail "$name: the consumer started at '${consumer_at}', $unit.service finished at '${exit}'"
        fi
    done
    local age_key host_key
    age_key=$(sha256sum <"$src/var/lib/sops-nix/key.txt" | cut -d ' ' -f 1)
    host_key=$(sha256sum <"$src/etc/ssh/ssh_host_ed25519_key" | cut -d ' ' -f 1)
    if [ "$(cprop "$name" sops-token)" = "decrypted with age key sha256:$age_key" ]; then
        ok "$name: the consumer read the sops-nix secret, decrypted with the restored age key"
    else
        fail "$name: the consumer's sops-nix secret: '$(cprop "$name" sops-token)' (the restored key is sha256:$age_key)"
    fi
    if [ "$(cprop "$name" agenix-token)" = "decrypted with ssh host key sha256:$host_key" ]; then
        ok "$name: the consumer read the agenix secret, decrypted with the restored SSH host key"
    else
        fail "$name: the consumer's agenix secret: '$(cprop "$name" agenix-token)' (the restored host key is sha256:$host_key)"
    fi
}

# ---------------------------------------------------------------------------
# sops-nix with sops.useSystemdActivation and agenix under systemd-sysusers
# (their default under sysusers or userborn): sops-install-secrets.service
# and agenix-install-secrets.service, early-boot units (sysinit.target,
# DefaultDependencies=no), wait for the restore (its Before=), with no
# ordering cycle against the restore's own default dependencies, and
# decrypt with the key it restored; the consumer, ordered by the
# integration, starts after them and reads both secrets.
scenario secrets-units "sops-nix and agenix as units: they decrypt with the restored keys in the same boot"
scenario_secrets-units() {
    secrets_root secrets-units systemd
    boot secrets-units "$work/secrets-units.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/secrets-units.img"
    secrets_checks secrets-units sops-install-secrets agenix-install-secrets
    no_run_passphrase secrets-units
    no_passphrase secrets-units
}

# ---------------------------------------------------------------------------
# sops-nix and agenix in NixOS activation (scripted users), which runs
# before any unit: on the first boot after an install it finds no key
# (the stand-in of activation fails loudly: sops-nix publishes nothing,
# agenix's secret is missing), which is what happens without the
# integration. The follow-ups integrations.nix adds (zeta-creds-sops-nix,
# zeta-creds-agenix) then run the install steps again after the restore,
# and the consumer, ordered after them, reads both secrets in that boot.
scenario secrets-activation "sops-nix and agenix in activation: the follow-ups decrypt with the restored keys in the same boot"
scenario_secrets-activation() {
    secrets_root secrets-activation activation
    boot secrets-activation "$work/secrets-activation.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/secrets-activation.img"
    if [ "$(cprop secrets-activation activation)" = "setupSecrets: failed (exit 1);agenix: api-token missing;" ]; then
        ok "secrets-activation: activation, before the restore, found no key: sops-nix failed, agenix's secret missing"
    else
        fail "secrets-activation: activation before the restore: '$(cprop secrets-activation activation)'"
    fi
    in_file secrets-activation journal.txt "cannot decrypt: no age key at /var/lib/sops-nix/key.txt"
    secrets_checks secrets-activation zeta-creds-sops-nix zeta-creds-agenix
    no_run_passphrase secrets-activation
    no_passphrase secrets-activation
}

# ---------------------------------------------------------------------------
# Keeping the blob fresh (issue 18): credential mode on i's TPM. The boot
# restores headless; then the probe rewrites a carried file (a rotated
# token) and starts zeta-creds-rebundle.service, as its timer would: the
# unit succeeds, the blob on the (writable) ESP is generation 2 sealed
# under the same passphrase, generation 1 is kept as .prev, `status` says
# fresh. zeta-creds-rebundle-shutdown.service is active; the probe rotates
# the token again, and the power-off re-bundles it (generation 3): the
# shutdown unit's ExecStop= starts the re-bundle unit, which unseals the
# credential only while it runs. Then a fresh root (file
# mode, a reinstall) restores that blob and gets the second token.
scenario rb "TPM2: the re-bundle unit seals a changed login; a reinstall restores it" tpm
scenario_rb() {
    # The disk sealed to the TPM in $work/tpm-i, before any restore.
    tpm_sealed_disk
    cp --sparse=always "$work/sealed-only.img" "$work/rb.img"
    cp --sparse=always "$work/esp.img" "$work/rb-esp.img"
    printf 'github.com: {oauth_token: gho_rotated_in_the_guest}\n' >"$work/rb-hosts.yml"
    printf 'github.com: {oauth_token: gho_rotated_before_shutdown}\n' >"$work/rb-hosts-2.yml"
    sha256sum "$work/rb-hosts-2.yml" | cut -d ' ' -f 1 >"$work/rb-hosts.sum"
    cat >"$work/rb-probe" <<'PROBE'
#!/bin/bash
# After the restore: rotate the gh token, run the re-bundle as its timer
# would, and write what it did to the results disk.
set -u
out=/mnt/results
cat /var/lib/zeta-vm/rb-hosts.yml >/home/zeta/.config/gh/hosts.yml
systemctl start zeta-creds-rebundle.service
systemctl show zeta-creds-rebundle.service -p Result -p ExecMainStatus >"$out/rebundle-unit.txt" 2>&1
journalctl -b -u zeta-creds-rebundle.service -o cat --no-pager >"$out/rebundle-journal.txt" 2>&1
/usr/local/bin/zeta-creds inspect --json /boot/zeta-creds.enc >"$out/rebundle-blob.json" 2>&1
/usr/local/bin/zeta-creds inspect --json /boot/zeta-creds.enc.prev >"$out/rebundle-prev.json" 2>&1
/usr/local/bin/zeta-creds status >"$out/rebundle-status.txt" 2>&1
echo "status exit $?" >>"$out/rebundle-status.txt"
systemctl show zeta-creds-rebundle-shutdown.service -p ActiveState -p Result >"$out/shutdown-unit.txt" 2>&1
# The second rotation, for the re-bundle at power-off.
cat /var/lib/zeta-vm/rb-hosts-2.yml >/home/zeta/.config/gh/hosts.yml
PROBE
    cat >"$work/rb-probe.service" <<'UNIT'
[Unit]
Description=zeta-creds VM test: rotate a login, run the re-bundle
After=zeta-creds-restore.service
Before=zeta-vm-collect.service
RequiresMountsFor=/mnt/results /boot

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zeta-vm-rb-probe
UNIT
    printf '[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n' >"$work/rb-console.conf"
    debugfs -R "cat /etc/fstab" "$work/rb.img" 2>/dev/null | sed '/ \/boot /s/ vfat ro,/ vfat rw,/' >"$work/rb-fstab"
    grep -q ' /boot vfat rw,' "$work/rb-fstab" || fail "rb: cannot make the guest mount /boot read-write: $(cat "$work/rb-fstab")"
    local cmds restored_on
    mapfile -t cmds < <(
        echo "rm /etc/fstab"
        put "$work/rb-fstab" /etc/fstab 644
        put "$repo/manifest/default.toml" /etc/zeta/creds-manifest.toml 644
        put "$work/rb-hosts.yml" /var/lib/zeta-vm/rb-hosts.yml 600
        put "$work/rb-hosts-2.yml" /var/lib/zeta-vm/rb-hosts-2.yml 600
        echo "symlink /etc/systemd/system/multi-user.target.wants/zeta-creds-rebundle-shutdown.service /etc/systemd/system/zeta-creds-rebundle-shutdown.service"
        # The re-bundle's line on the console too: the journal of the
        # power-off is gone once the guest is off.
        echo "mkdir /etc/systemd/system/zeta-creds-rebundle.service.d"
        put "$work/rb-console.conf" /etc/systemd/system/zeta-creds-rebundle.service.d/console.conf 644
        put "$work/rb-probe" /usr/local/sbin/zeta-vm-rb-probe 755
        put "$work/rb-probe.service" /etc/systemd/system/zeta-vm-rb-probe.service 644
        echo "symlink /etc/systemd/system/multi-user.target.wants/zeta-vm-rb-probe.service /etc/systemd/system/zeta-vm-rb-probe.service"
    )
    debugfs_write "$work/rb.img" "${cmds[@]}"
    ESP_READONLY=off boot rb "$work/rb.img" "$work/rb-esp.img" "$work/usb-bound.img" no "$work/tpm-i"
    discard "$work/rb.img"
    expect_prop rb Result success
    restored_on=$(grep -c . "$work/rb.results/sums.txt" 2>/dev/null || true)
    [ "${restored_on:-0}" -gt 0 ] || fail "rb: the restore wrote nothing"
    if [ "$(tr '\n' ' ' <"$work/rb.results/rebundle-unit.txt" 2>/dev/null)" = "Result=success ExecMainStatus=0 " ]; then
        ok "rb: zeta-creds-rebundle.service succeeded"
    else
        fail "rb: zeta-creds-rebundle.service: $(tr '\n' ' ' <"$work/rb.results/rebundle-unit.txt" 2>/dev/null)"
        cat "$work/rb.results/rebundle-journal.txt" 2>/dev/null || true
    fi
    in_file rb rebundle-journal.txt "generation 1 -> 2, previous kept as /boot/zeta-creds.enc.prev"
    in_file rb rebundle-journal.txt "/home/zeta/.config/gh/hosts.yml"
    if [ "$(jq -r .generation "$work/rb.results/rebundle-blob.json" 2>/dev/null) $(jq -r .generation "$work/rb.results/rebundle-prev.json" 2>/dev/null)" = "2 1" ]; then
        ok "rb: the blob on the ESP is generation 2, .prev generation 1"
    else
        fail "rb: generations: $(cat "$work/rb.results/rebundle-blob.json" "$work/rb.results/rebundle-prev.json" 2>/dev/null)"
    fi
    in_file rb rebundle-status.txt "status exit 0"
    if [ "$(tr '\n' ' ' <"$work/rb.results/shutdown-unit.txt" 2>/dev/null)" = "Result=success ActiveState=active " ]; then
        ok "rb: the shutdown unit is active, waiting for the power-off"
    else
        fail "rb: the shutdown unit: $(tr '\n' ' ' <"$work/rb.results/shutdown-unit.txt" 2>/dev/null)"
    fi
    # What the power-off left on the ESP.
    rm -f "$work/rb-after.enc" "$work/rb-after.enc.prev"
    mcopy -n -i "$work/rb-esp.img" ::/zeta-creds.enc "$work/rb-after.enc"
    mcopy -n -i "$work/rb-esp.img" ::/zeta-creds.enc.prev "$work/rb-after.enc.prev"
    if [ "$("$binary" inspect --json "$work/rb-after.enc" | jq -r .generation) $("$binary" inspect --json "$work/rb-after.enc.prev" | jq -r .generation)" = "3 2" ]; then
        ok "rb: the power-off re-bundled the second rotation: generation 3 on the ESP, .prev generation 2"
        in_file rb console.log "generation 2 -> 3, previous kept as /boot/zeta-creds.enc.prev"
    else
        fail "rb: after the power-off the ESP holds generations $("$binary" inspect --json "$work/rb-after.enc" | jq -r .generation) and $("$binary" inspect --json "$work/rb-after.enc.prev" | jq -r .generation), not 3 and 2"
    fi
    no_passphrase rb
    # A reinstall: a fresh root, file mode, the ESP as the re-bundle left it.
    mapfile -t cmds < <(stage_cmds "$work/passphrase")
    root_for rb-new "$file_cfg" "${cmds[@]}"
    boot rb-new "$work/rb-new.img" "$work/rb-esp.img" "$work/usb-bound.img" no
    discard "$work/rb-new.img"
    expect_prop rb-new Result success
    expect_prop rb-new ExecMainStatus 0
    if grep -q "^$(cat "$work/rb-hosts.sum")  /home/zeta/.config/gh/hosts.yml\$" "$work/rb-new.results/sums.txt" 2>/dev/null; then
        ok "rb-new: the reinstall restored the token rotated in the guest before its power-off"
    else
        fail "rb-new: /home/zeta/.config/gh/hosts.yml is not the rotated token: $(grep hosts.yml "$work/rb-new.results/sums.txt" 2>/dev/null)"
    fi
    no_passphrase rb-new
    discard "$work/rb-esp.img"
}

# ---------------------------------------------------------------------------
# Keeping the blob fresh where a human holds the passphrase (interactive
# mode, issue 18): on a's restored disk the same timer's unit only
# reports. After a rotated token it logs one warning (journal priority
# warning) naming the file and the sealed date, leaves the login line in
# /run/zeta-creds-notice/stale (0644, no path), succeeds (exit 10 is
# SuccessExitStatus=), and asks for nothing.
scenario rr "interactive mode: the re-bundle timer's unit only reports, in the journal and the login line"
scenario_rr() {
    a_restored rr
    printf 'github.com: {oauth_token: gho_rotated_in_the_guest}\n' >"$work/rr-hosts.yml"
    cat >"$work/rr-probe" <<'PROBE'
#!/bin/bash
# After the boot: rotate the gh token, run the re-bundle unit as its timer
# would, and write what it did to the results disk.
set -u
out=/mnt/results
cat /var/lib/zeta-vm/rr-hosts.yml >/home/zeta/.config/gh/hosts.yml
systemctl start zeta-creds-rebundle.service
systemctl show zeta-creds-rebundle.service -p Result -p ExecMainStatus >"$out/rebundle-unit.txt" 2>&1
journalctl -b -u zeta-creds-rebundle.service -p warning -o cat --no-pager >"$out/rebundle-warnings.txt" 2>&1
stat -c '%a %U' /run/zeta-creds-notice/stale >"$out/notice-stat.txt" 2>&1
cat /run/zeta-creds-notice/stale >"$out/notice.txt" 2>&1
PROBE
    cat >"$work/rr-probe.service" <<'UNIT'
[Unit]
Description=zeta-creds VM test: rotate a login, run the re-bundle unit (report only)
After=zeta-creds-restore.service zeta-creds-restore-check.service
Before=zeta-vm-collect.service
RequiresMountsFor=/mnt/results

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/zeta-vm-rr-probe
UNIT
    local cmds
    mapfile -t cmds < <(
        put "$repo/manifest/default.toml" /etc/zeta/creds-manifest.toml 644
        put "$work/rr-hosts.yml" /var/lib/zeta-vm/rr-hosts.yml 600
        put "$work/rr-probe" /usr/local/sbin/zeta-vm-rr-probe 755
        put "$work/rr-probe.service" /etc/systemd/system/zeta-vm-rr-probe.service 644
        echo "symlink /etc/systemd/system/multi-user.target.wants/zeta-vm-rr-probe.service /etc/systemd/system/zeta-vm-rr-probe.service"
    )
    debugfs_write "$work/rr.img" "${cmds[@]}"
    boot rr "$work/rr.img" "$work/esp.img" "$work/usb-bound.img" no
    discard "$work/rr.img"
    expect_prompts rr 0
    # Exit 10 (tests/rebundle.rs) is listed in SuccessExitStatus=, so the
    # unit is not failed.
    if grep -qx 'Result=success' "$work/rr.results/rebundle-unit.txt" 2>/dev/null; then
        ok "rr: zeta-creds-rebundle.service reported and is not failed"
    else
        fail "rr: zeta-creds-rebundle.service: $(tr '\n' ' ' <"$work/rr.results/rebundle-unit.txt" 2>/dev/null)"
    fi
    in_file rr rebundle-warnings.txt "1 carried files changed since the blob was sealed on "
    in_file rr rebundle-warnings.txt ": /home/zeta/.config/gh/hosts.yml; run \`zeta-creds bundle\` to carry them"
    in_file rr notice-stat.txt "644 root"
    in_file rr notice.txt "zeta-creds: 1 carried files changed since the blob was sealed on "
    if grep -q hosts.yml "$work/rr.results/notice.txt" 2>/dev/null; then
        fail "rr: the world-readable login line names a path"
    else
        ok "rr: the login line names no path"
    fi
    no_passphrase rr
}
