# The units nixos-modules/integrations.nix adds for sops-nix and agenix,
# rendered as unit files for tests/vm: integrations.nix itself is called
# with a stand-in configuration (what sops-nix 56b24064 and agenix b027ee29
# would set, pointing at the guest's stand-in tools), and each
# systemd.services entry it returns is written the way NixOS writes one
# (nixos/lib/systemd-lib.nix: description, after, before, wants, then
# unitConfig; environment, then serviceConfig; wantedBy as [Install]). An
# entry with no serviceConfig (a consumer, which the integration only gives
# an `after`) is a drop-in, as NixOS merges it into the host's own unit.
#
#   nix-instantiate --eval --strict --json tests/nix/render-integrations.nix \
#     --argstr mode systemd|activation --argstr consumer zeta-vm-consumer
#   => { units = { "<file name>" = text; };      # file names under /etc/systemd/system
#        scripts = { "<name>" = text; }; }       # the scripts writeShellScript would make
#
# mode: "systemd" is sops.useSystemdActivation with systemd-sysusers
# (sops-nix and agenix install their secrets as units, and the integration
# adds only the consumer's ordering); "activation" is scripted users
# (both decrypt in activation; the integration adds the follow-ups).
# Not rendered: `path` (NixOS's PATH=; the guest's tools are on its own
# PATH).
{
  mode,
  consumer,
  scriptDir ? "/usr/local/lib/zeta-vm",
  sopsPrefix ? "/usr/local",
  sopsManifest ? "/etc/zeta-vm/sops-manifest",
  agenixTool ? "/usr/local/sbin/zeta-vm-agenix",
}:
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    isList
    listToAttrs
    map
    ;
  unitLib = import ../../nixos-modules/unit.nix;
  systemd =
    if mode == "systemd" then
      true
    else if mode == "activation" then
      false
    else
      throw "render-integrations: mode must be \"systemd\" or \"activation\", not ${mode}";

  config = {
    zeta.credsRestore.integrations = {
      sops = {
        enable = true;
        services = [ consumer ];
      };
      agenix = {
        enable = true;
        services = [ consumer ];
      };
    };
    sops = {
      useSystemdActivation = systemd;
      package = sopsPrefix;
      environment = { };
      age = {
        keyFile = "/var/lib/sops-nix/key.txt";
        sshKeyPaths = [ ];
        plugins = [ ];
      };
      gnupg.sshKeyPaths = [ ];
    };
    system.build.sops-nix-manifest = sopsManifest;
    age.secrets.api-token.path = "/run/agenix/api-token";
    # agenix's three activation steps, as the guest's stand-in runs them.
    system.activationScripts = {
      agenixNewGeneration.text = "${agenixTool} new-generation";
      agenixInstall.text = "${agenixTool} install";
      agenixChown.text = "${agenixTool} chown";
    };
    systemd.sysusers.enable = systemd;
    services.userborn.enable = false;
  };
  options = {
    sops = { };
    age = { };
    systemd.sysusers = { };
  };
  integrationsWith =
    writeShellScript:
    import ../../nixos-modules/integrations.nix {
      inherit config options unitLib;
      pkgs = {
        inherit writeShellScript;
        util-linux = "/usr";
      };
    };
  # Where the scripts would be in the store, and (a second evaluation whose
  # writeShellScript returns the text) what they would hold.
  services = (integrationsWith (name: _text: "${scriptDir}/${name}")).services;
  scriptTexts = (integrationsWith (_name: text: text)).services;

  line = k: v: if isList v then map (x: "${k}=${toString x}") v else [ "${k}=${toString v}" ];
  lines = attrs: concatLists (map (k: line k attrs.${k}) (attrNames attrs));
  listKey = k: s: if (s.${k} or [ ]) == [ ] then [ ] else line k s.${k};
  section = name: ls: "[${name}]\n" + concatStringsSep "\n" ls + "\n";

  render =
    name: s:
    if s ? serviceConfig then
      {
        name = "${name}.service";
        value =
          "# ${name}.service, as NixOS writes integrations.nix's systemd.services.${name}\n"
          + section "Unit" (
            (if (s.description or "") != "" then [ "Description=${s.description}" ] else [ ])
            ++ listKey "After" { After = s.after or [ ]; }
            ++ listKey "Before" { Before = s.before or [ ]; }
            ++ listKey "Wants" { Wants = s.wants or [ ]; }
            ++ lines (s.unitConfig or { })
          )
          + "\n"
          + section "Service" (
            map (k: "Environment=\"${k}=${s.environment.${k}}\"") (attrNames (s.environment or { }))
            ++ lines s.serviceConfig
          )
          + (if (s.wantedBy or [ ]) == [ ] then "" else "\n" + section "Install" (line "WantedBy" s.wantedBy));
      }
    else
      {
        name = "${name}.service.d/zeta-creds-integration.conf";
        value =
          "# systemd.services.${name} from integrations.nix, merged by NixOS into the host's unit\n"
          + section "Unit" (listKey "After" { After = s.after or [ ]; });
      };
in
{
  units = listToAttrs (map (n: render n services.${n}) (attrNames services));
  scripts = listToAttrs (
    concatLists (
      map (
        n:
        let
          exec = services.${n}.serviceConfig.ExecStart or "";
        in
        if services.${n} ? serviceConfig && exec != scriptTexts.${n}.serviceConfig.ExecStart then
          [
            {
              name = baseNameOf exec;
              value = "#!/bin/bash\n" + scriptTexts.${n}.serviceConfig.ExecStart;
            }
          ]
        else
          [ ]
      ) (attrNames services)
    )
  );
}
