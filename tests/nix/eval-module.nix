# Evaluate nixos-modules/zeta-creds-restore.nix against the test double of
# lib (lib-double.nix): a single module, its own options only.
#
#   import ./eval-module.nix {
#     settings = { enable = true; passphrase.mode = "file"; … };   # zeta.credsRestore.*
#     users = { zeta = { home = "/home/zeta"; }; };                  # users.users
#     pkgs = { zeta-creds = …; };                                    # what the module sees as pkgs
#   }
#   => { options; cfg; enabled; assertions; failedAssertions; service; services; }
#
# Settings are checked the way the module system checks definitions: a
# value that fails its option's type throws "A definition for option `…'
# is not of type `…'", an unknown setting throws "The option `…' does not
# exist", and an option with no default and no setting throws "The option
# `…' is used but not defined." (the texts nixpkgs uses).
{
  settings ? { },
  users ? { },
  pkgs ? { },
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

  show = v: if isPath v then "path ${toString v}" else if isFunction v then "<function>" else toJSON v;

  evalOptions =
    path: opts: defs:
    let
      unknown = filter (n: !(opts ? ${n})) (attrNames defs);
      name = n: concatStringsSep "." (path ++ [ n ]);
    in
    if unknown != [ ] then
      throw "The option `${name (builtins.head unknown)}' does not exist."
    else
      listToAttrs (
        map (n: {
          name = n;
          value =
            let
              o = opts.${n};
            in
            if lib.isOption o then
              if defs ? ${n} then
                (
                  if o.type.check defs.${n} then
                    defs.${n}
                  else
                    throw "A definition for option `${name n}' is not of type `${o.type.description}'. Definition value: ${show defs.${n}}"
                )
              else if o ? default then
                o.default
              else
                throw "The option `${name n}' is used but not defined."
            else if isAttrs o then
              evalOptions (path ++ [ n ]) o (defs.${n} or { })
            else
              throw "evalOptions: ${name n} is neither an option nor a set of options";
        }) (attrNames opts)
      );

  m = import module {
    inherit lib pkgs config;
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

  config = {
    zeta.credsRestore = evalOptions prefix m.options.zeta.credsRestore imported.settings;
    users.users = users;
  };

  body = m.config;
in
assert isAttrs body && (body._type or null) == "if";
{
  inherit (m) options;
  cfg = config.zeta.credsRestore;
  enabled = body.condition;
  inherit (body.content) assertions;
  failedAssertions = map (a: a.message) (filter (a: !a.assertion) body.content.assertions);
  service = body.content.systemd.services.zeta-creds-restore;
  services = body.content.systemd.services;
  inherit (imported) warnings;
  # Every key the module sets in its config, to catch a stray definition.
  configKeys = attrNames body.content;
}
