# checks.module-eval: the module under the REAL nixpkgs module system, for
# machines that have nixpkgs (`nix flake check`, `nix-build -A
# checks.module-eval`). Written, not run on our build machines (nixpkgs
# cannot be fetched there; tests/nix/run.sh covers the same ground with the
# lib test double and a bare nix-instantiate).
#
# It evaluates whole NixOS systems with the module and checks:
#   - each passphrase mode evaluates with no failed assertion, and the unit
#     NixOS writes has exactly unit.nix's ExecStart and ordering;
#   - the same under systemd-sysusers and under userborn;
#   - the assertions fire (file mode without a file; credential mode
#     without a credential; a user whose home is /), and a store path or a
#     Nix path literal is refused by the option types;
#   - the original system's option names still evaluate;
#   - a host overrides the start limits and Restart= with lib.mkForce (issue
#     17), the blob follows boot.loader.efi.efiSysMountPoint, zeta-creds is
#     on PATH and the manifest option installs /etc/zeta/creds-manifest.toml;
# then runs `systemd-analyze verify` and `systemd-analyze security
# --offline=true` on the unit file NixOS generated.
{ pkgs, nixosModule }:
let
  inherit (pkgs) lib;
  unitLib = import ../../nixos-modules/unit.nix;

  evalHost =
    extra:
    (import (pkgs.path + "/nixos/lib/eval-config.nix") {
      inherit (pkgs.stdenv.hostPlatform) system;
      modules = [
        nixosModule
        {
          boot.loader.grub.enable = false;
          fileSystems."/".device = "/dev/vda";
          system.stateVersion = "25.05";
          users.users.zeta = {
            isNormalUser = true;
            home = "/home/zeta";
          };
          zeta.credsRestore.enable = true;
        }
        extra
      ];
    }).config;

  # Our assertions only: a sysusers host without any password trips
  # NixOS's own lock-out assertion, which is not what is tested here.
  failed =
    config:
    lib.filter (lib.hasInfix "zeta.credsRestore") (
      map (a: a.message) (lib.filter (a: !a.assertion) config.assertions)
    );
  unitOf = config: config.systemd.units."zeta-creds-restore.service";
  lines = config: lib.splitString "\n" (unitOf config).text;
  hasLine = config: line: lib.elem line (lines config);

  expectUnit =
    name: config: settings:
    let
      cfg = config.zeta.credsRestore;
      want = unitLib.mkUnit {
        inherit cfg;
        binary = lib.getExe cfg.package;
        userHome = if cfg.user != null then config.users.users.${cfg.user}.home else null;
      };
    in
    assert lib.assertMsg (failed config == [ ])
      "${name}: unexpected failed assertions: ${lib.concatStringsSep "; " (failed config)}";
    assert lib.assertMsg (hasLine config "ExecStart=${want.service.ExecStart}")
      "${name}: ExecStart differs from unit.nix's:\n${(unitOf config).text}";
    assert lib.assertMsg (lib.all (u: lib.hasInfix u (lib.concatStringsSep "\n" (lines config))) (
      want.unit.Before ++ want.unit.After
    )) "${name}: ordering missing:\n${(unitOf config).text}";
    assert lib.assertMsg (cfg.passphrase.mode == settings.passphrase.mode or "interactive")
      "${name}: passphrase.mode not applied";
    true;

  modes = {
    interactive = { };
    file = {
      passphrase = {
        mode = "file";
        file = "/run/zeta-creds/passphrase";
      };
    };
    credential = {
      passphrase = {
        mode = "credential";
        credential = "/etc/credstore.encrypted/zeta-creds.passphrase";
      };
      requireUsbPresent = true;
      user = "zeta";
    };
  };

  userBackends = {
    scripted = { };
    sysusers = {
      systemd.sysusers.enable = true;
      users.mutableUsers = false;
      boot.initrd.systemd.enable = true;
      system.etc.overlay.enable = true;
    };
    userborn = {
      services.userborn.enable = true;
    };
  };

  modeChecks = lib.mapAttrsToList (
    backend: backendCfg:
    lib.mapAttrsToList (
      mode: settings:
      expectUnit "${backend}/${mode}" (evalHost {
        imports = [ backendCfg ];
        zeta.credsRestore = settings;
      }) settings
    ) modes
  ) userBackends;

  fires =
    name: extra: phrase:
    let
      msgs = failed (evalHost extra);
    in
    assert lib.assertMsg (lib.any (lib.hasInfix phrase) msgs)
      "${name}: no failed assertion says \"${phrase}\" (got: ${lib.concatStringsSep "; " msgs})";
    true;

  # The option type must refuse the value: reading it throws.
  refused =
    name: extra: get:
    assert lib.assertMsg (!(builtins.tryEval (builtins.deepSeq (get (evalHost extra).zeta.credsRestore) true)).success)
      "${name}: the option type accepted it";
    true;

  assertionChecks = [
    (fires "file without a file" {
      zeta.credsRestore.passphrase.mode = "file";
    } "needs zeta.credsRestore.passphrase.file")
    (fires "credential without a credential" {
      zeta.credsRestore.passphrase.mode = "credential";
    } "needs zeta.credsRestore.passphrase.credential")
    (fires "home /" {
      users.users.admin = {
        isSystemUser = true;
        group = "admin";
        home = "/";
      };
      users.groups.admin = { };
      zeta.credsRestore.user = "admin";
    } "zeta-creds refuses to restore into a home of /")
    (refused "a blob in the store" { zeta.credsRestore.blob = "/nix/store/aaaa-zeta-creds.enc"; } (c: c.blob))
    (refused "a passphrase file as a Nix path literal" {
      zeta.credsRestore.passphrase = {
        mode = "file";
        file = ./unit-cases.nix;
      };
    } (c: c.passphrase.file))
    (refused "a work factor of 30" { zeta.credsRestore.maxWorkFactor = 30; } (c: c.maxWorkFactor))
    (
      let
        c = evalHost {
          zeta.credsRestore.passphraseMode = "credential";
          zeta.credsRestore.passphrase.credential = "/etc/credstore.encrypted/z";
        };
      in
      assert lib.assertMsg (c.zeta.credsRestore.passphrase.mode == "credential") "passphraseMode was not renamed";
      true
    )
  ];

  # Issue 17: the start limits are NixOS's own options, so a host overrides
  # them with mkForce without a conflict on unitConfig; the blob follows the
  # ESP; zeta-creds is on PATH; the manifest lands in /etc.
  issue17Checks =
    let
      forced = evalHost {
        systemd.services.zeta-creds-restore.startLimitBurst = lib.mkForce 5;
        systemd.services.zeta-creds-restore.startLimitIntervalSec = lib.mkForce 60;
        systemd.services.zeta-creds-restore.serviceConfig.Restart = lib.mkForce "no";
      };
      plain = evalHost { };
      efi = evalHost { boot.loader.efi.efiSysMountPoint = "/efi"; };
      withManifest = evalHost {
        zeta.credsRestore.manifest = {
          version = 1;
          user = "zeta";
          entry = [ { path = "~/.config/gh/hosts.yml"; } ];
        };
      };
    in
    [
      (lib.assertMsg (hasLine forced "StartLimitBurst=5" && hasLine forced "StartLimitIntervalSec=60")
        "startLimitBurst/startLimitIntervalSec = mkForce …: not in the unit:\n${(unitOf forced).text}"
      )
      (lib.assertMsg (hasLine forced "Restart=no") "serviceConfig.Restart = mkForce \"no\": not in the unit")
      (lib.assertMsg (hasLine plain "StartLimitBurst=3" && hasLine plain "StartLimitIntervalSec=600")
        "the default start limits are not in the unit:\n${(unitOf plain).text}"
      )
      (lib.assertMsg (plain.zeta.credsRestore.blob == "/boot/zeta-creds.enc") "the default blob is not /boot/zeta-creds.enc")
      (lib.assertMsg (efi.zeta.credsRestore.blob == "/efi/zeta-creds.enc") "the blob does not follow efiSysMountPoint")
      (lib.assertMsg (lib.elem plain.zeta.credsRestore.package plain.environment.systemPackages) "zeta-creds is not on PATH")
      (lib.assertMsg (withManifest.environment.etc ? "zeta/creds-manifest.toml") "the manifest is not in /etc")
    ];

  config = evalHost modes.credential;
  unitFile = "${(unitOf config).unit}/zeta-creds-restore.service";
in
assert lib.all lib.id (lib.flatten modeChecks ++ assertionChecks ++ issue17Checks);
pkgs.runCommand "zeta-creds-module-eval"
  {
    nativeBuildInputs = [ pkgs.systemd ];
  }
  ''
    cp ${unitFile} zeta-creds-restore.service
    systemd-analyze verify --man=no ./zeta-creds-restore.service
    systemd-analyze security --offline=true ./zeta-creds-restore.service | tee security.txt
    grep 'Overall exposure level' security.txt > "$out"
  ''
