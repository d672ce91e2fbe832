# zeta-creds as a flake: a thin layer over default.nix (which also serves
# users without flakes). See nixos-modules/README.md for how to use it.
#
#   inputs.zeta-creds.url = "github:zeta-creds/zeta-creds";
#   inputs.zeta-creds.inputs.nixpkgs.follows = "nixpkgs";
#   nixosConfigurations.host = nixpkgs.lib.nixosSystem {
#     modules = [ zeta-creds.nixosModules.default ./configuration.nix ];
#   };
#
# nixosModules.installer puts zeta-creds on a custom installer ISO
# (installer/README.md, "A live ISO with zeta-creds").
#
# nixpkgs is pinned to the 25.05 release branch: the newest stable release
# that Nix 2.8 (Debian 12's nix-bin) can still evaluate. flake.lock is made
# by the first `nix flake lock`; a flake that consumes this one locks its
# own inputs anyway.
{
  description = "zeta-creds: carry an operator's credentials across NixOS reinstalls in one passphrase-encrypted blob";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f (projectFor system));
      projectFor = system: import ./default.nix { pkgs = nixpkgs.legacyPackages.${system}; };
      # The overlay and the modules do not use default.nix's pkgs (they take
      # the host's), so any system's instance serves them.
      project = projectFor "x86_64-linux";
    in
    {
      packages = forAllSystems (p: {
        default = p.zeta-creds;
        inherit (p) zeta-creds;
      });

      overlays.default = project.overlay;

      # The module with its package set from the host's nixpkgs (mkDefault).
      nixosModules.default = project.nixosModule;
      nixosModules.zeta-creds-restore = project.nixosModule;
      # The module alone, for hosts that set zeta.credsRestore.package.
      nixosModules.bare = project.bareNixosModule;
      # zeta-creds, the installer step and the manifest on a custom
      # installer ISO, beside nixpkgs' installation-cd-minimal.nix
      # (installer/README.md), with the package from the ISO's nixpkgs.
      nixosModules.installer =
        { lib, pkgs, ... }:
        {
          imports = [ ./nixos-modules/installer.nix ];
          zeta.installer.package = lib.mkDefault (pkgs.callPackage project.packageFunction { });
        };

      # package, unit-cases, module-eval (the real module system) and
      # nixos-test (a NixOS VM boots with the unit): `nix flake check`.
      checks.x86_64-linux = (projectFor "x86_64-linux").checks;

      formatter = nixpkgs.lib.genAttrs systems (system: nixpkgs.legacyPackages.${system}.nixfmt-rfc-style);
    };
}
