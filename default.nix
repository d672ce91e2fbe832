# zeta-creds for Nix users without flakes; flake.nix is a thin layer over
# this file (as in lanzaboote), so everything here works both ways.
#
#   nix-build -A zeta-creds                 # the package (rustc >= the workspace's rust-version)
#   nix-build -A checks                     # the checks flake.nix exposes, with <nixpkgs>
#
#   # configuration.nix, without flakes:
#   imports = [ (import /path/to/zeta-creds { inherit pkgs; }).nixosModule ];
#
# Attributes:
#   zeta-creds, default  the package (rustPlatform.buildRustPackage)
#   packageFunction      the same, as a function for callPackage
#   overlay              final: prev: { zeta-creds = …; }
#   nixosModule          nixos-modules/zeta-creds-restore.nix with its package
#                        set (lib.mkDefault) from the host's own pkgs
#   bareNixosModule      the module alone: set zeta.credsRestore.package yourself
#   checks               package build, the pure unit cases, the module under
#                        the real nixpkgs module system, and a NixOS VM test
#
# `pkgs` is only used by `zeta-creds` and `checks`; the overlay and the
# modules take the host's pkgs.
{
  pkgs ? import <nixpkgs> { },
}:
let
  packageFunction =
    {
      lib,
      stdenv,
      rustPlatform,
      rustc,
      installShellFiles,
      makeWrapper,
    }:
    let
      crate = builtins.fromTOML (builtins.readFile ./zeta-creds/Cargo.toml);
      workspace = builtins.fromTOML (builtins.readFile ./Cargo.toml);
      rustVersion = workspace.workspace.package.rust-version;
    in
    assert lib.assertMsg (lib.versionAtLeast rustc.version rustVersion) ''
      zeta-creds needs rustc >= ${rustVersion} (Cargo.toml's rust-version); this nixpkgs has ${rustc.version}.
      Use a newer nixpkgs (nixos-25.05 has had it since mid 2025: run `nix flake update`), or override rustPlatform.
    '';
    rustPlatform.buildRustPackage {
      pname = "zeta-creds";
      inherit (crate.package) version;

      # Only what the build reads: a change to docs/ or tests/ does not
      # rebuild the package.
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./zeta-creds
          ./xtask
          ./man
          ./manifest
          ./installer/zeta-creds-step.sh
        ];
      };
      cargoLock.lockFile = ./Cargo.lock;

      cargoBuildFlags = [
        "--package"
        "zeta-creds"
      ];
      # The unit tests only: the CLI tests want script(1), unshare and a
      # terminal, which the build sandbox does not have. CI runs them all.
      cargoTestFlags = [
        "--package"
        "zeta-creds"
        "--lib"
      ];

      nativeBuildInputs = [
        installShellFiles
        makeWrapper
      ];

      # Everything the docs name, where NixOS looks: the binary, the
      # installer step as `zeta-creds-step` (wrapped so that it finds this
      # package's zeta-creds first; the live system's blkid and
      # systemd-creds stay its own), the man pages, the shell completions
      # (share/{bash-completion,zsh,fish}), and the manifests in
      # share/zeta-creds/manifest.
      postInstall = ''
        installManPage man/*.1
        install -Dm644 -t "$out/share/zeta-creds/manifest" manifest/*.toml manifest/README.md
        install -Dm644 -t "$out/share/zeta-creds/manifest/personas" manifest/personas/*.toml
        install -Dm755 installer/zeta-creds-step.sh "$out/libexec/zeta-creds/zeta-creds-step.sh"
        makeWrapper "$out/libexec/zeta-creds/zeta-creds-step.sh" "$out/bin/zeta-creds-step" \
          --prefix PATH : "$out/bin"
      ''
      + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
        installShellCompletion --cmd zeta-creds \
          --bash <("$out/bin/zeta-creds" completions bash) \
          --zsh <("$out/bin/zeta-creds" completions zsh) \
          --fish <("$out/bin/zeta-creds" completions fish)
      '';

      # The shipped manifests are checked at build time with the binary
      # just built (STYLE.md: "checked at build time by zeta-creds manifest
      # check in a checkPhase").
      doInstallCheck = true;
      installCheckPhase = ''
        runHook preInstallCheck
        "$out/bin/zeta-creds" --version
        "$out/bin/zeta-creds-step" --help >/dev/null
        for manifest in "$out"/share/zeta-creds/manifest/*.toml "$out"/share/zeta-creds/manifest/personas/*.toml; do
          "$out/bin/zeta-creds" manifest check --syntax-only "$manifest"
        done
        runHook postInstallCheck
      '';

      meta = {
        inherit (crate.package) description;
        homepage = "https://github.com/zeta-creds/zeta-creds";
        license = with lib.licenses; [
          mit
          asl20
        ];
        mainProgram = "zeta-creds";
        platforms = lib.platforms.linux;
      };
    };

  zeta-creds = pkgs.callPackage packageFunction { };

  overlay = final: _prev: { zeta-creds = final.callPackage packageFunction { }; };

  bareNixosModule = ./nixos-modules/zeta-creds-restore.nix;

  # The module with its package set from the host's own nixpkgs, with
  # mkDefault so a host can still pick another build.
  nixosModule =
    { lib, pkgs, ... }:
    {
      imports = [ bareNixosModule ];
      zeta.credsRestore.package = lib.mkDefault (pkgs.callPackage packageFunction { });
    };

  checks = {
    package = zeta-creds;
    # The pure unit function's case matrix (tests/nix/unit-cases.nix), the
    # same cases tests/nix/run.sh evaluates with a bare nix-instantiate.
    unit-cases =
      let
        result = import ./tests/nix/unit-cases.nix;
      in
      if result.failures == [ ] then
        pkgs.runCommand "zeta-creds-unit-cases" { } ''
          echo ${toString result.count} cases passed > "$out"
        ''
      else
        throw ("unit cases failed:\n" + builtins.concatStringsSep "\n" result.failures);
    # The module under the real nixpkgs module system.
    module-eval = import ./tests/nix/nixpkgs-eval.nix { inherit pkgs nixosModule; };
    # A NixOS VM boots with the unit (not run on machines without nixpkgs;
    # tests/vm/run.sh boots the same unit in a Debian guest there).
    nixos-test = import ./tests/nix/nixos-test.nix {
      inherit pkgs nixosModule zeta-creds;
    };
  };
in
{
  inherit
    zeta-creds
    packageFunction
    overlay
    nixosModule
    bareNixosModule
    checks
    ;
  default = zeta-creds;
}
