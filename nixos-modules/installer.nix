# zeta-creds on a custom NixOS installer ISO: the flake's
# `nixosModules.installer`, beside nixpkgs' installation-cd-minimal.nix
# (installer/README.md, "A live ISO with zeta-creds", has the flake).
#
# Importing the module is the opt-in, as with nixpkgs' own installer
# profiles: it puts the package on the live system's PATH, which brings
# `zeta-creds` (for `rescue` before partitioning and by-hand `bundle`,
# `verify`, `diff`), the installer step `zeta-creds-step`, their man pages
# and shell completions, and the default manifest in
# share/zeta-creds/manifest, where the step finds it. With
# `zeta.installer.manifest` the ISO carries the operator's own manifest
# instead: checked at build time, installed as /etc/zeta/creds-manifest.toml
# (what `zeta-creds bundle`, `diff` and `manifest check` read on the live
# system) and handed to the step as its default (ZETA_CREDS_MANIFEST_DIR, set
# in a wrapper so that it survives sudo). The step still prefers the
# target's own /etc/zeta/creds-manifest.toml when the installed
# configuration sets `zeta.credsRestore.manifest`, and `--manifest`.
#
# As with the restore module, `package` has no default in nixpkgs: the
# flake's `nixosModules.installer` sets it with lib.mkDefault; importing
# this file by path means setting it (or applying the overlay).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.zeta.installer;
  inherit (lib) mkOption types literalExpression;
  tomlFormat = pkgs.formats.toml { };

  manifestSource =
    if cfg.manifest == null then
      null
    # Nix attributes (not a path, a string or a derivation): TOML.
    else if builtins.isAttrs cfg.manifest && !(cfg.manifest ? outPath) then
      tomlFormat.generate "creds-manifest.toml" cfg.manifest
    else
      cfg.manifest;

  # A directory holding the manifest as default.toml, the name the step
  # looks for in ZETA_CREDS_MANIFEST_DIR; checked by the binary itself, so a
  # mistake fails the ISO build instead of the install. --syntax-only: the
  # build sandbox has no home to look at.
  manifestDir =
    pkgs.runCommand "zeta-creds-installer-manifest"
      {
        nativeBuildInputs = [ cfg.package ];
      }
      ''
        zeta-creds manifest check --syntax-only ${manifestSource}
        install -Dm644 ${manifestSource} "$out/default.toml"
      '';

  # The package with its step wrapped to default to the ISO's manifest.
  # --set-default: ZETA_CREDS_MANIFEST_DIR from the caller still wins.
  withManifest = pkgs.symlinkJoin {
    name = "zeta-creds-installer";
    paths = [ cfg.package ];
    nativeBuildInputs = [ pkgs.makeWrapper ];
    postBuild = ''
      rm "$out/bin/zeta-creds-step"
      makeWrapper ${cfg.package}/bin/zeta-creds-step "$out/bin/zeta-creds-step" \
        --set-default ZETA_CREDS_MANIFEST_DIR ${manifestDir}
    '';
  };
in
{
  options.zeta.installer = {
    package = mkOption {
      type = types.package;
      default =
        pkgs.zeta-creds or (throw (
          "zeta.installer.package is not set and nixpkgs has no zeta-creds package. "
          + "Use the flake's nixosModules.installer (which sets it), set zeta.installer.package, "
          + "or apply the flake's overlays.default."
        ));
      defaultText = literalExpression "pkgs.zeta-creds";
      example = literalExpression "inputs.zeta-creds.packages.\${pkgs.system}.zeta-creds";
      description = ''
        The zeta-creds package put on the live system: `zeta-creds`, the
        installer step `zeta-creds-step`, their man pages and completions,
        and the default manifest. The flake's `nixosModules.installer` sets
        it (with `lib.mkDefault`) from the ISO's own nixpkgs.
      '';
    };

    manifest = mkOption {
      type = types.nullOr (types.either types.path tomlFormat.type);
      default = null;
      example = literalExpression "./creds-manifest.toml";
      description = ''
        The manifest the ISO carries: a TOML file (a path; a manifest lists
        paths, never secrets, so the Nix store is fine), or its contents as
        Nix attributes, written with `pkgs.formats.toml`. It is checked when
        the ISO is built (`zeta-creds manifest check --syntax-only`),
        installed as `/etc/zeta/creds-manifest.toml` on the live system, and
        is the installer step's default when the target has no
        `/etc/zeta/creds-manifest.toml` of its own and `--manifest` is not
        given. `null`: the package's default manifest
        (`share/zeta-creds/manifest/default.toml`).
      '';
    };
  };

  config = {
    environment.systemPackages = [ (if cfg.manifest == null then cfg.package else withManifest) ];
    environment.etc = lib.mkIf (cfg.manifest != null) {
      "zeta/creds-manifest.toml".source = "${manifestDir}/default.toml";
    };
  };
}
