# Render zeta-creds-restore.service from nixos-modules/unit.nix for a
# configuration given as JSON: what the NixOS module would install, as a
# unit file. Used by tests/nix/run.sh (systemd-analyze) and tests/vm/run.sh
# (the unit the Debian guest boots with).
#
#   nix-instantiate --eval --strict --json tests/nix/render-unit.nix \
#     --argstr cfg '{"passphrase":{"mode":"file","file":"/run/zeta-creds/passphrase"}}' \
#     --argstr binary /usr/local/bin/zeta-creds [--argstr userHome /home/zeta] | jq -r .
#
# With `--argstr units all`, every unit the configuration needs (the
# restore unit, and with passphrase.credentialFallback = "interactive" the
# fallback unit), as { "<unit name>" = text; }.
#
# A configuration that fails one of the module's assertions is refused with
# the assertion messages, as `nixos-rebuild` would refuse it.
{
  cfg ? "{}",
  binary,
  userHome ? "",
  units ? "",
}:
let
  u = import ../../nixos-modules/unit.nix;
  args = {
    cfg = builtins.fromJSON cfg;
    userHome = if userHome == "" then null else userHome;
  };
  failed = u.failedAssertions args;
in
if failed != [ ] then
  throw ("Failed assertions:\n- " + builtins.concatStringsSep "\n- " failed)
else
  let
    x = u.mkUnit (args // { inherit binary; });
  in
  if units == "all" then x.units else x.text
