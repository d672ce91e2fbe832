# flake.nix and default.nix, evaluated with a STUB nixpkgs (nixpkgs cannot
# be fetched on our build machines, and Nix 2.8 cannot run `nix flake
# check` offline): the outputs the issue promises exist with the right
# shape, the nixpkgs input is the pinned release, the module wrapper sets
# the package with mkDefault and imports the bare module, and the package
# expression hands buildRustPackage what it must (Cargo.lock, mainProgram,
# the version from Cargo.toml) and refuses a rustc older than the
# workspace's rust-version. Nothing is built: the stub's callPackage and
# buildRustPackage return their arguments.
#
#   nix-instantiate --eval --strict --json tests/nix/flake-cases.nix
let
  inherit (builtins)
    attrNames
    concatLists
    filter
    isFunction
    isString
    length
    listToAttrs
    map
    toJSON
    tryEval
    ;
  double = import ./lib-double.nix;

  stubDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/33333333333333333333333333333333-${name}";
    meta.mainProgram = "zeta-creds";
  };

  # Just enough of nixpkgs' lib for default.nix's package function.
  stubLib = {
    assertMsg = ok: msg: ok || throw msg;
    versionAtLeast = a: b: builtins.compareVersions a b >= 0;
    optionalString = c: s: if c then s else "";
    fileset = {
      unions = xs: {
        _stub = "unions";
        members = xs;
      };
      toSource = args: args // { _stub = "toSource"; };
    };
    licenses = {
      mit = "mit";
      asl20 = "asl20";
    };
    platforms.linux = [ "x86_64-linux" ];
  };
  packageArgs = rustcVersion: {
    lib = stubLib;
    stdenv = {
      buildPlatform.canExecute = _: true;
      hostPlatform = { };
    };
    rustPlatform.buildRustPackage = args: args;
    rustc.version = rustcVersion;
    installShellFiles = "installShellFiles";
    makeWrapper = "makeWrapper";
  };

  stubPkgs = {
    callPackage = _f: _args: stubDrv "zeta-creds-0.1.0";
    nixfmt-rfc-style = stubDrv "nixfmt";
  };
  nixpkgsStub = {
    lib.genAttrs =
      names: f:
      listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    legacyPackages = {
      x86_64-linux = stubPkgs;
      aarch64-linux = stubPkgs;
    };
  };

  flake = import ../../flake.nix;
  outputs = flake.outputs {
    self = outputs;
    nixpkgs = nixpkgsStub;
  };
  project = import ../../default.nix { pkgs = stubPkgs; };
  wrapper = project.nixosModule {
    lib = double;
    pkgs = stubPkgs;
  };
  pkgArgs = project.packageFunction (packageArgs "1.89.0");

  eq =
    what: got: want:
    if got == want then null else "${what}: expected ${toJSON want}, got ${toJSON got}";
  holds = what: ok: if ok then null else what;

  cases = [
    {
      name = "flake.nix";
      checks = [
        (eq "nixpkgs input" flake.inputs.nixpkgs.url "github:NixOS/nixpkgs/nixos-25.05")
        (holds "a description" (isString flake.description))
        (eq "outputs" (attrNames outputs) [
          "checks"
          "formatter"
          "nixosModules"
          "overlays"
          "packages"
        ])
        (eq "packages systems" (attrNames outputs.packages) [
          "aarch64-linux"
          "x86_64-linux"
        ])
        (eq "packages.x86_64-linux" (attrNames outputs.packages.x86_64-linux) [
          "default"
          "zeta-creds"
        ])
        (eq "packages.x86_64-linux.default" outputs.packages.x86_64-linux.default.name "zeta-creds-0.1.0")
        (eq "nixosModules" (attrNames outputs.nixosModules) [
          "bare"
          "default"
          "installer"
          "zeta-creds-restore"
        ])
        (eq "nixosModules.bare" outputs.nixosModules.bare ../../nixos-modules/zeta-creds-restore.nix)
        (holds "nixosModules.default is a module function" (isFunction outputs.nixosModules.default))
        (eq "nixosModules.installer imports the installer module" (outputs.nixosModules.installer {
          lib = double;
          pkgs = stubPkgs;
        }).imports [ ../../nixos-modules/installer.nix ])
        (eq "nixosModules.installer sets the package with mkDefault" (outputs.nixosModules.installer {
          lib = double;
          pkgs = stubPkgs;
        }).zeta.installer.package (double.mkDefault (stubDrv "zeta-creds-0.1.0")))
        (holds "overlays.default is an overlay" (isFunction outputs.overlays.default))
        (eq "overlay's zeta-creds" (outputs.overlays.default stubPkgs { }).zeta-creds.name "zeta-creds-0.1.0")
        (eq "checks.x86_64-linux" (attrNames outputs.checks.x86_64-linux) [
          "module-eval"
          "nixos-test"
          "package"
          "unit-cases"
        ])
      ];
    }
    {
      name = "default.nix";
      checks = [
        (eq "attributes" (attrNames project) [
          "bareNixosModule"
          "checks"
          "default"
          "nixosModule"
          "overlay"
          "packageFunction"
          "zeta-creds"
        ])
        (eq "module wrapper imports the bare module" wrapper.imports [ ../../nixos-modules/zeta-creds-restore.nix ])
        (eq "module wrapper sets the package with mkDefault" wrapper.zeta.credsRestore.package (
          double.mkDefault (stubDrv "zeta-creds-0.1.0")
        ))
      ];
    }
    {
      name = "the package expression";
      checks = [
        (eq "pname" pkgArgs.pname "zeta-creds")
        (eq "version (zeta-creds/Cargo.toml)" pkgArgs.version "0.1.0")
        (eq "cargoLock.lockFile" pkgArgs.cargoLock.lockFile ../../Cargo.lock)
        (eq "meta.mainProgram" pkgArgs.meta.mainProgram "zeta-creds")
        (eq "cargoBuildFlags" pkgArgs.cargoBuildFlags [
          "--package"
          "zeta-creds"
        ])
        (eq "source" pkgArgs.src.fileset.members [
          ../../Cargo.toml
          ../../Cargo.lock
          ../../zeta-creds
          ../../xtask
          ../../man
          ../../manifest
          ../../installer/zeta-creds-step.sh
        ])
        (holds "the step is installed as zeta-creds-step, finding this zeta-creds first" (
          builtins.match ".*makeWrapper \"[$]out/libexec/zeta-creds/zeta-creds-step.sh\" \"[$]out/bin/zeta-creds-step\"[^\n]*\n[ ]*--prefix PATH : \"[$]out/bin\".*" pkgArgs.postInstall != null
        ))
        (holds "man pages" (builtins.match ".*installManPage man/[*][.]1.*" pkgArgs.postInstall != null))
        (holds "the default manifest in share/zeta-creds/manifest" (
          builtins.match ".*install -Dm644 -t \"[$]out/share/zeta-creds/manifest\" manifest/[*][.]toml.*" pkgArgs.postInstall != null
        ))
        (holds "completions generated by the binary for bash, zsh and fish" (
          builtins.match ".*installShellCompletion --cmd zeta-creds.*completions bash.*completions zsh.*completions fish.*" pkgArgs.postInstall != null
        ))
        (holds "the install check runs manifest check --syntax-only" (
          builtins.match ".*manifest check --syntax-only.*" pkgArgs.installCheckPhase != null
        ))
        (eq "a rustc older than rust-version is refused" (tryEval (project.packageFunction (packageArgs "1.86.0")).pname).success false)
      ];
    }
  ];

  results = concatLists (map (c: map (r: if r == null then null else "${c.name}: ${r}") c.checks) cases);
in
{
  count = length results;
  failures = filter isString results;
  cases = map (c: c.name) cases;
}
