#!/usr/bin/env bash
# tests/nix: the NixOS module, the unit it defines, flake.nix and
# default.nix, checked with plain Nix (nixpkgs cannot be fetched on our
# build machines; the flake's checks run the real-nixpkgs versions).
#
# What it proves:
#   1. every .nix file of the repository parses;
#   2. the pure unit function (nixos-modules/unit.nix) gives the exact
#      ExecStart argv, ordering, conditions, credentials, timeouts and
#      sandbox over a matrix of configurations, and every assertion fires
#      with its message (tests/nix/unit-cases.nix);
#   3. the module, evaluated against a documented test double of the lib
#      functions it uses (tests/nix/lib-double.nix), declares every option
#      typed and documented, hands the right values to the unit function,
#      and fires its assertions (tests/nix/module-cases.nix);
#      the installer ISO module (nixos-modules/installer.nix) puts the
#      package, and a manifest checked at build time, on the live system
#      (tests/nix/installer-cases.nix);
#   4. settings the option types must refuse are refused, with the
#      module system's message (and two definitions that conflict): a store path, a Nix path literal (which
#      would copy a secret into the store), a relative path, an unknown
#      mode, a work factor out of range, an unknown or removed option; an
#      unset package says how to set it;
#   5. flake.nix and default.nix have the promised outputs
#      (tests/nix/flake-cases.nix, with a stub nixpkgs);
#   6. the rendered unit passes `systemd-analyze verify` with the binary
#      path pointing at the real zeta-creds, for each passphrase mode (and
#      the sops-nix follow-up unit beside it), and
#      `systemd-analyze security --offline=true` scores it (printed, and
#      held at or below MAX_EXPOSURE); the default unit matches the golden
#      file tests/nix/golden/zeta-creds-restore.service
#      (ZETA_CREDS_REGEN_GOLDEN=1 rewrites it).
#
# Prints `SKIPPED: <reason>` and exits 77 when nix-instantiate, jq or
# systemd-analyze is missing (scripts/setup-debian.sh installs them).
set -euo pipefail

repo=${ZETA_CREDS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"

# The highest systemd-analyze exposure score the unit may have (0 best, 10
# worst; 1.7 when this was written).
MAX_EXPOSURE=2.0

skip() {
    printf 'SKIPPED: %s\n' "$*"
    exit 77
}
command -v nix-instantiate >/dev/null 2>&1 ||
    skip "nix-instantiate not found (Debian: apt-get install nix-bin; scripts/setup-debian.sh installs it)"
command -v jq >/dev/null 2>&1 || skip "jq not found (scripts/setup-debian.sh installs it)"
command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze not found (scripts/setup-debian.sh installs systemd)"

work=$(mktemp -d "${TMPDIR:-/tmp}/zeta-creds-nix.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Evaluation only: a dummy store (nothing is ever written to /nix), and
# Nix's configuration and state kept in our temporary directory, so the
# test needs no /nix, no nixbld group and no daemon.
export NIX_CONF_DIR="$work/nix-conf" NIX_STATE_DIR="$work/nix-state" NIX_LOG_DIR="$work/nix-log"
mkdir -p "$NIX_CONF_DIR"
nix_eval() {
    nix-instantiate --option build-users-group '' --store dummy:// --eval --strict "$@"
}

failures=0
fail() {
    printf 'FAIL: %s\n' "$*"
    failures=$((failures + 1))
}
ok() { printf 'ok: %s\n' "$*"; }

echo "== 1. every .nix file parses"
nix_files=()
while IFS= read -r -d '' f; do
    nix_files+=("$f")
done < <(find . \( -path ./target -o -path ./.git \) -prune -o -name '*.nix' -type f -print0 | sort -z)
[ "${#nix_files[@]}" -gt 0 ] || fail "no .nix files found"
for f in "${nix_files[@]}"; do
    if nix-instantiate --option build-users-group '' --store dummy:// --parse "$f" \
        >/dev/null 2>"$work/parse.err"; then
        ok "parses: $f"
    else
        fail "does not parse: $f"
        cat "$work/parse.err"
    fi
done

# run_cases FILE [NIX ARGS...]: evaluate a case file that returns
# { count; failures; }.
run_cases() {
    local file=$1 out
    shift
    if ! out=$(nix_eval --json "$file" "$@" 2>"$work/eval.err"); then
        fail "$file does not evaluate"
        cat "$work/eval.err"
        return
    fi
    local count nfail
    count=$(jq -r .count <<<"$out")
    nfail=$(jq -r '.failures | length' <<<"$out")
    if [ "$nfail" -eq 0 ]; then
        ok "$file: $count checks in $(jq -r '.cases | length' <<<"$out") cases"
    else
        fail "$file: $nfail of $count checks failed:"
        jq -r '.failures[] | "  - " + .' <<<"$out"
    fi
}

echo "== 2. the pure unit function over a matrix of configurations"
run_cases tests/nix/unit-cases.nix

echo "== 3. the module against the lib test double"
run_cases tests/nix/module-cases.nix

echo "== 3b. the installer ISO module (nixosModules.installer) against the lib test double"
# (A function of lib: bare nix-instantiate does not call it by itself.)
run_cases tests/nix/installer-cases.nix --arg lib 'import ./tests/nix/lib-double.nix'

echo "== 4. what the option types refuse"
# refused NAME EXPECTED EXPR: EXPR must fail to evaluate with EXPECTED in
# its error.
refused() {
    local name=$1 expected=$2 expr=$3
    if nix_eval -E "$expr" >"$work/refused.out" 2>"$work/refused.err"; then
        fail "$name: evaluated, should have been refused: $(cat "$work/refused.out")"
    elif grep -qF -- "$expected" "$work/refused.err"; then
        ok "$name: refused ($expected)"
    else
        fail "$name: refused, but without \"$expected\":"
        cat "$work/refused.err"
    fi
}
module() {
    # The module with these settings, every value forced.
    printf '(import ./tests/nix/eval-module.nix { settings = %s; pkgs = { zeta-creds = { type = "derivation"; outPath = "/nix/store/11111111111111111111111111111111-zeta-creds-0.1.0"; meta.mainProgram = "zeta-creds"; }; }; }).%s' "$1" "${2:-cfg}"
}
refused "a blob in the Nix store" \
    "A definition for option \`zeta.credsRestore.blob' is not of type \`absolute path outside the Nix store" \
    "$(module '{ enable = true; blob = "/nix/store/aaaa-zeta-creds.enc"; }')"
refused "a passphrase file given as a Nix path literal (would copy it into the store)" \
    "A definition for option \`zeta.credsRestore.passphrase.file' is not of type \`null or absolute path outside the Nix store" \
    "$(module '{ enable = true; passphrase = { mode = "file"; file = ./tests/nix/unit-cases.nix; }; }')"
refused "a credential in the Nix store" \
    "A definition for option \`zeta.credsRestore.passphrase.credential' is not of type" \
    "$(module '{ enable = true; passphrase = { mode = "credential"; credential = "/nix/store/aaaa-cred"; }; }')"
refused "a relative blob path" \
    "A definition for option \`zeta.credsRestore.blob' is not of type" \
    "$(module '{ blob = "esp/zeta-creds.enc"; }')"
refused "a blob path with a space (it would need quoting in the unit)" \
    "A definition for option \`zeta.credsRestore.blob' is not of type" \
    "$(module '{ blob = "/esp/my blob.enc"; }')"
refused "a work factor of 30" \
    "is not of type \`integer between 10 and 22 (both inclusive)'" \
    "$(module '{ maxWorkFactor = 30; }')"
refused "an unknown passphrase mode" \
    "is not of type \`one of \"interactive\", \"file\", \"credential\"'" \
    "$(module '{ passphrase.mode = "tty"; }')"
refused "an unknown credential fallback" \
    "is not of type \`one of \"fail\", \"interactive\"'" \
    "$(module '{ passphrase.credentialFallback = "ask"; }')"
refused "an unknown conflict policy" \
    "is not of type \`one of \"keep-modified\", \"overwrite\", \"backup\"'" \
    "$(module '{ onConflict = "clobber"; }')"
refused "a user name with a space" \
    "is not of type \`null or user name'" \
    "$(module '{ user = "bad user"; }')"
refused "a persona with capitals" \
    "is not of type \`null or persona name" \
    "$(module '{ persona = "Ops"; }')"
refused "an option that does not exist" \
    "The option \`zeta.credsRestore.passphraseFile' does not exist." \
    "$(module '{ passphraseFile = "/run/p"; }')"
refused "the original system's home option" \
    "The option definition \`zeta.credsRestore.home' no longer has any effect; please remove it." \
    "$(module '{ home = "/home/zeta"; }')"
refused "no package and none in pkgs" \
    "zeta.credsRestore.package is not set and nixpkgs has no zeta-creds package" \
    '(import ./tests/nix/eval-module.nix { settings = { enable = true; }; pkgs = { }; }).service.serviceConfig.ExecStart'
refused "a second module's plain Restart= beside ours (nixpkgs' merge: use mkForce)" \
    "The option \`systemd.services.zeta-creds-restore.serviceConfig.Restart' has conflicting definition values" \
    "$(module '{ enable = true; }' merged.zeta-creds-restore.serviceConfig.Restart | sed 's/; }).merged/; modules = [ { systemd.services.zeta-creds-restore.serviceConfig.Restart = "always"; } ]; }).merged/')"
refused "issue 17: unitConfig.StartLimitBurst beside startLimitBurst = mkForce conflicts" \
    "The option \`systemd.services.old.unitConfig.StartLimitBurst' has conflicting definition values" \
    '(import ./tests/nix/eval-module.nix { modules = [ { systemd.services.old.unitConfig.StartLimitBurst = 3; systemd.services.old.startLimitBurst = (import ./tests/nix/lib-double.nix).mkForce 5; } ]; }).merged.old.unitConfig'
refused "the installer module with no package and none in pkgs" \
    "zeta.installer.package is not set and nixpkgs has no zeta-creds package" \
    '(let lib = import ./tests/nix/lib-double.nix; in (lib.evalModules { modules = [ ./tests/nix/nixos-double.nix ./nixos-modules/installer.nix ]; specialArgs.pkgs = { formats.toml = _: { type = lib.types.raw; }; }; }).config.environment.systemPackages)'
refused "rendering a configuration that fails an assertion" \
    "passphrase.mode = \"file\" needs zeta.credsRestore.passphrase.file" \
    'import ./tests/nix/render-unit.nix { cfg = builtins.toJSON { passphrase.mode = "file"; }; binary = "/bin/true"; }'

echo "== 5. flake.nix and default.nix"
run_cases tests/nix/flake-cases.nix

echo "== 6. systemd-analyze on the rendered unit"
binary="$repo/target/release/zeta-creds"
if [ ! -x "$binary" ]; then
    echo "building $binary (cargo build --release -p zeta-creds)"
    cargo build --release --locked -p zeta-creds
fi
# Documentation=man:zeta-creds-restore(1) is checked against our pages.
mkdir -p "$work/man/man1"
ln -s "$repo"/man/*.1 "$work/man/man1/"
export MANPATH="$work/man:"

# render NAME CFG_JSON [BINARY [USERHOME]]: write $work/NAME/zeta-creds-restore.service
# and every other unit the configuration needs (zeta-creds-restore-check.service
# with restoreOn = "new-blob", the default) beside it.
render() {
    local name=$1 cfg=$2 bin=${3:-$binary} home=${4:-} unit
    mkdir -p "$work/$name"
    nix_eval --json tests/nix/render-unit.nix --argstr cfg "$cfg" --argstr binary "$bin" \
        --argstr userHome "$home" --argstr units all >"$work/$name/units.json" || return 1
    for unit in $(jq -r 'keys[]' "$work/$name/units.json"); do
        jq -jr --arg u "$unit" '.[$u]' "$work/$name/units.json" >"$work/$name/$unit"
    done
}
declare -A configs=(
    [interactive]='{}'
    [every-boot]='{"restoreOn":"every-boot"}'
    [file]='{"passphrase":{"mode":"file","file":"/run/zeta-creds/passphrase"}}'
    [credential]='{"passphrase":{"mode":"credential","credential":"/etc/credstore.encrypted/zeta-creds.passphrase"},"requireUsbPresent":true,"usbWait":20,"user":"ops","persona":"ops"}'
    [custom]='{"blob":"/boot/efi/zeta-creds.enc","usbUuidFile":"/var/lib/zeta/usb-uuid","onConflict":"backup","maxWorkFactor":18,"user":"ops","extraWritablePaths":["/var/lib/myservice"]}'
)
for name in interactive every-boot file credential custom; do
    home=""
    [ "$name" = custom ] && home=/srv/ops
    if ! render "$name" "${configs[$name]}" "$binary" "$home" 2>"$work/render.err"; then
        fail "$name: cannot render the unit"
        cat "$work/render.err"
        continue
    fi
    # Every unit file: the services and zeta-creds-rebundle.timer.
    if systemd-analyze verify --man=yes "$work/$name"/*.service "$work/$name"/*.timer >"$work/verify.out" 2>&1; then
        ok "$name: systemd-analyze verify ($(cd "$work/$name" && echo *.service *.timer))"
    else
        fail "$name: systemd-analyze verify:"
        cat "$work/verify.out"
    fi
done
# Credential mode with the interactive fallback: both unit files, side by
# side (OnFailure= names the other one).
mkdir -p "$work/fallback"
if nix_eval --json tests/nix/render-unit.nix --argstr units all --argstr binary "$binary" \
    --argstr cfg '{"passphrase":{"mode":"credential","credential":"/etc/credstore.encrypted/zeta-creds-passphrase","credentialFallback":"interactive"}}' \
    >"$work/fallback/units.json" 2>"$work/render.err"; then
    for unit in zeta-creds-restore.service zeta-creds-restore-fallback.service; do
        jq -jr --arg u "$unit" '.[$u]' "$work/fallback/units.json" >"$work/fallback/$unit"
    done
    if systemd-analyze verify --man=yes "$work/fallback/zeta-creds-restore.service" \
        "$work/fallback/zeta-creds-restore-fallback.service" >"$work/verify.out" 2>&1; then
        ok "credential fallback: systemd-analyze verify (both units)"
    else
        fail "credential fallback: systemd-analyze verify:"
        cat "$work/verify.out"
    fi
else
    fail "credential fallback: cannot render the units"
    cat "$work/render.err"
fi
# A follow-up unit of the sops-nix integration (unit.nix's mkFollowUp),
# beside the restore unit it is ordered after; its ExecStart= is the real
# binary so that verify finds an executable.
mkdir -p "$work/followup"
if nix_eval --json -E "(import ./nixos-modules/unit.nix).mkFollowUp {
        name = \"zeta-creds-sops-nix\"; description = \"Install sops-nix secrets\";
        execStart = \"$binary --version\"; conditions = [ \"!/run/secrets\" ];
        triggers = [ \"/var/lib/sops-nix/key.txt\" ]; consumers = [ \"nginx.service\" ]; }" \
    >"$work/followup/unit.json" 2>"$work/render.err"; then
    jq -jr .text "$work/followup/unit.json" >"$work/followup/zeta-creds-sops-nix.service"
    cp "$work/interactive/"*.service "$work/followup/"
    if systemd-analyze verify --man=yes "$work/followup/"*.service >"$work/verify.out" 2>&1; then
        ok "sops-nix follow-up: systemd-analyze verify (with the restore unit)"
    else
        fail "sops-nix follow-up: systemd-analyze verify:"
        cat "$work/verify.out"
    fi
else
    fail "sops-nix follow-up: cannot render the unit"
    cat "$work/render.err"
fi
[ "$(head -c 2 "$work/interactive/zeta-creds-restore.service")" = "# " ] ||
    fail "the rendered unit does not start with its comment line"

# The exposure score, per passphrase mode.
# "check": the check unit of restoreOn = "new-blob", sandboxed as tightly.
mkdir -p "$work/check"
cp "$work/interactive/zeta-creds-restore-check.service" "$work/check/zeta-creds-restore.service"
for name in interactive file credential custom check; do
    if ! systemd-analyze security --offline=true --no-pager "$work/$name/zeta-creds-restore.service" \
        >"$work/$name/security.txt" 2>&1; then
        fail "$name: systemd-analyze security failed:"
        cat "$work/$name/security.txt"
        continue
    fi
    line=$(grep 'Overall exposure level' "$work/$name/security.txt" || true)
    score=$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$line")
    if [ -z "$score" ]; then
        fail "$name: no exposure score in systemd-analyze security's output"
        cat "$work/$name/security.txt"
    elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
        ok "$name: systemd-analyze security: exposure $score (at most $MAX_EXPOSURE): $line"
    else
        fail "$name: exposure $score is above $MAX_EXPOSURE:"
        cat "$work/$name/security.txt"
    fi
done
echo "-- systemd-analyze security --offline=true, interactive mode (the default):"
cat "$work/interactive/security.txt"

# The whole default unit, pinned.
golden=tests/nix/golden/zeta-creds-restore.service
render golden '{}' /nix/store/00000000000000000000000000000000-zeta-creds-0.1.0/bin/zeta-creds
if [ "${ZETA_CREDS_REGEN_GOLDEN:-}" = 1 ]; then
    cp "$work/golden/zeta-creds-restore.service" "$golden"
    echo "rewrote $golden"
elif diff -u "$golden" "$work/golden/zeta-creds-restore.service"; then
    ok "the default unit matches $golden"
else
    fail "the default unit differs from $golden (ZETA_CREDS_REGEN_GOLDEN=1 rewrites it, if the change is meant)"
fi

if [ "$failures" -gt 0 ]; then
    echo "tests/nix: $failures failure(s)"
    exit 1
fi
echo "tests/nix: all passed"
