# zeta-creds-restore: restore an operator's credentials from the zeta-creds
# blob on the ESP at every boot.
#
# This file declares the options (`zeta.credsRestore.*`, the namespace of the
# original system, so existing host configs keep working) and checks them.
# The unit itself is built by ./unit.nix, a pure function of these options
# written with builtins only, so that it is tested without nixpkgs
# (tests/nix) and booted under a real systemd (tests/vm); ./integrations.nix
# adds the sops-nix and agenix follow-ups. The module also puts zeta-creds on
# PATH and, with `manifest`, installs /etc/zeta/creds-manifest.toml, checked
# at build time by the binary. README.md beside
# this file is the user documentation: flake input, host configurations for
# each passphrase mode, what the unit does at boot and why.
#
# The module never refers to the flake. `package` has no usable default in
# nixpkgs (there is no pkgs.zeta-creds there): the flake's
# `nixosModules.default` (and default.nix's `nixosModule`) wrap this file and
# set it with lib.mkDefault, as lanzaboote does; importing this file alone
# means setting `zeta.credsRestore.package` yourself or applying the overlay.
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  unitLib = import ./unit.nix;
  d = unitLib.defaults;
  cfg = config.zeta.credsRestore;
  inherit (lib) mkOption types literalExpression;

  # Paths that must stay out of the Nix store, because the store is readable
  # by every user and every binary cache: the passphrase file and
  # credential, and (for good measure) the blob and the UUID file, which
  # are per-host state. The value is a string: a Nix path literal
  # (./passphrase) is refused by the type before anything copies it into the
  # store. The characters are limited so the path goes into the unit file
  # unquoted (see unit.nix). nixpkgs' own types.externalPath (newer than
  # 25.05) is not used so that every release checks the same thing.
  externalPath =
    types.addCheck types.str (unitLib.isExternalPath builtins.storeDir)
    // {
      name = "externalPath";
      description = "absolute path outside the Nix store, as a string (letters, digits and ._/+@:,=~- only)";
      descriptionClass = "noun";
    };

  userName =
    types.addCheck types.str unitLib.isUserName
    // {
      name = "userName";
      description = "user name";
      descriptionClass = "noun";
    };

  personaName =
    types.addCheck types.str unitLib.isPersona
    // {
      name = "personaName";
      description = "persona name (up to 64 of a-z, 0-9, _ and -)";
      descriptionClass = "noun";
    };

  tomlFormat = pkgs.formats.toml { };

  userHome =
    if cfg.user != null && config.users.users ? ${cfg.user} then
      config.users.users.${cfg.user}.home
    else
      null;

  unit = unitLib.mkUnit {
    inherit cfg userHome;
    binary = lib.getExe cfg.package;
    # The credential-failure hook's shell (ExecStopPost=, credential mode).
    shell = pkgs.runtimeShell or "/bin/sh";
    # zeta-creds-rebundle-shutdown.service starts the re-bundle with it.
    systemctl = if pkgs ? systemd then "${pkgs.systemd}/bin/systemctl" else "systemctl";
  };
  # The manifest as a file, checked by the binary itself (as sops-nix checks
  # its manifest with sops-install-secrets -check-mode in a checkPhase).
  # --syntax-only: the build sandbox has no home to look at; the check
  # proper runs on the host (`zeta-creds manifest check`).
  manifestSource =
    if cfg.manifest == null then
      null
    # Nix attributes (not a path, a string or a derivation): TOML.
    else if builtins.isAttrs cfg.manifest && !(cfg.manifest ? outPath) then
      tomlFormat.generate "creds-manifest.toml" cfg.manifest
    else
      cfg.manifest;
  checkedManifest =
    pkgs.runCommand "zeta-creds-manifest.toml"
      {
        nativeBuildInputs = [ cfg.package ];
      }
      ''
        zeta-creds manifest check --syntax-only ${manifestSource}
        cp ${manifestSource} "$out"
      '';

  integrations = import ./integrations.nix {
    inherit
      config
      options
      pkgs
      unitLib
      ;
  };
in
{
  # The original system's option names, so host configs written for it keep
  # evaluating (with a warning) or say what to change.
  imports = [
    (lib.mkRenamedOptionModule
      [ "zeta" "credsRestore" "passphraseMode" ]
      [ "zeta" "credsRestore" "passphrase" "mode" ]
    )
    (lib.mkRenamedOptionModule
      [ "zeta" "credsRestore" "usbUuidPath" ]
      [ "zeta" "credsRestore" "usbUuidFile" ]
    )
    (lib.mkRemovedOptionModule [ "zeta" "credsRestore" "home" ] ''
      zeta-creds looks the user's home up in /etc/passwd at restore time
      (users.users.<name>.home); set zeta.credsRestore.user to choose the user.
    '')
  ];

  options.zeta.credsRestore = {
    # mkEnableOption appends the final period.
    enable = lib.mkEnableOption (
      "restoring the operator's credentials from the zeta-creds blob at every boot "
      + "(`zeta-creds-restore.service`). The unit is skipped when there is no blob, "
      + "so enabling it on a host that was never bundled is harmless"
    );

    package = mkOption {
      type = types.package;
      default =
        pkgs.zeta-creds or (throw (
          "zeta.credsRestore.package is not set and nixpkgs has no zeta-creds package. "
          + "Import the flake's nixosModules.default (it sets the package), apply its overlays.default, "
          + "or set zeta.credsRestore.package = inputs.zeta-creds.packages.\${pkgs.system}.default;"
        ));
      defaultText = literalExpression "pkgs.zeta-creds (set by the flake's nixosModules.default)";
      example = literalExpression "inputs.zeta-creds.packages.\${pkgs.system}.default";
      description = ''
        The zeta-creds package whose `zeta-creds` binary the unit runs.
        nixpkgs does not ship one: the flake's `nixosModules.default` sets
        this with `lib.mkDefault`; with the bare module, set it or apply the
        flake's `overlays.default`.
      '';
    };

    blob = mkOption {
      type = externalPath;
      default = "${config.boot.loader.efi.efiSysMountPoint}/zeta-creds.enc";
      defaultText = literalExpression "\"\${config.boot.loader.efi.efiSysMountPoint}/zeta-creds.enc\"";
      example = "/efi/zeta-creds.enc";
      description = ''
        The blob `zeta-creds bundle` wrote at install time, on the ESP:
        by default `zeta-creds.enc` at the top of the ESP as NixOS mounts
        it ({option}`boot.loader.efi.efiSysMountPoint`, `/boot` unless the
        host moved it), where the installer step puts it. The unit waits
        for the filesystem holding it (`RequiresMountsFor=`) and is skipped
        (`ConditionPathExists=`) when it is not there: a host that was
        never bundled boots on.
      '';
    };

    usbUuidFile = mkOption {
      type = externalPath;
      default = d.usbUuidFile;
      example = "/etc/zeta/usb-uuid";
      description = ''
        File holding the filesystem UUID of the USB stick the blob is bound
        to (what `blkid -s UUID -o value` printed at install time;
        whitespace is trimmed). The unit is skipped when it is missing.
      '';
    };

    requireUsbPresent = mkOption {
      type = types.bool;
      default = d.requireUsbPresent;
      example = true;
      description = ''
        Refuse to restore (exit 4, no passphrase asked) unless a filesystem
        with the bound UUID is attached: the stick becomes a second factor
        next to the passphrase. zeta-creds waits up to
        {option}`zeta.credsRestore.usbWait` seconds for
        `/dev/disk/by-uuid/<uuid>` to appear.
      '';
    };

    usbWait = mkOption {
      type = types.ints.unsigned;
      default = d.usbWait;
      example = 30;
      description = ''
        Seconds to wait for the USB stick with
        {option}`zeta.credsRestore.requireUsbPresent`. A real stick shows up
        a second or more after the local filesystems are mounted; a hub or a
        slow stick may need more.
      '';
    };

    user = mkOption {
      type = types.nullOr userName;
      default = d.user;
      example = "zeta";
      description = ''
        Whose home `~` means in the blob's entries, instead of the manifest
        user recorded in the blob. The user's uid, gid and home are looked
        up at boot in /etc/passwd, so the user must exist by then (declared
        in `users.users`). A user whose home is `/` is refused.
      '';
    };

    persona = mkOption {
      type = types.nullOr personaName;
      default = d.persona;
      example = "ops";
      description = ''
        Refuse a blob bundled for another persona (`zeta-creds bundle
        --persona`). `null` accepts any.
      '';
    };

    passphrase = {
      mode = mkOption {
        type = types.enum unitLib.passphraseModes;
        default = d.passphrase.mode;
        example = "credential";
        description = ''
          Where the passphrase comes from at boot:

          - `interactive`: asked on the console through
            `systemd-ask-password` (answered by the console agent, Plymouth
            or `systemd-tty-ask-password-agent`), up to three tries; logins
            wait until it is answered or times out.
          - `credential`: a file sealed with `systemd-creds encrypt` (TPM2
            and/or the host key), loaded with `LoadCredentialEncrypted=`: a
            headless boot. See {option}`zeta.credsRestore.passphrase.credential`.
          - `file`: a plain file that something else puts in place before
            the unit runs; zeta-creds deletes it after reading, on every
            exit path. See {option}`zeta.credsRestore.passphrase.file`.
        '';
      };

      file = mkOption {
        type = types.nullOr externalPath;
        default = d.passphrase.file;
        example = "/run/zeta-creds/passphrase";
        description = ''
          With `passphrase.mode = "file"`: the passphrase file, read once
          and deleted (its directory is made writable for that). Keep it on
          a tmpfs such as /run, mode 0600; never in the Nix store.
        '';
      };

      credential = mkOption {
        type = types.nullOr externalPath;
        default = d.passphrase.credential;
        example = "/etc/credstore.encrypted/zeta-creds-passphrase";
        description = ''
          With `passphrase.mode = "credential"`: a file made by
          `systemd-creds encrypt --name=passphrase`, decrypted by systemd
          for this unit only (`LoadCredentialEncrypted=passphrase:<file>`).
          Sealed to the TPM2 (`--with-key=tpm2`, what the installer's
          `--seal-tpm2` does) it opens only on this machine, and only while
          the PCRs it was sealed with keep their values. If systemd cannot
          decrypt it (missing, another machine, a cleared TPM, changed
          PCRs) the unit fails with status 243/CREDENTIALS and the journal
          and the console say which file, why, and how to recover; see
          {option}`zeta.credsRestore.passphrase.credentialFallback`.
        '';
      };

      credentialFallback = mkOption {
        type = types.enum unitLib.credentialFallbacks;
        default = d.passphrase.credentialFallback;
        example = "interactive";
        description = ''
          With `passphrase.mode = "credential"`: what happens when systemd
          cannot decrypt the sealed passphrase.

          - `fail`: the unit fails (243/CREDENTIALS, not restarted), nothing
            is restored, the boot goes on, and the journal and the console
            name the credential, the likely cause and the recovery (restore
            by hand, boot with `passphrase.mode = "interactive"`, re-seal).
          - `interactive`: the same message, then
            `zeta-creds-restore-fallback.service` asks for the passphrase on
            the console as `passphrase.mode = "interactive"` does (with
            {option}`zeta.credsRestore.passphrase.timeout`). sshd, sops-nix
            and logins wait for it as they wait for the restore. A node
            with nobody at its console then waits for the prompt to time
            out before logins are allowed.
        '';
      };

      timeout = mkOption {
        type = types.ints.unsigned;
        default = d.passphrase.timeout;
        example = 600;
        description = ''
          With `passphrase.mode = "interactive"` (and the credential
          fallback): seconds each prompt waits for an answer (`0` waits forever). The unit's `TimeoutStartSec=`
          is three times this plus a margin. A prompt nobody answers fails
          the unit (exit 6, not restarted) and the boot goes on to
          multi-user.target without the restored files.
        '';
      };
    };

    restoreOn = mkOption {
      type = types.enum unitLib.restoreOns;
      default = d.restoreOn;
      example = "every-boot";
      description = ''
        When the restore runs and asks for the passphrase.

        `new-blob`: only when the blob on the ESP is not the one last
        restored on this host (the state record under
        `/var/lib/zeta-creds` names it by a hash of its public header and
        MAC). At every other boot `zeta-creds-restore-check.service` (no
        credential, no passphrase) finds it already restored, logs
        "already restored: generation N, sealed DATE", and the restore
        unit is skipped: nothing is asked, nothing unsealed (the TPM is
        not touched in `credential` mode), nothing written. A re-bundled
        blob is restored at the next boot (or by
        `systemctl start zeta-creds-restore`).

        `every-boot`: restore (and ask) at every boot, as before. For
        impermanent roots, where nothing restored survives a reboot: a
        tmpfs `/` (impermanence), erase-your-darlings (a root dataset
        rolled back to an empty snapshot at boot). Keeping
        `/var/lib/zeta-creds` on persistent storage there would make the
        check skip a restore whose files are gone.
      '';
    };

    onConflict = mkOption {
      type = types.enum unitLib.conflictPolicies;
      default = d.onConflict;
      example = "backup";
      description = ''
        A file that changed on this host since zeta-creds last wrote it
        (a login rotated since the blob was made): `keep-modified` keeps it
        and reports it ("re-bundle to carry it"), `overwrite` lets the blob
        win, `backup` lets the blob win and keeps the local file as
        `NAME.zeta-creds-bak`.
      '';
    };

    maxWorkFactor = mkOption {
      type = types.ints.between unitLib.minWorkFactor unitLib.maxWorkFactor;
      default = d.maxWorkFactor;
      example = 18;
      description = ''
        Refuse a blob whose scrypt work factor (log2 N) is above this,
        before running scrypt: the header is not authenticated yet at that
        point, so this caps what a forged header can make the boot spend.
        20 is 1 GiB of memory.
      '';
    };

    manifest = mkOption {
      type = types.nullOr (types.either types.path tomlFormat.type);
      default = null;
      example = literalExpression ''
        {
          version = 1;
          user = "zeta";
          entry = [
            { path = "~/.config/gh/hosts.yml"; }
            { path = "/etc/ssh/ssh_host_*_key"; mode = "0600"; owner = "root"; group = "root"; }
          ];
        }
      '';
      description = ''
        The manifest installed as `/etc/zeta/creds-manifest.toml`, what
        `zeta-creds bundle`, `diff` and `manifest check` read when they are
        not given `--manifest`: a TOML file (a path; a manifest lists paths,
        never secrets, so the Nix store is fine), or its contents as Nix
        attributes, written with `pkgs.formats.toml`. It is checked at
        build time with `zeta-creds manifest check --syntax-only`, so a
        mistake fails `nixos-rebuild` instead of the next bundle. The
        restore reads it too: it writes only the paths the manifest carries
        and refuses any other entry of the blob by name (exit 7). `null`
        installs nothing, and the restore then writes every path the blob
        names (it says so in the journal); the package's default manifest
        is in `share/zeta-creds/manifest/default.toml`.
      '';
    };

    integrations = {
      sops = {
        enable = mkOption {
          type = types.bool;
          default = options ? sops && ((config.sops.secrets or { }) != { } || (config.sops.templates or { }) != { });
          defaultText = literalExpression "options ? sops && (config.sops.secrets != { } || config.sops.templates != { })";
          example = false;
          description = ''
            Make sops-nix decrypt with the key the restore puts in place, in
            the same boot. With `sops.useSystemdActivation` (the default
            under systemd-sysusers and userborn), `sops-install-secrets.service`
            already waits for the restore. Otherwise sops-nix decrypts in
            NixOS activation, before any unit, and finds no key on the first
            boot after an install: `zeta-creds-sops-nix.service` then runs
            sops-install-secrets with sops-nix's manifest again after the
            restore, only when this boot has no `/run/secrets` (activation
            failed) and a key sops-nix reads is now there. See
            {option}`zeta.credsRestore.integrations.sops.services`.
          '';
        };
        services = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "nginx" ];
          description = ''
            Services (names under `systemd.services`) that read sops-nix
            secrets at start: they are ordered after the restore and after
            whichever of `sops-install-secrets.service` or
            `zeta-creds-sops-nix.service` installs the secrets. A service
            that starts early on its own (`DefaultDependencies=no`) or is
            already running is not held back.
          '';
        };
      };
      agenix = {
        enable = mkOption {
          type = types.bool;
          default = options ? age && (config.age.secrets or { }) != { };
          defaultText = literalExpression "options ? age && config.age.secrets != { }";
          example = false;
          description = ''
            Make agenix decrypt with the SSH host key (or other identity)
            the restore puts in place, in the same boot. Under
            systemd-sysusers or userborn, `agenix-install-secrets.service`
            already waits for the restore. Otherwise agenix decrypts in
            NixOS activation, before any unit, and finds no identity on the
            first boot after an install: `zeta-creds-agenix.service` then
            runs agenix's own activation steps (new generation, install,
            chown) again after the restore, only when one of the secrets is
            missing. See {option}`zeta.credsRestore.integrations.agenix.services`.
          '';
        };
        services = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "wireguard-wg0" ];
          description = ''
            Services (names under `systemd.services`) that read agenix
            secrets at start: ordered after the restore and after whichever
            of `agenix-install-secrets.service` or `zeta-creds-agenix.service`
            installs the secrets.
          '';
        };
      };
    };

    rebundle = {
      enable = mkOption {
        type = types.bool;
        default = cfg.passphrase.mode == "credential";
        defaultText = literalExpression ''config.zeta.credsRestore.passphrase.mode == "credential"'';
        example = false;
        description = ''
          Keep the blob fresh by itself: `zeta-creds-rebundle.timer` runs
          `zeta-creds rebundle` hourly (`RandomizedDelaySec=15min`), and
          `zeta-creds-rebundle-shutdown.service` runs it before every
          shutdown or reboot, so that a reinstall starts from the newest
          logins (an OAuth refresh token that rotates on every use is dead
          in a blob sealed before the rotation). Each run compares the state
          record with the disk, as `zeta-creds status` does; when a carried
          file changed (or the manifest picks a new one) it loads the same
          sealed passphrase as the restore (`LoadCredentialEncrypted=`),
          which must open the blob bound to this stick and this host, and
          seals a new blob from the host's manifest with a higher
          generation, keeping the old one as `BLOB.prev` and raising the
          state record, so that `BLOB.prev` put back is refused as a
          rollback. It never runs while the restore is pending (it refuses
          any blob this system has not restored or sealed), never drops a
          carried file that vanished (exit 10 and a warning: run
          `zeta-creds bundle` by hand), and logs one line per run. Needs
          `passphrase.mode = "credential"` and the host manifest
          ({option}`zeta.credsRestore.manifest`).
        '';
      };
      report = mkOption {
        type = types.bool;
        default = d.rebundle.report;
        example = false;
        description = ''
          Without {option}`zeta.credsRestore.rebundle.enable` (interactive
          and file mode: a human holds the passphrase), the same hourly
          timer only reports a stale blob: one warning in the journal
          ("N carried files changed since the blob was sealed on DATE: …;
          run `zeta-creds bundle` to carry them") and one line printed at
          every login shell (SSH included) from
          `/run/zeta-creds-notice/stale` (counts and date, no path), removed
          once the blob is fresh again. The passphrase is never read.
        '';
      };
    };

    extraWritablePaths = mkOption {
      type = types.listOf externalPath;
      default = d.extraWritablePaths;
      example = [ "/var/lib/myservice" ];
      description = ''
        The unit runs with `ProtectSystem=strict`: only /etc, /home, /root,
        /var/lib/zeta-creds, /var/lib/sops-nix and the user's home are
        writable. List here the directories of any other absolute path
        your manifest carries; an entry outside them fails with exit 7
        (the others are still written).
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions =
      unitLib.assertionsFor {
        inherit cfg userHome;
        inherit (builtins) storeDir;
      }
      ++ [
        {
          assertion = !cfg.integrations.sops.enable || options ? sops;
          message =
            "zeta.credsRestore.integrations.sops.enable is set, but sops-nix is not imported "
            + "(no sops options): import sops-nix's nixosModules.sops, or set integrations.sops.enable = false.";
        }
        {
          assertion = !cfg.integrations.agenix.enable || options ? age;
          message =
            "zeta.credsRestore.integrations.agenix.enable is set, but agenix is not imported "
            + "(no age options): import agenix's nixosModules.default, or set integrations.agenix.enable = false.";
        }
      ];

    # The TPM failure message and the README tell the operator to run
    # `zeta-creds restore`, `bundle` and `diff` on the host.
    environment.systemPackages = [ cfg.package ];

    environment.etc = lib.mkIf (cfg.manifest != null) {
      "zeta/creds-manifest.toml".source = checkedManifest;
    };

    # zeta-creds-restore, zeta-creds-restore-fallback with
    # passphrase.credentialFallback = "interactive", the sops-nix and agenix
    # follow-ups, and the ordering of the services that read their secrets.
    systemd.services = unit.nixosServices // integrations.services;

    # zeta-creds-rebundle.timer (rebundle.enable, or rebundle.report).
    systemd.timers = unit.nixosTimers;

    # The stale-blob line at every login shell (bash, zsh and fish read
    # environment.loginShellInit). Not pam_motd: NixOS configures it with
    # one static file (users.motd or users.motdFile, built into the
    # store), and no motd directory that a unit could write into at run
    # time.
    environment.loginShellInit = lib.mkIf (unit.rebundle != null) ''
      if [ -r ${unitLib.staleNotice} ]; then cat ${unitLib.staleNotice}; fi
    '';
  };
}
