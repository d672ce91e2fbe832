# The override cases of module-cases.nix under nixpkgs' REAL module system
# (lib.evalModules from a checkout of nixpkgs' lib/, e.g.
# nix-community/nixpkgs.lib), with the same NixOS option double
# (nixos-double.nix) and stub pkgs. Not run by tests/nix/run.sh (CI has no
# nixpkgs); run it by hand when a checkout is at hand, to confirm that the
# lib double merges as the real lib does:
#
#   nix-instantiate --eval --strict --json tests/nix/real-lib.nix \
#     --arg lib 'import /path/to/nixpkgs.lib/lib'
#   => { "count": N, "failures": [ … ] }
{ lib }:
let
  stubStore = name: "/nix/store/44444444444444444444444444444444-${name}";
  stubPackage = {
    type = "derivation";
    name = "zeta-creds-0.1.0";
    outPath = "/nix/store/11111111111111111111111111111111-zeta-creds-0.1.0";
    meta.mainProgram = "zeta-creds";
  };
  pkgs = {
    zeta-creds = stubPackage;
    formats.toml = _: {
      type = lib.types.attrs;
      generate = name: _value: stubStore name;
    };
    runCommand = name: _env: _script: stubStore name;
    writeShellScript = name: _text: stubStore name;
    util-linux = stubStore "util-linux";
  };
  eval =
    modules:
    (lib.evalModules {
      modules = [
        ./nixos-double.nix
        ../../nixos-modules/zeta-creds-restore.nix
        { zeta.credsRestore.enable = true; }
      ]
      ++ modules;
      specialArgs = { inherit pkgs; };
    }).config;
  svc = modules: (eval modules).systemd.services.zeta-creds-restore;
  fails = x: !(builtins.tryEval (builtins.deepSeq x true)).success;
  eq =
    what: got: want:
    if got == want then null else "${what}: expected ${builtins.toJSON want}, got ${builtins.toJSON got}";
  holds = what: ok: if ok then null else what;
  s = "zeta-creds-restore";
  standins = import ./standins.nix;

  checks = [
    (eq "blob default" (eval [ ]).zeta.credsRestore.blob "/boot/zeta-creds.enc")
    (eq "blob follows efiSysMountPoint" (eval [ { boot.loader.efi.efiSysMountPoint = "/efi"; } ]).zeta.credsRestore.blob "/efi/zeta-creds.enc")
    (eq "zeta-creds on PATH" (eval [ ]).environment.systemPackages [ stubPackage ])
    (eq "start limits in unitConfig" {
      inherit ((svc [ ]).unitConfig) StartLimitBurst StartLimitIntervalSec;
    } {
      StartLimitBurst = "3";
      StartLimitIntervalSec = "600";
    })
    (holds "plain startLimitBurst conflicts" (fails (svc [ { systemd.services.${s}.startLimitBurst = 5; } ]).unitConfig))
    (eq "mkDefault startLimitBurst" (svc [ { systemd.services.${s}.startLimitBurst = lib.mkDefault 5; } ]).unitConfig.StartLimitBurst "3")
    (eq "mkForce startLimitBurst" (svc [ { systemd.services.${s}.startLimitBurst = lib.mkForce 5; } ]).unitConfig.StartLimitBurst "5")
    (holds "the old way conflicts under mkForce" (
      fails
        (eval [
          {
            systemd.services.old.unitConfig.StartLimitBurst = 3;
            systemd.services.old.startLimitBurst = lib.mkForce 5;
          }
        ]).systemd.services.old.unitConfig
    ))
    (eq "after: plain adds" (svc [ { systemd.services.${s}.after = [ "network.target" ]; } ]).after [
      "local-fs.target"
      "systemd-sysusers.service"
      "userborn.service"
      "zeta-creds-restore-check.service"
      "network.target"
    ])
    (eq "before: mkForce replaces" (svc [ { systemd.services.${s}.before = lib.mkForce [ "sshd.service" ]; } ]).unitConfig.Before "sshd.service")
    (eq "environment: plain" (svc [ { systemd.services.${s}.environment.RUST_LOG = "debug"; } ]).environment { RUST_LOG = "debug"; })
    (holds "Restart: plain conflicts" (fails (svc [ { systemd.services.${s}.serviceConfig.Restart = "always"; } ]).serviceConfig.Restart))
    (eq "Restart: mkDefault" (svc [ { systemd.services.${s}.serviceConfig.Restart = lib.mkDefault "always"; } ]).serviceConfig.Restart "on-failure")
    (eq "Restart: mkForce" (svc [ { systemd.services.${s}.serviceConfig.Restart = lib.mkForce "no"; } ]).serviceConfig.Restart "no")
    (eq "manifest as attrs" (eval [ { zeta.credsRestore.manifest.user = "zeta"; } ]).environment.etc {
      "zeta/creds-manifest.toml".source = stubStore "zeta-creds-manifest.toml";
    })
    (eq "no sops-nix: integration off" (eval [ ]).zeta.credsRestore.integrations.sops.enable false)
    (eq "sops-nix, activation mode: the follow-up and the consumer" (
      let
        c = eval [
          standins.sops
          {
            sops.secrets.db = { };
            sops.age.keyFile = "/var/lib/sops-nix/key.txt";
            zeta.credsRestore.integrations.sops.services = [ "nginx" ];
          }
        ];
      in
      {
        inherit (c.zeta.credsRestore.integrations.sops) enable;
        inherit (c.systemd.services.zeta-creds-sops-nix.unitConfig) ConditionPathExists After Before;
        nginx = c.systemd.services.nginx.after;
      }
    ) {
      enable = true;
      ConditionPathExists = [
        "!/run/secrets"
        "|/var/lib/sops-nix/key.txt"
      ];
      After = "zeta-creds-restore.service zeta-creds-restore-fallback.service";
      Before = "nginx.service";
      nginx = [
        "zeta-creds-restore.service"
        "zeta-creds-sops-nix.service"
      ];
    })
    (eq "sops-nix, systemd mode: no follow-up" (
      builtins.attrNames
        (eval [
          standins.sops
          {
            sops.secrets.db = { };
            sops.useSystemdActivation = true;
          }
        ]).systemd.services
    ) [
      "zeta-creds-rebundle"
      "zeta-creds-restore"
      "zeta-creds-restore-check"
    ])
    (eq "agenix, activation mode: the follow-up" (
      (eval [
        standins.agenix
        { age.secrets.wg.path = "/run/agenix/wg"; }
      ]).systemd.services.zeta-creds-agenix.unitConfig.ConditionPathExists
    ) [ "|!/run/agenix/wg" ])
    (holds "the sops-nix integration without sops-nix fails an assertion" (
      builtins.any (a: !a.assertion)
        (eval [ { zeta.credsRestore.integrations.sops.enable = true; } ]).assertions
    ))
  ];
in
{
  count = builtins.length checks;
  failures = builtins.filter builtins.isString checks;
}
