# A TEST DOUBLE of the NixOS options zeta-creds-restore.nix reads or
# defines, for the lib double's evalModules (modules-double.nix). The
# option names, types and defaults are nixpkgs' (nixos/lib/
# systemd-unit-options.nix, nixos/lib/systemd-lib.nix, nixos/modules/
# system/boot/loader/efi.nix); only what the module and the test cases
# touch is declared.
#
# What matters for merging is copied as NixOS has it: a service's
# `after`, `before`, `wants`, … and `startLimitBurst` /
# `startLimitIntervalSec` are written by NixOS itself into its
# `unitConfig` (attrsOf unitOption: lists concatenate, any other value
# must be equal), at the normal priority, so a module that also writes
# unitConfig.StartLimitBurst conflicts with a host's startLimitBurst even
# under lib.mkForce: the bug of issue 17.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  opt =
    type: default:
    mkOption {
      inherit type default;
      description = "(test double)";
    };
  optNoDefault =
    type:
    mkOption {
      inherit type;
      description = "(test double)";
    };

  # nixos/lib/systemd-unit-options.nix: unitOption.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    description = "systemd option";
    check = _: true;
    merge =
      loc: defs:
      if builtins.any (d: builtins.isList d.value) defs then
        builtins.concatLists (map (d: if builtins.isList d.value then d.value else [ d.value ]) defs)
      else
        lib.mergeEqualOption loc defs;
  };
  strs = types.listOf types.str;

  serviceModule =
    { config, options, ... }:
    {
      options = {
        enable = opt types.bool true;
        description = opt types.str "";
        documentation = opt strs [ ];
        after = opt strs [ ];
        before = opt strs [ ];
        wants = opt strs [ ];
        requires = opt strs [ ];
        wantedBy = opt strs [ ];
        requiredBy = opt strs [ ];
        onFailure = opt strs [ ];
        environment = opt (types.attrsOf (types.nullOr types.str)) { };
        path = opt (types.listOf types.raw) [ ];
        script = opt types.str "";
        unitConfig = opt (types.attrsOf unitOption) { };
        serviceConfig = opt (types.attrsOf unitOption) { };
        restartIfChanged = opt types.bool true;
        stopIfChanged = opt types.bool true;
        startLimitBurst = optNoDefault types.int;
        startLimitIntervalSec = optNoDefault types.int;
      };
      # systemd-lib.nix, unitConfig: NixOS's own definitions, at the
      # normal priority.
      config.unitConfig =
        (if config.after != [ ] then { After = toString config.after; } else { })
        // (if config.before != [ ] then { Before = toString config.before; } else { })
        // (if config.wants != [ ] then { Wants = toString config.wants; } else { })
        // (if config.requires != [ ] then { Requires = toString config.requires; } else { })
        // (if config.description != "" then { Description = config.description; } else { })
        // (if config.documentation != [ ] then { Documentation = toString config.documentation; } else { })
        // (if config.onFailure != [ ] then { OnFailure = toString config.onFailure; } else { })
        // (
          if options.startLimitIntervalSec.isDefined then
            { StartLimitIntervalSec = toString config.startLimitIntervalSec; }
          else
            { }
        )
        // (if options.startLimitBurst.isDefined then { StartLimitBurst = toString config.startLimitBurst; } else { });
    };
in
{
  options = {
    assertions = opt (types.listOf types.raw) [ ];
    warnings = opt (types.listOf types.str) [ ];
    boot.loader.efi.efiSysMountPoint = opt types.str "/boot";
    users.users = opt (types.attrsOf (types.attrsOf types.raw)) { };
    environment.systemPackages = opt (types.listOf types.package) [ ];
    environment.etc = opt (types.attrsOf (types.attrsOf types.raw)) { };
    # nixos/modules/config/shells-environment.nix: lines.
    environment.loginShellInit = opt types.lines "";
    systemd.services = opt (types.attrsOf (types.submodule serviceModule)) { };
    # nixos/modules/system/boot/systemd.nix: attrsOf (submodule timer
    # options); only whole values are set here.
    systemd.timers = opt (types.attrsOf (types.attrsOf types.raw)) { };
    system.build = opt (types.attrsOf types.raw) { };
    system.activationScripts = opt (types.attrsOf (types.attrsOf types.raw)) { };
  };
}
