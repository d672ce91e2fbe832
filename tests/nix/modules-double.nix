# The module system of the lib test double (lib-double.nix): evalModules,
# and the merge of attrsOf and submodule types. It follows nixpkgs'
# lib/modules.nix in what our module meets, no further:
#
#   - a module is a function of { config, options, lib, pkgs, name, ... } or
#     an attribute set, with `imports`, `options` and `config` (or config
#     alone, the shorthand); imports are followed (paths, functions, sets);
#   - every definition of an option is collected from every module, with
#     mkIf and mkMerge resolved on the way down and mkOverride (mkDefault,
#     mkForce) pushed down to the option, as pushDownProperties does;
#   - only the definitions of the highest priority are kept (an option's
#     default is a definition at 1500, as mkOptionDefault), each checked
#     against the type ("A definition for option … is not of type …"),
#     then merged by the type: lists concatenated, attrsOf key by key (each
#     key's own properties resolved), submodules evaluated as modules,
#     anything else must be equal ("has conflicting definition values");
#   - `options.<path>.isDefined` is true when a definition exists, which
#     NixOS's systemd module uses for startLimitBurst;
#   - a definition of an option nobody declared throws "The option `…'
#     does not exist." when the config is checked (`checked`).
#
# Not done (tests/nix/README.md): mkBefore/mkAfter ordering, mkAliasOptionModule,
# _module.args, freeform types, `apply`, `readOnly`, the `_file` of a
# definition (all definitions show as the module's index).
{ lib }:
let
  inherit (builtins)
    all
    attrNames
    concatLists
    concatMap
    elem
    filter
    foldl'
    genList
    head
    isAttrs
    isFunction
    isList
    isPath
    length
    listToAttrs
    map
    tail
    ;

  isOption = x: isAttrs x && (x._type or null) == "option";
  defaultPriority = 100;
  optionDefaultPriority = 1500;

  # mkIf and mkMerge at this level: the values that remain.
  discharge =
    v:
    if isAttrs v && (v._type or null) == "merge" then
      concatMap discharge v.contents
    else if isAttrs v && (v._type or null) == "if" then
      (if v.condition then discharge v.content else [ ])
    else
      [ v ];

  # The definitions at `path` below the value `v` of one module, each as
  # { value; priority; file; }: properties resolved at every level, an
  # override applying to everything below it.
  # mkIf is pushed down as nixpkgs does: its condition is only evaluated
  # when something under it defines the option looked at, so a module's
  # `config = mkIf cfg.enable { … }` can read its own options.
  defsAt =
    file: path: x:
    if isAttrs x && (x._type or null) == "merge" then
      concatMap (defsAt file path) x.contents
    else if isAttrs x && (x._type or null) == "if" then
      let
        inner = defsAt file path x.content;
      in
      if inner == [ ] then [ ] else if x.condition then inner else [ ]
    else if isAttrs x && (x._type or null) == "override" then
      map (d: if d.explicit then d else d // { priority = x.priority; explicit = true; }) (defsAt file path x.content)
    else if path == [ ] then
      [
        {
          value = x;
          priority = defaultPriority;
          explicit = false;
          inherit file;
        }
      ]
    else if isAttrs x && x ? ${head path} then
      defsAt file (tail path) x.${head path}
    else
      [ ];

  minOf = foldl' (a: b: if b < a then b else a) optionDefaultPriority;

  # The value of an option from its definitions (and its declaration's
  # default): { isDefined; value; }.
  resolve =
    type: loc: defs:
    if defs == [ ] then
      {
        isDefined = false;
        value = throw "The option `${lib.showLoc loc}' is used but not defined.";
      }
    else
      let
        top = minOf (map (d: d.priority) defs);
        kept = filter (d: d.priority == top) defs;
        bad = filter (d: !(type.check d.value)) kept;
      in
      {
        isDefined = true;
        value =
          if bad != [ ] then
            throw "A definition for option `${lib.showLoc loc}' is not of type `${type.description}'. Definition value: ${showDef (head bad).value}"
          else
            type.merge loc (map (d: { inherit (d) file value; }) kept);
      };

  showDef = v: if isPath v then "path ${toString v}" else lib.showVal v;

  mergeAttrsOf =
    elemType: loc: defs:
    let
      keys = foldl' (acc: d: acc ++ filter (k: !(elem k acc)) (attrNames d.value)) [ ] defs;
      perKey =
        k:
        resolve elemType (loc ++ [ k ]) (
          concatMap (d: if d.value ? ${k} then defsAt d.file [ ] d.value.${k} else [ ]) defs
        );
    in
    listToAttrs (
      concatMap (
        k:
        let
          r = perKey k;
        in
        if r.isDefined then
          [
            {
              name = k;
              inherit (r) value;
            }
          ]
        else
          [ ]
      ) keys
    );

  mergeSubmodule =
    modules: loc: defs:
    let
      ev = evalModules {
        modules = modules ++ map (d: { config = d.value; }) defs;
        name = if loc == [ ] then "" else builtins.elemAt loc (length loc - 1);
        prefix = loc;
      };
    in
    # An undeclared name inside the submodule is refused when the
    # submodule's value is used.
    builtins.seq ev.checked ev.config;

  # Deep union of option declarations.
  unionOptions =
    a: b:
    a
    // listToAttrs (
      map (n: {
        name = n;
        value =
          if a ? ${n} && !(isOption a.${n}) && !(isOption b.${n}) then unionOptions a.${n} b.${n} else b.${n};
      }) (attrNames b)
    );

  evalModules =
    {
      modules,
      specialArgs ? { },
      name ? "",
      prefix ? [ ],
    }:
    let
      args =
        specialArgs
        // {
          inherit lib config name;
          options = optionsWithState;
        };

      # Every module, imports followed, as { file; options; config; }.
      collect =
        file: m:
        let
          v0 = if isPath m then import m else m;
          v = if isFunction v0 then v0 args else v0;
          own =
            if v ? options || v ? config then
              {
                options = v.options or { };
                config = v.config or { };
              }
            else
              {
                options = { };
                config = removeAttrs v [
                  "_file"
                  "imports"
                ];
              };
          imports = filter (i: !(isAttrs i && (i._type or "") == "double-renamed" || (i._type or "") == "double-removed")) (
            v.imports or [ ]
          );
        in
        if isAttrs v && ((v._type or "") == "double-renamed" || (v._type or "") == "double-removed") then
          [ ]
        else
          [ (own // { inherit file; }) ]
          ++ concatLists (genList (i: collect "${file}/imports.${toString i}" (builtins.elemAt imports i)) (length imports));

      all' = concatLists (genList (i: collect "module ${toString i}" (builtins.elemAt modules i)) (length modules));

      declarations = foldl' (acc: m: unionOptions acc m.options) { } all';

      # Each option: its definitions from every module, and its default.
      state =
        path: opts:
        listToAttrs (
          map (n: {
            name = n;
            value =
              let
                o = opts.${n};
                p = path ++ [ n ];
              in
              if isOption o then
                resolve o.type (prefix ++ p) (
                  concatMap (m: defsAt m.file p m.config) all'
                  ++ (
                    if o ? default then
                      [
                        {
                          value = o.default;
                          priority = optionDefaultPriority;
                          file = "the default";
                        }
                      ]
                    else
                      [ ]
                  )
                )
              else
                state p o;
          }) (attrNames opts)
        );
      st = state [ ] declarations;

      mapState =
        f: opts: s:
        listToAttrs (
          map (n: {
            name = n;
            value = if isOption opts.${n} then f opts.${n} s.${n} else mapState f opts.${n} s.${n};
          }) (attrNames opts)
        );

      config = mapState (_o: r: r.value) declarations st;
      optionsWithState = mapState (o: r: o // { inherit (r) isDefined; }) declarations st;

      # A definition nobody declared.
      # (mkIf's content is looked at whatever the condition.)
      unknownIn =
        path: opts: v:
        concatMap (
          x:
          if isAttrs x && (x._type or null) == "override" then
            unknownIn path opts x.content
          else if isAttrs x && (x._type or null) == "if" then
            unknownIn path opts x.content
          else if isAttrs x && (x._type or null) == "merge" then
            concatMap (unknownIn path opts) x.contents
          else if isAttrs x then
            concatMap (
              n:
              if !(opts ? ${n}) then
                [ (lib.showLoc (prefix ++ path ++ [ n ])) ]
              else if isOption opts.${n} then
                [ ]
              else
                unknownIn (path ++ [ n ]) opts.${n} x.${n}
            ) (attrNames x)
          else
            [ ]
        ) [ v ];
      unknown = concatMap (m: unknownIn [ ] declarations m.config) all';
    in
    {
      inherit config;
      options = optionsWithState;
      checked = if unknown == [ ] then true else throw "The option `${head unknown}' does not exist.";
    };
in
{
  inherit
    evalModules
    mergeAttrsOf
    mergeSubmodule
    discharge
    ;
}
