# sops-nix and agenix: getting them the key the restore puts in place, in
# the same boot. Called by zeta-creds-restore.nix with the host's config;
# returns the systemd.services to add. README.md beside this file,
# "sops-nix and agenix", says why and what it cannot do.
#
# When each one decrypts (read from their modules, sops-nix 56b24064
# modules/sops/default.nix, agenix b027ee29 modules/age.nix):
#   - sops-nix: `sops-install-secrets <manifest>` in the activation script
#     `setupSecrets`, after `users` and `groups`; or, with
#     sops.useSystemdActivation (its default under systemd-sysusers or
#     userborn), in `sops-install-secrets.service`, wanted by sysinit.target
#     with DefaultDependencies=no. The manifest is
#     config.system.build.sops-nix-manifest. On success /run/secrets is a
#     symlink to the new generation; a failed run publishes nothing.
#   - agenix: the activation scripts `agenixNewGeneration`, `agenixInstall`
#     (before `users`) and `agenixChown` (after `users` and `groups`); or,
#     under systemd-sysusers or userborn, `agenix-install-secrets.service`
#     (sysinit.target, DefaultDependencies=no). A secret it could not
#     decrypt is missing from the new generation; the generation itself
#     (/run/agenix) is published anyway.
#
# Activation runs before systemd starts any unit, so in activation mode
# both have already failed on the first boot after an install when the
# restore runs: the follow-up units here run their install step again.
# As systemd units, they are ordered after the restore by unit.nix's
# Before= (secretInstallers) and need nothing here.
{
  config,
  options,
  pkgs,
  unitLib,
}:
let
  inherit (builtins)
    attrValues
    foldl'
    map
    ;
  cfg = config.zeta.credsRestore;
  int = cfg.integrations;

  # sops-nix: systemd mode when the option exists and is set (sops-nix
  # older than the option always used activation).
  sopsSystemd = (config.sops.useSystemdActivation or false);
  sopsFollowUp = int.sops.enable && !sopsSystemd;
  sopsFollowUpName = "zeta-creds-sops-nix";
  sops =
    let
      s = config.sops;
      keyFiles =
        (if (s.age.keyFile or null) != null then [ s.age.keyFile ] else [ ])
        ++ map toString (s.age.sshKeyPaths or [ ])
        ++ map toString (s.gnupg.sshKeyPaths or [ ]);
    in
    unitLib.mkFollowUp {
      name = sopsFollowUpName;
      description = "Install sops-nix secrets with the key zeta-creds restored (activation found none)";
      execStart = "${s.package}/bin/sops-install-secrets ${config.system.build.sops-nix-manifest}";
      # No /run/secrets this boot (the manifest's symlinkPath, fixed by
      # sops-nix): sops-install-secrets in activation published nothing
      # (it validates and decrypts everything before it publishes).
      conditions = [ "!/run/secrets" ];
      # ...and a key it reads is there now.
      triggers = keyFiles;
      consumers = map (n: "${n}.service") int.sops.services;
    };

  # agenix's own test (modules/age.nix, sysusersEnabled).
  agenixSystemd =
    options ? systemd
    && options.systemd ? sysusers
    && (config.systemd.sysusers.enable || (config.services.userborn.enable or false));
  agenixFollowUp = int.agenix.enable && !agenixSystemd;
  agenixFollowUpName = "zeta-creds-agenix";
  agenix =
    let
      scripts = config.system.activationScripts;
      # agenix's own three steps, in its order, as its sysusers unit runs
      # them (bash: they use (( ))).
      script = pkgs.writeShellScript "zeta-creds-agenix" ''
        ${scripts.agenixNewGeneration.text}
        ${scripts.agenixInstall.text}
        ${scripts.agenixChown.text}
      '';
    in
    unitLib.mkFollowUp {
      name = agenixFollowUpName;
      description = "Install agenix secrets with the identity zeta-creds restored (activation could not decrypt them)";
      execStart = "${script}";
      # Any secret missing: agenix could not decrypt it in activation.
      triggers = map (s: "!${s.path}") (attrValues config.age.secrets);
      consumers = map (n: "${n}.service") int.agenix.services;
    };

  # A follow-up as NixOS's systemd.services entry; agenix's steps call
  # mount (ramfs), as agenix's own unit has it on its path.
  followUps =
    (
      if sopsFollowUp then
        [
          (
            sops.nixos
            // {
              name = sopsFollowUpName;
              # As sops-nix's own unit: its environment (SOPS_GPG_EXEC, …)
              # and its age plugins. SOPS_RESTART_UNITS_VIA_SYSTEMCTL: a
              # unit, not activation, so sops-install-secrets try-restarts
              # the secrets' restartUnits itself (with --no-block) instead
              # of writing /run/nixos/activation-restart-list, which no
              # switch reads at boot (sops-nix main.go says the same of
              # its own unit). A unit that already started without its
              # secret is restarted with it.
              environment = (config.sops.environment or { }) // {
                SOPS_RESTART_UNITS_VIA_SYSTEMCTL = "1";
              };
              path = config.sops.age.plugins or [ ];
            }
          )
        ]
      else
        [ ]
    )
    ++ (
      if agenixFollowUp then
        [
          (
            agenix.nixos
            // {
              name = agenixFollowUpName;
              path = [ pkgs.util-linux ];
            }
          )
        ]
      else
        [ ]
    );

  # The services that read the secrets: after the restore and after
  # whatever installs the secrets this boot.
  consumerAfter =
    enabled: services: installers:
    if enabled then
      map (n: {
        name = n;
        after = [ "zeta-creds-restore.service" ] ++ installers;
      }) services
    else
      [ ];

  # One entry per service, the `after` lists of both integrations joined.
  addAfter =
    acc: e:
    acc
    // {
      ${e.name} = {
        after = (acc.${e.name}.after or [ ]) ++ e.after;
      };
    };
in
{
  services = foldl' addAfter (foldl' (
    acc: f:
    acc
    // {
      ${f.name} = removeAttrs f [ "name" ];
    }
  ) { } followUps) (
    consumerAfter int.sops.enable int.sops.services [
      (if sopsSystemd then "sops-install-secrets.service" else "${sopsFollowUpName}.service")
    ]
    ++ consumerAfter int.agenix.enable int.agenix.services [
      (if agenixSystemd then "agenix-install-secrets.service" else "${agenixFollowUpName}.service")
    ]
  );
  inherit sopsFollowUp agenixFollowUp;
}
