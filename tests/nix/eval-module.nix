# Evaluate nixos-modules/zeta-creds-restore.nix against the test double of
# lib (lib-double.nix) and of the NixOS options it touches
# (nixos-double.nix), with the double's module system (modules-double.nix):
#
#   import ./eval-module.nix {
#     settings = { enable = true; passphrase.mode = "file"; … };   # zeta.credsRestore.*
#     users = { zeta = { home = "/home/zeta"; }; };                  # users.users
#     pkgs = { zeta-creds = …; };                                    # what the module sees as pkgs
#     modules = [ { systemd.services.zeta-creds-restore.startLimitBurst = lib.mkForce 5; } ];
#   }
#   => { options; cfg; enabled; assertions; failedAssertions;
#        service; services;     # what the module itself defines (its mkIf's content)
#        config; merged;        # the whole merged configuration, and its systemd.services
#        warnings; configKeys; }
#
# Settings are checked the way the module system checks definitions: a
# value that fails its option's type throws "A definition for option `…'
# is not of type `…'", an unknown setting throws "The option `…' does not
# exist", an option with no default and no setting throws "The option `…'
# is used but not defined.", and two definitions of one value that differ
# at the same priority throw "The option `…' has conflicting definition
# values" (the texts nixpkgs uses).
{
  settings ? { },
  users ? { },
  pkgs ? { },
  modules ? [ ],
  module ? ../../nixos-modules/zeta-creds-restore.nix,
}:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    isAttrs
    isFunction
    isPath
    listToAttrs
    map
    toJSON
    ;
  lib = import ./lib-double.nix;

  # What the module sees as pkgs: the caller's, over stubs of the few
  # builders it calls (the names of what they would build, no build).
  stubStore = name: "/nix/store/44444444444444444444444444444444-${name}";
  pkgs' = {
    formats.toml = _: {
      type = lib.mkOptionType {
        name = "tomlValue";
        description = "TOML value";
        check = builtins.isAttrs;
      };
      generate = name: _value: stubStore name;
    };
    runCommand = name: _env: _script: stubStore name;
    writeShellScript = name: _text: stubStore name;
    util-linux = stubStore "util-linux";
  }
  // pkgs;

  m = import module {
    inherit lib config options;
    pkgs = pkgs';
  };

  # The module's imports: renamed and removed options (see lib-double.nix).
  prefix = [
    "zeta"
    "credsRestore"
  ];
  relative =
    p:
    if builtins.length p > 2 && builtins.elemAt p 0 == "zeta" && builtins.elemAt p 1 == "credsRestore" then
      builtins.genList (i: builtins.elemAt p (i + 2)) (builtins.length p - 2)
    else
      throw "eval-module: ${concatStringsSep "." p} is outside zeta.credsRestore";
  hasAt = path: attrs: path == [ ] || (isAttrs attrs && attrs ? ${builtins.head path} && hasAt (builtins.tail path) attrs.${builtins.head path});
  getAt = path: attrs: if path == [ ] then attrs else getAt (builtins.tail path) attrs.${builtins.head path};
  setAt =
    path: value: attrs:
    if path == [ ] then
      value
    else
      attrs
      // {
        ${builtins.head path} = setAt (builtins.tail path) value (attrs.${builtins.head path} or { });
      };
  applyImport =
    acc: imp:
    if imp._type == "double-renamed" then
      let
        from = relative imp.from;
        to = relative imp.to;
      in
      if hasAt from acc.settings then
        {
          settings = setAt to (getAt from acc.settings) (removeAttrs acc.settings [ (builtins.head from) ]);
          warnings = acc.warnings ++ [
            "The option `${concatStringsSep "." imp.from}' has been renamed to `${concatStringsSep "." imp.to}'."
          ];
        }
      else
        acc
    else if imp._type == "double-removed" then
      if hasAt (relative imp.path) acc.settings then
        throw "The option definition `${concatStringsSep "." imp.path}' no longer has any effect; please remove it.\n${imp.instructions}"
      else
        acc
    else
      throw "eval-module: unsupported import";
  imported = builtins.foldl' applyImport {
    inherit settings;
    warnings = [ ];
  } (m.imports or [ ]);

  ev = lib.evalModules {
    modules = [
      ./nixos-double.nix
      module
      {
        zeta.credsRestore = imported.settings;
        users.users = users;
      }
    ]
    ++ modules;
    specialArgs.pkgs = pkgs';
  };
  inherit (ev) options;
  config = builtins.seq ev.checked ev.config;

  body = m.config;
in
assert isAttrs body && (body._type or null) == "if";
{
  options = m.options;
  cfg = config.zeta.credsRestore;
  inherit config;
  merged = config.systemd.services;
  enabled = body.condition;
  inherit (body.content) assertions;
  failedAssertions = map (a: a.message) (filter (a: !a.assertion) body.content.assertions);
  service = body.content.systemd.services.zeta-creds-restore;
  services = body.content.systemd.services;
  inherit (imported) warnings;
  # Every key the module sets in its config, to catch a stray definition.
  configKeys = attrNames body.content;
}
