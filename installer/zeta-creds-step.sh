#!/usr/bin/env bash
# zeta-creds installer step: seal the operator's credentials onto the ESP.
#
# Called by a live-USB installer after the target system is mounted and the
# operator has logged in to their tools, before the target is unmounted
# (installer/README.md says where and how). It
#
#   1. decides whether to run: ZETA_CREDS_PICKER=1 runs, =0 skips; unset, it
#      asks on the terminal (default yes) and skips when there is none;
#   2. reads the live stick's filesystem UUID with blkid;
#   3. looks at the blob already on the ESP, if any: on a reinstall it
#      offers to keep it (bound to this stick) or move it (bound to another
#      stick, `zeta-creds rekey`), or to re-bundle (after `zeta-creds diff`);
#   4. gets the passphrase once, from ZETA_CREDS_PASSPHRASE or the terminal,
#      and hands it to every zeta-creds command on a pipe (--passphrase-fd):
#      never on a command line, never in a file, never in `set -x` output;
#   5. runs `zeta-creds bundle` (or keeps/moves the old blob), then
#      `zeta-creds verify` on what is on the ESP;
#   6. with --seal-tpm2 (or ZETA_CREDS_SEAL=tpm2), seals that passphrase to
#      this machine's TPM2 with `systemd-creds encrypt --with-key=tpm2`,
#      fed on stdin, into TARGET/etc/credstore.encrypted/zeta-creds-passphrase
#      (0600 root, directory 0700), for a headless first boot; without a
#      usable TPM2 it says so and the installed system asks on the console;
#   7. only then writes TARGET/etc/zeta/usb-uuid (0644, root; temporary
#      file and rename);
#   8. prints a summary and the NixOS lines that enable the restore.
#
# This script is thin on purpose: everything that touches a secret or the
# blob is done by the zeta-creds binary, which writes the blob atomically
# (temporary file, fsync, rename) and keeps the one it replaces as .prev.
# Exit codes: see usage() below.
set -euo pipefail

prog=zeta-creds-step
blob_name=zeta-creds.enc

usage() {
    cat <<'EOF'
Usage: zeta-creds-step.sh --target DIR --esp DIR [OPTIONS]

Seal the credentials listed in a zeta-creds manifest into DIR/zeta-creds.enc
on the ESP, bound to the live USB stick, and record the stick's UUID in
TARGET/etc/zeta/usb-uuid, so that the installed system restores them at boot.

Options:
  --target DIR        root of the system being installed (e.g. /mnt)
  --esp DIR           the mounted ESP; the blob goes to DIR/zeta-creds.enc
  --usb-device DEV    block device (or image file) of the live USB stick;
                      default: the device mounted at /iso (NixOS),
                      /run/live/medium, /run/initramfs/live or /cdrom
  --manifest FILE     default: TARGET/etc/zeta/creds-manifest.toml, else the
                      packaged manifest/default.toml
  --persona NAME      carry only the entries for this persona
  --source-root DIR   where the logged-in credentials are (default: TARGET)
  --zeta-creds PATH   the zeta-creds binary (default: zeta-creds on PATH)
  --work-factor N     scrypt work factor of a new blob (default: zeta-creds's, 18)
  --seal-tpm2         also seal the passphrase to this machine's TPM2
                      (systemd-creds encrypt --with-key=tpm2) into
                      TARGET/etc/credstore.encrypted/zeta-creds-passphrase, so
                      the installed system restores at boot without asking;
                      without a usable TPM2 the step says so and the system
                      asks on the console instead
  --tpm2-pcrs LIST    with --seal-tpm2: the PCRs the seal is bound to, as
                      systemd-creds takes them (default 7: the Secure Boot
                      state; "" binds to no PCR: whoever boots anything on
                      this machine can unseal it). See installer/README.md
  --systemd-creds PATH  the systemd-creds binary (default: on PATH)
  -h, --help          print this help

Environment:
  ZETA_CREDS_PICKER=1|0     run / skip this step; unset: ask on the terminal
                            (default yes), skip when there is no terminal
  ZETA_CREDS_PASSPHRASE     the passphrase (unset by this script as soon as it
                            starts; discouraged: prefer the terminal prompt)
  ZETA_CREDS_REBUNDLE=0|1   when the ESP already holds a blob: 0 keeps it (or
                            moves it to this stick), 1 re-bundles; unset: ask
                            on the terminal, default keep
  ZETA_CREDS_MANIFEST_DIR   directory holding the packaged default.toml
  ZETA_CREDS_SEAL=tpm2|none tpm2 is --seal-tpm2; none (or unset) does not seal

Exit status:
   0  credentials sealed (or kept) and verified; or the step was skipped
   1  failed (the message says what; a weak passphrase without a terminal)
   2  usage error
   3  wrong passphrase for the blob already on the ESP
   5  the blob on the ESP cannot be read and ZETA_CREDS_REBUNDLE is not 1
   6  required input missing: live stick, UUID, manifest, zeta-creds binary
      or passphrase source
  other: the exit status of the zeta-creds command that failed
On any failure the ESP holds either the previous blob or none, never a
half-written one, and TARGET/etc/zeta/usb-uuid is not written.
EOF
}

# ---------------------------------------------------------------------------
# Output. Progress and errors go to stderr with a prefix, prompts to the
# terminal, the final summary and the NixOS lines to stdout.

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
warn() { say "warning: $*"; }

# die STATUS MESSAGE [HINT...]
die() {
    local status=$1 hint
    shift
    say "error: $1"
    shift
    for hint in "$@"; do
        say "hint: $hint"
    done
    exit "$status"
}

usage_error() {
    say "error: $*"
    say "hint: ${BASH_SOURCE[0]##*/} --help lists the options"
    exit 2
}

# ---------------------------------------------------------------------------
# The passphrase. It lives in one shell variable, is expanded only between
# secret_begin and secret_end (which switch off `set -x` tracing, so that a
# `bash -x` run never prints it), and reaches zeta-creds only through
# `--passphrase-fd 3 3< <(printf ...)`: printf is a bash builtin, so the
# passphrase is in no argv, and the pipe is in no file system.

passphrase=""
trace_was_on=""
secret_begin() {
    case $- in
    *x*)
        trace_was_on=1
        set +x
        ;;
    esac
}
secret_end() {
    if [ -n "$trace_was_on" ]; then
        trace_was_on=""
        set -x
    fi
}

# Take ZETA_CREDS_PASSPHRASE before anything else runs, and remove it from
# the environment so that no child (blkid, findmnt, zeta-creds) inherits it.
passphrase_from_env=false
secret_begin
if [ -n "${ZETA_CREDS_PASSPHRASE:-}" ]; then
    passphrase=$ZETA_CREDS_PASSPHRASE
    passphrase_from_env=true
fi
unset ZETA_CREDS_PASSPHRASE
secret_end

# ---------------------------------------------------------------------------
# The terminal. Prompts are read from and written to /dev/tty, so the step
# works when the installer redirects its stdin or stdout.

have_tty() { { : </dev/tty; } 2>/dev/null; }

tty_say() { printf '%s\n' "$*" >/dev/tty; }

echo_off=false
cleanup() {
    if [ "$echo_off" = true ]; then
        stty echo </dev/tty 2>/dev/null || true
    fi
    if [ -n "${uuid_tmp:-}" ]; then
        rm -f -- "$uuid_tmp"
    fi
    if [ -n "${seal_tmp:-}" ]; then
        rm -f -- "$seal_tmp"
    fi
    passphrase=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ask_yes_no PROMPT DEFAULT: DEFAULT is y or n; true for yes.
ask_yes_no() {
    local prompt=$1 default=$2 answer
    while :; do
        if ! IFS= read -r -p "$prompt " answer </dev/tty 2>/dev/tty; then
            tty_say ""
            die 1 "no answer on the terminal (end of input)"
        fi
        answer=${answer,,}
        case $answer in
        "") [ "$default" = y ] && return 0 || return 1 ;;
        y | yes) return 0 ;;
        n | no) return 1 ;;
        *) tty_say "please answer y or n" ;;
        esac
    done
}

# ask_choice PROMPT DEFAULT LETTER...: sets $choice to the letter chosen.
choice=""
ask_choice() {
    local prompt=$1 default=$2 answer letter
    shift 2
    while :; do
        if ! IFS= read -r -p "$prompt " answer </dev/tty 2>/dev/tty; then
            tty_say ""
            die 1 "no answer on the terminal (end of input)"
        fi
        answer=${answer,,}
        answer=${answer:-$default}
        for letter in "$@"; do
            if [ "${answer:0:1}" = "$letter" ]; then
                choice=$letter
                return 0
            fi
        done
        tty_say "please answer one of: $*"
    done
}

# read_secret PROMPT VAR: read one line without echo into VAR.
read_secret() {
    local __line=""
    echo_off=true
    if ! IFS= read -rs -p "$1" __line </dev/tty 2>/dev/tty; then
        echo_off=false
        tty_say ""
        die 1 "no passphrase on the terminal (end of input)"
    fi
    echo_off=false
    tty_say ""
    printf -v "$2" '%s' "$__line"
    __line=""
}

# ask_new_passphrase: ask twice on the terminal until both agree.
ask_new_passphrase() {
    local first second tries=0
    secret_begin
    while :; do
        tries=$((tries + 1))
        read_secret "New passphrase for $blob (USB $uuid): " first
        if [ -z "$first" ]; then
            tty_say "the passphrase is empty; choose one (five or more random words is a good one)"
        else
            read_secret "Repeat the passphrase: " second
            if [ "$first" = "$second" ]; then
                passphrase=$first
                first=""
                second=""
                secret_end
                return 0
            fi
            tty_say "the two passphrases differ"
        fi
        if [ "$tries" -ge 3 ]; then
            first=""
            second=""
            secret_end
            die 1 "no passphrase after 3 tries; nothing was changed"
        fi
    done
}

# ask_old_passphrase: ask once for the passphrase of the blob on the ESP.
ask_old_passphrase() {
    secret_begin
    read_secret "Passphrase of the blob on the ESP ($blob): " passphrase
    if [ -z "$passphrase" ]; then
        secret_end
        die 1 "empty passphrase; nothing was changed"
    fi
    secret_end
}

# ---------------------------------------------------------------------------
# Running zeta-creds. Its stdin is /dev/null so that it never prompts on its
# own; its stderr is kept in $zc_err (and shown) so that the step can tell a
# weak passphrase from other failures. Neither stream ever holds the
# passphrase.

zc_err=""
zc_status=0

# zc_pass ARGS...: run zeta-creds ARGS with the passphrase on fd 3.
zc_pass() {
    zc_status=0
    secret_begin
    zc_err=$("$zc" "$@" --passphrase-fd 3 3< <(printf '%s' "$passphrase") \
        </dev/null 2>&1 1>&4) || zc_status=$?
    secret_end
    if [ -n "$zc_err" ]; then
        printf '%s\n' "$zc_err" >&2
    fi
    return "$zc_status"
}

# json_str JSON KEY / json_num JSON KEY: one field of zeta-creds's --json
# output. The values we read ([0-9a-z-] UUIDs, personas, numbers, dates) need
# no unescaping; this avoids needing jq on the live system.
json_str() {
    local re="\"$2\"[[:space:]]*:[[:space:]]*\"([^\"]*)\""
    [[ $1 =~ $re ]] && printf '%s\n' "${BASH_REMATCH[1]}"
}
json_num() {
    local re="\"$2\"[[:space:]]*:[[:space:]]*([0-9]+)"
    [[ $1 =~ $re ]] && printf '%s\n' "${BASH_REMATCH[1]}"
}

# ---------------------------------------------------------------------------
# Arguments.

target=""
esp=""
usb_device=""
manifest=""
persona=""
source_root=""
zc=zeta-creds
work_factor=""
seal=${ZETA_CREDS_SEAL:-none}
tpm2_pcrs=7
systemd_creds=systemd-creds

need_value() {
    if [ "$#" -lt 2 ] || [ -z "$2" ]; then
        usage_error "$1 needs a value"
    fi
}

while [ "$#" -gt 0 ]; do
    opt=$1
    case $opt in
    -h | --help)
        usage
        exit 0
        ;;
    --*=*)
        set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
        continue
        ;;
    --seal-tpm2)
        seal=tpm2
        shift
        ;;
    --tpm2-pcrs)
        # May be empty: no PCRs.
        [ "$#" -ge 2 ] || usage_error "--tpm2-pcrs needs a value (\"\" for none)"
        tpm2_pcrs=$2
        shift 2
        ;;
    --target | --esp | --usb-device | --manifest | --persona | --source-root | --zeta-creds | --work-factor | --systemd-creds)
        need_value "$@"
        case $opt in
        --target) target=$2 ;;
        --esp) esp=$2 ;;
        --usb-device) usb_device=$2 ;;
        --manifest) manifest=$2 ;;
        --persona) persona=$2 ;;
        --source-root) source_root=$2 ;;
        --zeta-creds) zc=$2 ;;
        --work-factor) work_factor=$2 ;;
        --systemd-creds) systemd_creds=$2 ;;
        esac
        shift 2
        ;;
    *) usage_error "unknown argument: $opt" ;;
    esac
done

[ -n "$target" ] || usage_error "--target DIR is required (the root of the system being installed, e.g. /mnt)"
[ -n "$esp" ] || usage_error "--esp DIR is required (the mounted ESP, e.g. /mnt/boot)"
if [ -n "$work_factor" ] && ! [[ $work_factor =~ ^[0-9]{1,2}$ ]]; then
    usage_error "--work-factor must be a number (10 to 22), not '$work_factor'"
fi
case ${ZETA_CREDS_PICKER:-} in
"" | 0 | 1) ;;
*) usage_error "ZETA_CREDS_PICKER must be 1 (run) or 0 (skip), not '$ZETA_CREDS_PICKER'" ;;
esac
case ${ZETA_CREDS_REBUNDLE:-} in
"" | 0 | 1) ;;
*) usage_error "ZETA_CREDS_REBUNDLE must be 1 (re-bundle) or 0 (keep), not '$ZETA_CREDS_REBUNDLE'" ;;
esac
case $seal in
none | tpm2) ;;
*) usage_error "ZETA_CREDS_SEAL must be tpm2 (seal the passphrase to this machine's TPM2) or none, not '$seal'" ;;
esac
# PCR indexes 0-23, joined by + (or ,); empty: no PCRs.
if ! [[ $tpm2_pcrs =~ ^(([0-9]|1[0-9]|2[0-3])([+,]([0-9]|1[0-9]|2[0-3]))*)?$ ]]; then
    usage_error "--tpm2-pcrs must list PCR indexes 0 to 23 joined by + (e.g. 7 or 0+7), or be empty for none, not '$tpm2_pcrs'"
fi

# ---------------------------------------------------------------------------
# 1. Opt in or out, as the original installer's picker step did.

interactive=false
if have_tty; then
    interactive=true
fi

case ${ZETA_CREDS_PICKER:-} in
0)
    say "skipped: ZETA_CREDS_PICKER=0 (credentials are not carried to the next install)"
    exit 0
    ;;
1) ;;
*)
    if [ "$interactive" != true ]; then
        say "skipped: ZETA_CREDS_PICKER is not set and there is no terminal to ask on"
        say "hint: set ZETA_CREDS_PICKER=1 (and ZETA_CREDS_PASSPHRASE) to run this step without a terminal, or ZETA_CREDS_PICKER=0 to skip it quietly"
        exit 0
    fi
    tty_say "zeta-creds can seal your tool logins, SSH host keys and operator keys into"
    tty_say "one passphrase-encrypted file on the ESP, bound to this USB stick, so that the"
    tty_say "installed system (and the next reinstall) gets them back at boot."
    if ! ask_yes_no "Seal your credentials now? [Y/n]" y; then
        say "skipped: you chose not to seal credentials (ZETA_CREDS_PICKER=1 runs this step without asking)"
        exit 0
    fi
    ;;
esac

# ---------------------------------------------------------------------------
# 2. Inputs: directories, binary, manifest, the stick and its UUID.

[ -d "$target" ] || usage_error "--target $target is not a directory"
[ -d "$esp" ] || usage_error "--esp $esp is not a directory (is the ESP mounted?)"
target=$(cd "$target" && pwd -P)
esp=$(cd "$esp" && pwd -P)
source_root=${source_root:-$target}
[ -d "$source_root" ] || usage_error "--source-root $source_root is not a directory"
blob=$esp/$blob_name

if ! zc_path=$(command -v "$zc"); then
    die 6 "zeta-creds not found ('$zc')" \
        "install it on the live system, or pass --zeta-creds PATH"
fi
zc=$zc_path
exec 4>&1 # zeta-creds's stdout, while zc_pass captures its stderr

script_dir=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
if [ -z "$manifest" ]; then
    candidates=("$target/etc/zeta/creds-manifest.toml")
    if [ -n "${ZETA_CREDS_MANIFEST_DIR:-}" ]; then
        candidates+=("$ZETA_CREDS_MANIFEST_DIR/default.toml")
    fi
    candidates+=("$script_dir/../manifest/default.toml"
        "$script_dir/../share/zeta-creds/manifest/default.toml")
    for candidate in "${candidates[@]}"; do
        if [ -f "$candidate" ]; then
            manifest=$candidate
            break
        fi
    done
    [ -n "$manifest" ] || die 6 "no manifest: looked for ${candidates[*]}" \
        "pass --manifest FILE, or set ZETA_CREDS_MANIFEST_DIR to the directory holding default.toml"
    manifest=$(readlink -f "$manifest")
fi
[ -f "$manifest" ] || die 6 "manifest $manifest does not exist"

# The stick: the block device of the filesystem the live system booted
# from. NixOS mounts it at /iso; Debian live, dracut and Ubuntu elsewhere.
live_mounts=(/iso /run/live/medium /run/initramfs/live /cdrom)

# live_device MOUNTPOINT: print the block device mounted there, if any.
live_device() {
    local source majmin sysdev
    source=$(findmnt -n -o SOURCE --mountpoint "$1" 2>/dev/null | tail -n 1) || true
    [ -n "$source" ] || return 1
    source=${source%%\[*} # a bind mount reads /dev/sdb1[/path]
    if [ -b "$source" ]; then
        printf '%s\n' "$source"
        return 0
    fi
    # The name it was mounted by may be gone (NixOS's stage 1 mounts /iso
    # from a /dev/root symlink): ask the kernel which device it is.
    majmin=$(findmnt -n -o MAJ:MIN --mountpoint "$1" 2>/dev/null | tail -n 1) || true
    majmin=${majmin//[[:space:]]/}
    [ -n "$majmin" ] && [ -e "/sys/dev/block/$majmin" ] || return 1
    sysdev=$(readlink -f "/sys/dev/block/$majmin") || return 1
    [ -b "/dev/${sysdev##*/}" ] || return 1
    printf '/dev/%s\n' "${sysdev##*/}"
}

if [ -z "$usb_device" ]; then
    for mountpoint in "${live_mounts[@]}"; do
        if usb_device=$(live_device "$mountpoint"); then
            say "live stick: $usb_device (mounted at $mountpoint)"
            break
        fi
        usb_device=""
    done
    [ -n "$usb_device" ] || die 6 "cannot tell which device the live system booted from (no block device is mounted at ${live_mounts[*]})" \
        "pass --usb-device DEV; \`lsblk -f\` lists the devices and their UUIDs"
fi
[ -e "$usb_device" ] || die 6 "USB device $usb_device does not exist" \
    "\`lsblk -f\` lists the devices and their UUIDs"

uuid=$(blkid -s UUID -o value "$usb_device" 2>/dev/null) || true
uuid=${uuid//[[:space:]]/}
[ -n "$uuid" ] || die 6 "blkid found no filesystem UUID on $usb_device" \
    "is it the live stick? \`lsblk -f\` lists the devices and their UUIDs; pass --usb-device DEV"
uuid_norm=${uuid,,}
[[ $uuid_norm =~ ^[0-9a-z-]{1,64}$ ]] ||
    die 6 "blkid printed '$uuid' for $usb_device, which is not a UUID zeta-creds accepts ([0-9a-z-], 1 to 64 characters)"
say "USB stick $usb_device: UUID $uuid"
say "manifest: $manifest; credentials from: $source_root; blob: $blob"

# ---------------------------------------------------------------------------
# 3. What is on the ESP already, and what to do about it.

old_state=none # none | same | other | unreadable
old_uuid=""
old_generation=""
old_persona=""
old_work_factor=""
if [ -e "$blob" ]; then
    if header=$("$zc" inspect --json "$blob" </dev/null 2>/dev/null); then
        old_uuid=$(json_str "$header" usb_uuid) || true
        old_generation=$(json_num "$header" generation) || true
        old_persona=$(json_str "$header" persona) || true
        old_work_factor=$(json_num "$header" work_factor) || true
        if [ "$old_uuid" = "$uuid_norm" ]; then
            old_state=same
        else
            old_state=other
        fi
    else
        old_state=unreadable
    fi
fi

# The ceiling for verify: 20 (zeta-creds's default) unless the blob needs more.
max_wf=20
for wf in "$work_factor" "$old_work_factor"; do
    if [ -n "$wf" ] && [ "$wf" -gt "$max_wf" ]; then
        max_wf=$wf
    fi
done

rebundle_env=${ZETA_CREDS_REBUNDLE:-}
action=bundle # bundle | keep | move | rebundle | replace
case $old_state in
none) ;;
same)
    say "the ESP already holds a blob bound to this stick: $blob (generation ${old_generation:-?}, persona ${old_persona:-(none)})"
    if [ -n "$persona" ] && [ "$persona" != "$old_persona" ]; then
        warn "it was bundled for persona ${old_persona:-(none)}, not $persona: re-bundle to carry $persona's entries"
    fi
    if [ "$rebundle_env" = 1 ]; then
        action=rebundle
        say "ZETA_CREDS_REBUNDLE=1: re-bundling"
    elif [ "$rebundle_env" = 0 ]; then
        action=keep
        say "ZETA_CREDS_REBUNDLE=0: keeping it"
    elif [ "$interactive" = true ]; then
        tty_say "  [k] keep it: the installed system restores it at first boot (checked with its passphrase now)"
        tty_say "  [r] re-bundle from $source_root (shows what would change first; the old blob is kept as $blob_name.prev)"
        ask_choice "Keep or re-bundle? [K/r]" k k r
        if [ "$choice" = k ]; then action=keep; else action=rebundle; fi
    else
        action=keep
        say "keeping it (ZETA_CREDS_REBUNDLE is not set; =1 re-bundles)"
    fi
    ;;
other)
    say "the ESP holds a blob bound to another USB stick ($old_uuid), not to this one ($uuid_norm): $blob (generation ${old_generation:-?})"
    if [ "$rebundle_env" = 1 ]; then
        action=replace
        say "ZETA_CREDS_REBUNDLE=1: re-bundling for this stick"
    elif [ "$rebundle_env" = 0 ]; then
        action=move
        say "ZETA_CREDS_REBUNDLE=0: moving it to this stick"
    elif [ "$interactive" = true ]; then
        tty_say "  [m] move it to this stick: same credentials and passphrase, rebound with \`zeta-creds rekey\`"
        tty_say "  [r] re-bundle from $source_root for this stick (the old blob is kept as $blob_name.prev)"
        ask_choice "Move or re-bundle? [M/r]" m m r
        if [ "$choice" = m ]; then action=move; else action=replace; fi
    else
        action=move
        say "moving it to this stick (ZETA_CREDS_REBUNDLE is not set; =1 re-bundles)"
    fi
    ;;
unreadable)
    say "the ESP holds $blob, but it is not a blob zeta-creds can read:"
    "$zc" inspect "$blob" </dev/null 2>&1 >/dev/null | sed 's/^/    /' >&2 || true
    if [ "$rebundle_env" = 1 ]; then
        action=replace
        say "ZETA_CREDS_REBUNDLE=1: replacing it (it is kept as $blob_name.prev)"
    elif [ -z "$rebundle_env" ] && [ "$interactive" = true ] &&
        ask_yes_no "Replace it with a new bundle (it is kept as $blob_name.prev)? [y/N]" n; then
        action=replace
    else
        die 5 "not replacing the unreadable $blob" \
            "set ZETA_CREDS_REBUNDLE=1 (or answer yes on a terminal) to replace it with a new bundle"
    fi
    ;;
esac

# ---------------------------------------------------------------------------
# 4 and 5. Passphrase, then the action, then verify.

need_passphrase_source() {
    [ "$passphrase_from_env" = true ] || [ "$interactive" = true ] ||
        die 6 "no passphrase: ZETA_CREDS_PASSPHRASE is not set and there is no terminal to ask on" \
            "set ZETA_CREDS_PASSPHRASE, or run the step on a terminal"
}

have_passphrase() {
    local r=1
    secret_begin
    [ -n "$passphrase" ] && r=0
    secret_end
    return "$r"
}

# Bundle a new blob. $1: extra bundle options (--force).
do_bundle() {
    local tries=0
    local opts=(--manifest "$manifest" --source-root "$source_root" --out "$blob" --usb-uuid "$uuid")
    [ -z "$persona" ] || opts+=(--persona "$persona")
    [ -z "$work_factor" ] || opts+=(--work-factor "$work_factor")
    opts+=("$@")
    while :; do
        tries=$((tries + 1))
        have_passphrase || ask_new_passphrase
        say "running: zeta-creds bundle ${opts[*]} --passphrase-fd 3"
        if zc_pass bundle "${opts[@]}"; then
            return 0
        fi
        if [ "$zc_status" -eq 1 ] && [[ $zc_err == *"too weak"* ]]; then
            if [ "$passphrase_from_env" = true ] || [ "$interactive" != true ]; then
                die 1 "ZETA_CREDS_PASSPHRASE is too weak; nothing was written to the ESP" \
                    "choose a longer passphrase (five or more random words)"
            fi
            if [ "$tries" -lt 3 ]; then
                tty_say "choose a stronger passphrase (five or more random words)"
                passphrase=""
                continue
            fi
        fi
        die "$zc_status" "zeta-creds bundle failed (exit $zc_status); no new blob was written to the ESP, $target was not changed" \
            "the message above says why; \`${BASH_SOURCE[0]##*/} --help\` lists the exit codes"
    done
}

# Check the blob on the ESP with the passphrase: keep and move need the old
# one; on a terminal, a wrong passphrase is asked again (3 tries).
# $1: the zeta-creds subcommand to run first (verify or rekey), then its options.
with_old_passphrase() {
    local tries=0
    while :; do
        tries=$((tries + 1))
        have_passphrase || ask_old_passphrase
        if zc_pass "$@"; then
            return 0
        fi
        if [ "$zc_status" -eq 3 ] && [ "$passphrase_from_env" != true ] && [ "$tries" -lt 3 ]; then
            passphrase=""
            continue
        fi
        if [ "$zc_status" -eq 3 ]; then
            die 3 "the blob on the ESP does not open with this passphrase; it was left as it is" \
                "give the passphrase it was bundled with, or set ZETA_CREDS_REBUNDLE=1 to replace it with a new bundle"
        fi
        die "$zc_status" "zeta-creds $1 failed (exit $zc_status) on $blob; it was left as it is" \
            "set ZETA_CREDS_REBUNDLE=1 to replace it with a new bundle"
    done
}

need_passphrase_source
if [ "$passphrase_from_env" = true ]; then
    warn "using ZETA_CREDS_PASSPHRASE (removed from the environment; the terminal prompt is safer)"
fi

if [ "$action" = rebundle ]; then
    # Show what a re-bundle changes, with the passphrase the new blob gets.
    have_passphrase || ask_new_passphrase
    say "what re-bundling from $source_root would change:"
    diff_status=0
    zc_pass diff --blob "$blob" --manifest "$manifest" --source-root "$source_root" \
        --max-work-factor "$max_wf" || diff_status=$zc_status
    go=true
    case $diff_status in
    0)
        say "nothing changed since this blob was bundled"
        if [ -z "$rebundle_env" ] && [ "$interactive" = true ] &&
            ! ask_yes_no "Re-bundle anyway (same contents, next generation)? [y/N]" n; then
            go=false
        fi
        ;;
    10)
        if [ -z "$rebundle_env" ] && [ "$interactive" = true ] &&
            ! ask_yes_no "Re-bundle with these changes? [Y/n]" y; then
            go=false
        fi
        ;;
    3)
        say "the blob on the ESP does not open with this passphrase, so what changes cannot be shown; the new blob is sealed with it"
        if [ -z "$rebundle_env" ] && [ "$interactive" = true ] &&
            ! ask_yes_no "Re-bundle anyway (the old blob is kept as $blob_name.prev)? [y/N]" n; then
            go=false
            passphrase="" # it is not this blob's: keep asks for the right one
        fi
        ;;
    *)
        say "zeta-creds diff failed (exit $diff_status): what changes cannot be shown"
        if [ -z "$rebundle_env" ] && [ "$interactive" = true ] &&
            ! ask_yes_no "Re-bundle anyway? [y/N]" n; then
            go=false
        fi
        ;;
    esac
    [ "$go" = true ] || action=keep
fi

case $action in
bundle) do_bundle ;;
rebundle) do_bundle ;;
replace) do_bundle --force ;;
keep)
    say "checking the blob on the ESP with its passphrase"
    with_old_passphrase verify --blob "$blob" --list --max-work-factor "$max_wf"
    ;;
move)
    say "moving the blob to this stick (zeta-creds rekey, same passphrase)"
    with_old_passphrase rekey --blob "$blob" --new-usb-uuid "$uuid" --same-passphrase \
        --max-work-factor "$max_wf"
    ;;
esac

# Whatever happened above, check what is on the ESP now, with the passphrase
# the installed system will be given.
verify_json=""
secret_begin
verify_status=0
verify_json=$("$zc" verify --blob "$blob" --json --max-work-factor "$max_wf" \
    --passphrase-fd 3 3< <(printf '%s' "$passphrase") </dev/null) || verify_status=$?
secret_end
if [ "$verify_status" -ne 0 ]; then
    die "$verify_status" "zeta-creds verify failed (exit $verify_status) on $blob right after it was written: do not rely on it" \
        "$target/etc/zeta/usb-uuid was not written; the previous blob, if any, is $blob.prev"
fi
got_uuid=$(json_str "$verify_json" usb_uuid) || true
[ "$got_uuid" = "$uuid_norm" ] ||
    die 1 "the blob on the ESP is bound to USB '$got_uuid', not to this stick ($uuid_norm)" \
        "$target/etc/zeta/usb-uuid was not written"

# ---------------------------------------------------------------------------
# 6. --seal-tpm2: the verified passphrase, sealed to this machine's TPM2.
#
# --with-key=tpm2, never auto or host: the host key of the live system is
# not the installed system's (/var/lib/systemd/credential.secret differs),
# so only the TPM, which both boot on, can open it at boot. The name is the
# credential id the unit loads (LoadCredentialEncrypted=passphrase:...).
# The passphrase reaches systemd-creds on stdin (printf is a builtin: no
# argv; the pipe: no file). A failure here leaves the blob alone and falls
# back to the console prompt: the credentials are sealed either way.

cred_dir=$target/etc/credstore.encrypted
cred_file=$cred_dir/zeta-creds-passphrase
sealed=false
seal_tmp=""
seal_fallback() {
    warn "the passphrase was NOT sealed to the TPM2: $1"
    say "the installed system will ask for the passphrase on the console instead (passphrase.mode = \"interactive\")"
    if [ -n "${2:-}" ]; then
        say "hint: $2"
    fi
}
sc_path=""
if [ "$seal" = tpm2 ]; then
    tpm_report=""
    tpm_status=0
    if sc_path=$(command -v "$systemd_creds"); then
        tpm_report=$("$sc_path" has-tpm2 </dev/null 2>&1) || tpm_status=$?
    fi
    if [ -z "$sc_path" ]; then
        seal_fallback "systemd-creds not found ('$systemd_creds'); it comes with systemd 250 or newer" \
            "run the step on a live system with systemd-creds, or pass --systemd-creds PATH"
    elif [ "$tpm_status" -ne 0 ] && ! { [[ $tpm_report == *"+driver"* ]] && [[ $tpm_report == *"+system"* ]]; }; then
        # "partial" with +driver and +system is a TPM2 that works, e.g. on
        # a live system booted in BIOS mode (-firmware): seal. Without
        # the kernel driver or systemd's TPM2 support, it cannot.
        seal_fallback "this machine has no usable TPM2 (systemd-creds has-tpm2 says: $(printf '%s' "$tpm_report" | tr '\n' ' '))" \
            "enable the TPM (fTPM / PTT / Security Chip) in the firmware setup and run the step again, or seal later on the installed system (nixos-modules/README.md, \"Headless\")"
    else
        if [ ! -d "$cred_dir" ]; then
            mkdir -p -- "$cred_dir"
        fi
        chmod 0700 -- "$cred_dir"
        seal_tmp=$(umask 077 && mktemp "$cred_dir/.zeta-creds-passphrase.XXXXXX")
        say "sealing the passphrase to this machine's TPM2 (PCRs: ${tpm2_pcrs:-none}): systemd-creds encrypt --with-key=tpm2 --tpm2-pcrs=$tpm2_pcrs --name=passphrase - $cred_file"
        seal_status=0
        secret_begin
        (umask 077 && "$sc_path" encrypt --with-key=tpm2 "--tpm2-pcrs=$tpm2_pcrs" --name=passphrase \
            - "$seal_tmp" < <(printf '%s' "$passphrase")) || seal_status=$?
        secret_end
        if [ "$seal_status" -ne 0 ] || [ ! -s "$seal_tmp" ]; then
            rm -f -- "$seal_tmp"
            seal_tmp=""
            seal_fallback "systemd-creds encrypt failed (exit $seal_status), see above" \
                "seal it later on the installed system (nixos-modules/README.md, \"Headless\")"
        else
            chmod 0600 -- "$seal_tmp"
            if [ "$(id -u)" -eq 0 ]; then
                chown 0:0 -- "$seal_tmp" "$cred_dir"
            else
                warn "not root: $cred_file is owned by $(id -un), not root"
            fi
            sync -- "$seal_tmp"
            mv -f -- "$seal_tmp" "$cred_file"
            seal_tmp=""
            sync -- "$cred_dir"
            sealed=true
            say "sealed: $cred_file (0600 root; opens only on this machine's TPM2${tpm2_pcrs:+, while PCRs $tpm2_pcrs keep their values})"
        fi
    fi
fi
passphrase=""
entries=$(json_num "$verify_json" entry_count) || true
generation=$(json_num "$verify_json" generation) || true
user=$(json_str "$verify_json" user) || true
got_persona=$(json_str "$verify_json" persona) || true
got_wf=$(json_num "$verify_json" work_factor) || true

# ---------------------------------------------------------------------------
# 7. The UUID file, last: temporary file in the same directory, fsync, rename.

uuid_dir=$target/etc/zeta
if [ ! -d "$uuid_dir" ]; then
    mkdir -p -- "$uuid_dir"
    chmod 0755 -- "$uuid_dir"
fi
uuid_tmp=$(mktemp "$uuid_dir/.usb-uuid.XXXXXX")
printf '%s\n' "$uuid" >"$uuid_tmp"
chmod 0644 -- "$uuid_tmp"
if [ "$(id -u)" -eq 0 ]; then
    chown 0:0 -- "$uuid_tmp"
else
    warn "not root: $uuid_dir/usb-uuid is owned by $(id -un), not root"
fi
sync -- "$uuid_tmp"
mv -f -- "$uuid_tmp" "$uuid_dir/usb-uuid"
uuid_tmp=""
sync -- "$uuid_dir"

# ---------------------------------------------------------------------------
# 8. Summary and the NixOS lines.

case $action in
keep) what="kept the blob already on the ESP (checked with its passphrase)" ;;
move) what="moved the blob on the ESP to this stick (same credentials, same passphrase)" ;;
*) what="sealed the credentials from $source_root" ;;
esac

# Where the installed system sees the blob: the ESP's path under the target.
nix_blob=""
if [ "$target" = / ]; then
    nix_blob=$blob
else
    case $esp/ in
    "$target"/*) nix_blob=${esp#"$target"}/$blob_name ;;
    esac
fi

printf '\n'
printf 'Done: %s\n' "$what"
printf '  blob        %s: %s entries for user %s, generation %s, bound to USB %s\n' \
    "$blob" "${entries:-?}" "${user:-?}" "${generation:-?}" "$uuid_norm"
printf '  usb uuid    %s (written to %s/usb-uuid)\n' "$uuid" "$uuid_dir"
printf '\nTo restore them at every boot, add to the installed system'"'"'s NixOS configuration\n'
printf '(with the zeta-creds module imported, e.g. inputs.zeta-creds.nixosModules.default):\n\n'
printf '  zeta.credsRestore.enable = true;\n'
if [ "$sealed" = true ]; then
    printf '  zeta.credsRestore.passphrase.mode = "credential";\n'
    printf '  zeta.credsRestore.passphrase.credential = "/etc/credstore.encrypted/zeta-creds-passphrase";\n'
    printf '  # zeta.credsRestore.passphrase.credentialFallback = "interactive";  # ask on the console if the TPM2 no longer unseals it\n'
else
    printf '  zeta.credsRestore.passphrase.mode = "interactive";\n'
fi
if [ -z "$nix_blob" ]; then
    printf '  # zeta.credsRestore.blob = "<where this ESP is mounted>/%s";  (default /esp/%s)\n' \
        "$blob_name" "$blob_name"
elif [ "$nix_blob" != "/esp/$blob_name" ]; then
    printf '  zeta.credsRestore.blob = "%s";\n' "$nix_blob"
fi
if [ -n "$got_persona" ]; then
    printf '  zeta.credsRestore.persona = "%s";\n' "$got_persona"
fi
if [ -n "$got_wf" ] && [ "$got_wf" -gt 20 ]; then
    printf '  zeta.credsRestore.maxWorkFactor = %s;\n' "$got_wf"
fi
if [ "$sealed" = true ]; then
    printf '\nThe first boot restores them without asking: the passphrase is sealed to this\n'
    printf 'machine'"'"'s TPM2 in %s (PCRs: %s).\n' "$cred_file" "${tpm2_pcrs:-none}"
else
    printf '\nThe first boot asks for the passphrase on the console.\n'
fi
