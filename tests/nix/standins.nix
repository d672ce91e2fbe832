# Stand-ins for sops-nix's and agenix's NixOS modules, for the integration
# cases of module-cases.nix (the lib double) and real-lib.nix (the real
# lib): the options nixos-modules/integrations.nix reads, with the names,
# types and defaults of sops-nix 56b24064 (modules/sops/default.nix) and
# agenix b027ee29 (modules/age.nix), and what they put in
# system.build / system.activationScripts.
{
  sops =
    { lib, ... }:
    {
      options.sops = {
        secrets = lib.mkOption {
          type = lib.types.attrsOf lib.types.raw;
          default = { };
          description = "(stand-in)";
        };
        templates = lib.mkOption {
          type = lib.types.attrsOf lib.types.raw;
          default = { };
          description = "(stand-in)";
        };
        useSystemdActivation = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = "(stand-in)";
        };
        package = lib.mkOption {
          type = lib.types.raw;
          default = "/nix/store/55555555555555555555555555555555-sops-install-secrets";
          description = "(stand-in)";
        };
        environment = lib.mkOption {
          type = lib.types.attrsOf lib.types.str;
          default = { };
          description = "(stand-in)";
        };
        age.keyFile = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          description = "(stand-in)";
        };
        age.sshKeyPaths = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [ ];
          description = "(stand-in)";
        };
        age.plugins = lib.mkOption {
          type = lib.types.listOf lib.types.raw;
          default = [ ];
          description = "(stand-in)";
        };
        gnupg.sshKeyPaths = lib.mkOption {
          type = lib.types.listOf lib.types.str;
          default = [ ];
          description = "(stand-in)";
        };
      };
      config.system.build.sops-nix-manifest = "/nix/store/66666666666666666666666666666666-manifest.json";
    };
  agenix =
    { lib, ... }:
    {
      options.age.secrets = lib.mkOption {
        type = lib.types.attrsOf lib.types.raw;
        default = { };
        description = "(stand-in)";
      };
      config.system.activationScripts = {
        agenixNewGeneration.text = "new-generation";
        agenixInstall.text = "install";
        agenixChown.text = "chown";
      };
    };
}
