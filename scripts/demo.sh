#!/usr/bin/env bash
# The README example, end to end: build zeta-creds, generate a sample source
# tree holding FAKE credentials, bundle it into an envelope, inspect the
# header, verify and list the contents, restore into an empty target root
# (once on the wrong stick, refused; twice on the right one, the second
# changing nothing), and check that every file came back with its content,
# mode and owner.
#
#   ./scripts/demo.sh
#
# Any user can run it. Run as root, it also shows owners resolved by name:
# zeta is uid 2000 on the source root and uid 1000 on the target root, and
# the restored home files belong to 1000 (seed 001: a changed uid must not
# orphan a user's files). As another user every file is that user's, since
# only root can chown.
#
# The sample tree is generated here, not kept in git, because git keeps
# neither modes nor owners. The passphrase is random and never printed.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '\n== %s\n' "$*"; }
die() {
    printf '\ndemo FAILED: %s\n' "$*" >&2
    exit 1
}
last_cmd="(none yet)"
trap 'printf "\ndemo FAILED: exit %s at line %s; last command run: %s\n" \
    "$?" "$LINENO" "$last_cmd" >&2' ERR

say "build: cargo build --release --locked -p zeta-creds"
cargo build --release --locked -p zeta-creds
target_dir=${CARGO_TARGET_DIR:-$repo/target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
bin=$target_dir/release/zeta-creds
[ -x "$bin" ] || die "no binary at $bin after the build"

work=$(mktemp -d "${TMPDIR:-/tmp}/zeta-creds-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/src
dst=$work/dst
blob=$work/esp/zeta-creds.enc
pass_file=$work/pass

if [ "$(id -u)" -eq 0 ]; then
    src_uid=2000 src_gid=2000
    dst_uid=1000 dst_gid=1000
else
    src_uid=$(id -u) src_gid=$(id -g)
    dst_uid=$src_uid dst_gid=$src_gid
fi

# Print a command the way a reader would type it, then run it.
run() {
    local shown="$*"
    shown=${shown//"$bin"/zeta-creds}
    shown=${shown//"$work"/\$work}
    printf '\n$ %s\n' "$shown"
    last_cmd=$shown
    "$@"
}

# A root's etc/passwd and etc/group: root, and zeta with the given ids;
# and its etc/hostname: the blob is sealed for the source's host, and the
# restore refuses it on any other.
write_accounts() { # ROOT UID GID
    install -d -m 0755 "$1/etc"
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        "zeta:x:$2:$3:zeta:/home/zeta:/bin/sh" >"$1/etc/passwd"
    printf '%s\n' 'root:x:0:' "zeta:x:$3:" >"$1/etc/group"
    printf '%s\n' demo-host >"$1/etc/hostname"
    chmod 0644 "$1/etc/passwd" "$1/etc/group" "$1/etc/hostname"
}

# Write stdin to a file created with MODE.
put() { # MODE PATH
    (umask 077 && cat >"$2")
    chmod "$1" "$2"
}

# The name of an id in a root's own etc/passwd or etc/group (not the host's).
name_of() { # ROOT passwd|group ID
    local name
    name=$(awk -F: -v id="$3" '$3 == id { print $1; exit }' "$1/etc/$2")
    printf '%s' "${name:-?$3}"
}

# "user:group" of ROOT/REL, by the names in ROOT's own account files.
owner_of() { # ROOT REL
    local uid gid
    read -r uid gid < <(stat -c '%u %g' "$1/$2")
    printf '%s:%s' "$(name_of "$1" passwd "$uid")" "$(name_of "$1" group "$gid")"
}

# The passphrase file is consumed by every command that reads it, so it is
# written afresh before each one: mode 0600 from the start.
passphrase=$(head -c 24 /dev/urandom | base64)
write_passphrase() {
    rm -f "$pass_file"
    (umask 077 && printf '%s\n' "$passphrase" >"$pass_file")
    chmod 0600 "$pass_file"
}
consumed() {
    [ ! -e "$pass_file" ] || die "$1 left the passphrase file in place; it must unlink it"
}

# Files under the target root that a restore may touch, with what a second
# identical restore must not change. The state record is left out: it is
# the restore's own bookkeeping.
snapshot() {
    find "$dst" -mindepth 1 -path "$dst/var/lib/zeta-creds" -prune -o \
        \( -type d -printf '%P %M %U:%G\n' \) -o \
        \( -printf '%P %M %U:%G %s %T@ %i\n' \) | sort
}

say "source root \$work/src: the system being installed (zeta is uid $src_uid there)"
write_accounts "$src" "$src_uid" "$src_gid"
install -d -m 0755 "$src/etc/ssh" "$src/etc/zeta" "$src/home"
install -d -m 0700 "$src/home/zeta"
install -d -m 0755 "$src/home/zeta/.config"
install -d -m 0700 "$src/home/zeta/.config/gh" "$src/home/zeta/.codex"
put 0600 "$src/home/zeta/.config/gh/hosts.yml" <<'EOF'
# FAKE credentials for the zeta-creds demo: not a real token.
github.com:
    user: zeta-demo
    oauth_token: FAKE-DEMO-TOKEN-not-a-real-github-token
    git_protocol: ssh
EOF
put 0644 "$src/home/zeta/.config/gh/config.yml" <<'EOF'
version: "1"
git_protocol: ssh
EOF
put 0600 "$src/home/zeta/.codex/auth.json" <<'EOF'
{
  "_comment": "FAKE credentials for the zeta-creds demo: not real tokens",
  "OPENAI_API_KEY": null,
  "tokens": {
    "access_token": "FAKE-DEMO-ACCESS-TOKEN",
    "refresh_token": "FAKE-DEMO-REFRESH-TOKEN"
  }
}
EOF
put 0600 "$src/etc/ssh/ssh_host_ed25519_key" <<'EOF'
FAKE ssh_host_ed25519_key for the zeta-creds demo: not a key at all
EOF
put 0644 "$src/etc/ssh/ssh_host_ed25519_key.pub" <<'EOF'
ssh-ed25519 FAKE-DEMO-HOST-PUBLIC-KEY root@zeta-creds-demo
EOF
put 0644 "$src/etc/zeta/operator-authorized-keys" <<'EOF'
# FAKE operator key for the zeta-creds demo
ssh-ed25519 FAKE-DEMO-OPERATOR-PUBLIC-KEY operator@zeta-creds-demo
EOF
if [ "$(id -u)" -eq 0 ]; then
    chown -R "$src_uid:$src_gid" "$src/home/zeta"
fi

say "target root \$work/dst: the freshly installed system (zeta is uid $dst_uid there)"
write_accounts "$dst" "$dst_uid" "$dst_gid"
install -d -m 0755 "$dst/etc/ssh" "$dst/etc/zeta" "$dst/var/lib" "$dst/home"
install -d -m 0700 "$dst/home/zeta"
if [ "$(id -u)" -eq 0 ]; then
    chown "$dst_uid:$dst_gid" "$dst/home/zeta"
fi

say "1. bundle: seal the manifest's paths into one envelope on the ESP"
install -d -m 0755 "$work/esp"
write_passphrase
run "$bin" bundle --manifest examples/demo-manifest.toml \
    --source-root "$src" --out "$blob" --usb-uuid DEMO-1234 \
    --work-factor 10 --passphrase-file "$pass_file"
consumed bundle
[ -s "$blob" ] || die "bundle exited 0 but wrote no envelope at $blob"

say "2. inspect: the header, readable without the passphrase"
run "$bin" inspect "$blob"

say "3. verify --list: decrypt and check everything, write nothing"
write_passphrase
run "$bin" verify --blob "$blob" --list --passphrase-file "$pass_file"
consumed verify

say "4. restore from the wrong stick: refused with exit 4, nothing written"
before=$(snapshot)
write_passphrase
rc=0
run "$bin" restore --blob "$blob" --usb-uuid OTHER-0000 \
    --target-root "$dst" --passphrase-file "$pass_file" || rc=$?
[ "$rc" -eq 4 ] || die "restore with the wrong USB UUID exited $rc, expected 4"
[ "$(snapshot)" = "$before" ] || die "a refused restore changed the target root"
echo "(refused as expected: exit 4)"

say "5. restore: write every file with its mode and owner"
write_passphrase
run "$bin" restore --blob "$blob" --usb-uuid DEMO-1234 \
    --target-root "$dst" --passphrase-file "$pass_file"
consumed restore

say "6. restore again: the same blob changes nothing"
before=$(snapshot)
write_passphrase
run "$bin" restore --blob "$blob" --usb-uuid demo-1234 \
    --target-root "$dst" --passphrase-file "$pass_file"
consumed "the second restore"
if [ "$(snapshot)" != "$before" ]; then
    diff <(printf '%s\n' "$before") <(snapshot) >&2 || true
    die "a second restore of the same blob changed the target root"
fi

say "7. the restored target root (owners named by its own etc/passwd)"
while IFS=$'\t' read -r rel mode uid gid; do
    printf '%s %s:%s (%s:%s) /%s\n' "$mode" "$uid" "$gid" \
        "$(name_of "$dst" passwd "$uid")" "$(name_of "$dst" group "$gid")" "$rel"
done < <(find "$dst" -mindepth 1 -printf '%P\t%M\t%U\t%G\n' | sort)

say "8. compare the source and the restored tree"
for dir in home/zeta etc/ssh etc/zeta; do
    diff -r "$src/$dir" "$dst/$dir" || die "restored /$dir differs from the source"
done
for rel in home/zeta/.config/gh home/zeta/.config/gh/hosts.yml \
    home/zeta/.config/gh/config.yml home/zeta/.codex/auth.json \
    etc/ssh/ssh_host_ed25519_key etc/ssh/ssh_host_ed25519_key.pub \
    etc/zeta/operator-authorized-keys; do
    want_mode=$(stat -c %a "$src/$rel")
    got_mode=$(stat -c %a "$dst/$rel")
    want_owner=$(owner_of "$src" "$rel")
    got_owner=$(owner_of "$dst" "$rel")
    [ "$got_mode" = "$want_mode" ] ||
        die "/$rel: mode $got_mode after restore, $want_mode in the source"
    [ "$got_owner" = "$want_owner" ] ||
        die "/$rel: owner $got_owner after restore, $want_owner in the source"
    printf 'same: %-40s %s %s\n' "/$rel" "$got_mode" "$got_owner"
done
# A parent the restore created inside a home belongs to the home's user.
got_owner=$(owner_of "$dst" home/zeta/.codex)
[ "$got_owner" = "zeta:zeta" ] ||
    die "/home/zeta/.codex was created as $got_owner; it must belong to zeta"
printf 'same: %-40s created by the restore, %s\n' "/home/zeta/.codex" "$got_owner"

printf '\ndemo OK\n'
